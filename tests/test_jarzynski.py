"""Jarzynski-weighted SMC training (paper 003): the weights do what Prop. 1 says.

A Gaussian energy U_k(x) = |x - m_k|^2 / (2 s_k^2) whose parameters follow a known path
(a stand-in optimiser sets them) has log Z_k = d/2 log(2 pi s_k^2 T) at temperature T.
Walkers started exactly at rho_0 and moved by ULA lag behind the moving target; the
Jarzynski weights must give the exact log Z_k (to Monte Carlo error, through
resamplings) and the exact mean, where unweighted walkers do not. A second check runs
Algorithms 1 and 2 written out literally from Eq. 5-6 with the same random numbers and
compares the log weights, which catches any bookkeeping slip in the deferred completion
of the weights.
"""

import math

import pytest
import torch
from torch import nn

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS
from ebm_bench.samplers.smc import ess_fraction, log_mean_exp, resample_indices

D = 2
INFO = DataInfo((D,), False)


class GaussEnergy(nn.Module):
    def __init__(self, m, log_s):
        super().__init__()
        self.m = nn.Parameter(torch.as_tensor(m, dtype=torch.float32).clone())
        self.log_s = nn.Parameter(torch.as_tensor(log_s, dtype=torch.float32).clone())

    def forward(self, x):
        return 0.5 * ((x - self.m) ** 2).sum(-1) / torch.exp(2 * self.log_s)

    def features(self, x):
        return x


class PathOptimizer:
    """Moves the parameters along a prescribed path instead of following gradients."""

    def __init__(self, net, path):
        self.net, self.path, self.k = net, path, 0

    def zero_grad(self, set_to_none=True):
        pass

    def state_dict(self):
        return {"k": self.k}

    def load_state_dict(self, state):
        self.k = int(state["k"])

    def step(self):
        self.k += 1
        m, log_s = self.path[self.k]
        with torch.no_grad():
            self.net.m.copy_(m)
            self.net.log_s.copy_(log_s)


def gauss_path(k_steps, shift=2.0, s_end=0.5):
    """m: 0 -> shift e1 and s: 1 -> s_end in k_steps steps: fast enough that ULA lags far
    behind, gentle enough (a contracting target) that the weights keep a finite variance."""
    out = []
    for k in range(k_steps + 1):
        t = k / k_steps
        out.append((torch.tensor([shift * t, 0.0]), torch.tensor(math.log(1.0 + (s_end - 1.0) * t))))
    return out


def log_z_exact(log_s, temperature):
    return 0.5 * D * math.log(2 * math.pi * math.exp(2 * float(log_s)) * temperature)


def make_method(path, n, temperature=1.0, seed=0, **params):
    cls = METHODS.get("jarzynski")
    base = {"net": "mlp", "net_params": {"hidden": 4, "depth": 1}, "n_walkers": n, "step_size": 0.1,
            "temperature": temperature, "walker_init": "noise", "resample_threshold": 0.0}
    m = cls({**base, **params}, INFO, "cpu", seed)
    m0, ls0 = path[0]
    m.net = GaussEnergy(m0, ls0)
    m.opt = PathOptimizer(m.net, path)
    # X_0 ~ rho_0 exactly (Prop. 1) and log Z_0 known
    g = torch.Generator().manual_seed(1000 + seed)
    s0 = math.exp(float(ls0)) * math.sqrt(temperature)
    m.walkers = m0 + s0 * torch.randn((n, D), generator=g)
    m.log_w = torch.zeros(n, dtype=torch.float64)
    m.log_z_ref = log_z_exact(ls0, temperature)
    m.initialised = True
    return m


DATA = torch.zeros((8, D))  # the data term does not enter the weights


def run_path(m, k_steps):
    for k in range(1, k_steps + 1):
        m.train_step(DATA, k)


@pytest.mark.parametrize(
    "temperature, extra",
    [
        (1.0, {}),  # Alg. 1, systematic resampling
        (0.25, {}),  # noise sqrt(2 h T) != sqrt(2 h): weights must use U/T
        (1.0, {"grad_clip": 2.0}),  # clipped drift: weights must use the drift actually applied
        (1.0, {"n_moved": 3000}),  # Alg. 2: unmoved walkers get the work term only
        (1.0, {"n_steps": 3}),  # several ULA steps per update
        (1.0, {"resampler": "multinomial"}),
        (1.0, {"resampler": "stratified"}),
    ],
)
def test_weights_give_exact_log_z_and_mean_where_unweighted_walkers_do_not(temperature, extra):
    k_steps, n = 20, 12000
    path = gauss_path(k_steps, shift=2.0 * math.sqrt(temperature))  # the same problem in units of the std
    m = make_method(path, n, temperature, resample_threshold=0.5, **{"resampler": "systematic", **extra})
    # Monte Carlo variance of log Z: (1/ESS - 1)/N from each resampling epoch (Eq. 12-13)
    var = 0.0
    for k in range(1, k_steps + 1):
        row = m.train_step(DATA, k)
        if row["resampled"]:
            var += (1 / row["ess"] - 1) / n
    est = m.estimates()
    var += (1 / est["ess"] - 1) / n
    exact = log_z_exact(path[-1][1], temperature)
    assert m.n_resamples >= 1  # the carried log Z goes through at least one resampling
    assert abs(est["log_z"] - exact) < 5 * math.sqrt(var), (est, exact, math.sqrt(var))
    a, _ = m.completed_log_weights()
    p = torch.softmax(a, 0).float()
    target_mean = path[-1][0]
    assert (p[:, None] * m.walkers).sum(0).sub(target_mean).abs().max() < 0.05 * math.sqrt(temperature) + 0.02

    # the same walkers without weights lag behind: thermodynamic integration over their
    # positions, log Z_K ~ log Z_0 - sum_k mean[U_{k+1}(X_k) - U_k(X_k)] / T, is far off
    u = make_method(path, n, temperature, weighted=False, **extra)
    work = 0.0
    for k in range(1, k_steps + 1):
        x = u.walkers.clone()
        with torch.no_grad():
            e_k = u.net(x)
        u.train_step(DATA, k)
        with torch.no_grad():
            work += float((u.net(x) - e_k).mean()) / temperature
    ti = log_z_exact(path[0][1], temperature) - work
    assert abs(ti - exact) > 1.0, (ti, exact)
    assert abs(ti - exact) > 20 * abs(est["log_z"] - exact)
    lag = float(u.walkers.mean(0).sub(target_mean).abs().max())
    assert lag > 0.1 * math.sqrt(temperature)  # the unweighted walkers' mean lags behind


def _eq6_alpha(u, grad, x, y, h):
    """alpha_k(x, y) = U_k(x) + 1/2 (y - x) . grad U_k(x) + h/4 |grad U_k(x)|^2, Eq. 6 verbatim."""
    return u.double() + 0.5 * ((y - x) * grad).sum(-1).double() + 0.25 * h * (grad * grad).sum(-1).double()


def _u_and_grad(net, x):
    x = x.detach().requires_grad_(True)
    u = net(x)
    (g,) = torch.autograd.grad(u.sum(), x)
    return u.detach(), g


@pytest.mark.parametrize("n_moved", [0, 24])  # Alg. 1 and Alg. 2
def test_log_weights_equal_literal_algorithm(n_moved):
    """Alg. 1 / Alg. 2 written out from Eq. 5-6 verbatim (T = 1, no clipping)."""
    k_steps, n, h = 6, 64, 0.1
    path = gauss_path(k_steps)
    m = make_method(path, n, n_moved=n_moved)
    ref_net = GaussEnergy(*path[0])
    gen = torch.Generator()
    gen.set_state(m.gen.get_state())
    x = m.walkers.clone()
    a = torch.zeros(n, dtype=torch.float64)
    for k in range(1, k_steps + 1):
        m.train_step(DATA, k)
        # literal Alg. 1 / Alg. 2 with the same draws (randperm for B, then the ULA noise)
        moved = torch.arange(n) if n_moved == 0 else torch.randperm(n, generator=gen)[:n_moved]
        u_k, g_k = _u_and_grad(ref_net, x)
        xi = torch.randn((len(moved), D), generator=gen)
        x_new = x.clone()
        x_new[moved] = x[moved] - h * g_k[moved] + math.sqrt(2 * h) * xi
        with torch.no_grad():
            ref_net.m.copy_(path[k][0])
            ref_net.log_s.copy_(path[k][1])
        u_k1, g_k1 = _u_and_grad(ref_net, x_new)
        inc = u_k.double() - u_k1.double()  # Alg. 2 line 13 for walkers not in B
        inc[moved] = (-_eq6_alpha(u_k1[moved], g_k1[moved], x_new[moved], x[moved], h)
                      + _eq6_alpha(u_k[moved], g_k[moved], x[moved], x_new[moved], h))  # Eq. 5
        a = a + inc
        x = x_new
    assert torch.allclose(m.walkers, x, atol=1e-5)
    got, _ = m.completed_log_weights()
    assert torch.allclose(got, a, atol=1e-4), (got - a).abs().max()
    assert float(a.std()) > 0.1  # the weights are not trivially equal


def _log_kernel(x, y, drift, h, temperature):
    """log beta(x, y) + const of the move actually run, y ~ N(x - h d(x), 2 h T I) (Eq. 30)."""
    return -((y - x + h * drift).double() ** 2).sum(-1) / (4 * h * temperature)


@pytest.mark.parametrize("temperature, clip", [(0.25, None), (1.0, 2.0), (0.3, 0.5)])
def test_log_weights_equal_kernel_ratio_at_any_temperature_and_clip(temperature, clip):
    """Independent form of the weights (Eq. 31): A += U_k(x)/T - U_{k+1}(x')/T
    + log beta_{k+1}(x', x) - log beta_k(x, x'), with the chain's own T and (clipped) drift."""
    k_steps, n, h = 6, 64, 0.1
    path = gauss_path(k_steps)
    m = make_method(path, n, temperature, grad_clip=clip)
    ref_net = GaussEnergy(*path[0])
    gen = torch.Generator()
    gen.set_state(m.gen.get_state())
    x = m.walkers.clone()
    a = torch.zeros(n, dtype=torch.float64)

    def drift(g):
        return g if clip is None else g.clamp(-clip, clip)

    for k in range(1, k_steps + 1):
        m.train_step(DATA, k)
        u_k, g_k = _u_and_grad(ref_net, x)
        x_new = x - h * drift(g_k) + math.sqrt(2 * h * temperature) * torch.randn((n, D), generator=gen)
        with torch.no_grad():
            ref_net.m.copy_(path[k][0])
            ref_net.log_s.copy_(path[k][1])
        u_k1, g_k1 = _u_and_grad(ref_net, x_new)
        a = a + (u_k.double() - u_k1.double()) / temperature \
            + _log_kernel(x_new, x, drift(g_k1), h, temperature) - _log_kernel(x, x_new, drift(g_k), h, temperature)
        x = x_new
    got, _ = m.completed_log_weights()
    assert torch.allclose(got, a, atol=1e-4), (got - a).abs().max()
    assert float(a.std()) > 1.0


def test_gmm_student_walkers_start_exactly_with_exact_log_z():
    from ebm_bench.nets.gmm_energy import GMMEnergy

    cls = METHODS.get("jarzynski")
    info = DataInfo((5,), False)
    m = cls({"net": "gmm_energy", "n_walkers": 4000, "step_size": 0.1, "temperature": 1.0,
             "optimizer": "sgd", "lr": 0.0}, info, "cpu", 0)
    assert isinstance(m.net, GMMEnergy)
    data = torch.randn(100, 5)
    out = m.train_step(data, 1)
    assert m.log_z_exact0
    assert out["log_z"] == pytest.approx(float(m.net.log_partition().detach()), abs=1e-9)  # A_0 = 0 at step 1
    assert out["ess"] == 1.0
    # with lr = 0 the model does not move: the weights stay near 0 and log Z stays exact
    for k in range(2, 30):
        m.train_step(data, k)
    est = m.estimates(data)
    assert est["log_z"] == pytest.approx(float(m.net.log_partition().detach()), abs=0.02)
    ce_exact = float(m.net.log_partition().detach()) + float(m.net(data).detach().double().mean())
    assert est["cross_entropy_est"] == pytest.approx(ce_exact, abs=0.02)


def test_logged_scalars_and_counts():
    k_steps, n = 10, 2000
    path = gauss_path(k_steps)
    m = make_method(path, n, resample_threshold=0.99)
    rows = [m.train_step(DATA, k) for k in range(1, k_steps + 1)]
    for key in ("log_z", "cross_entropy_est", "ess", "n_resamples", "resampled"):
        assert all(key in r and math.isfinite(r[key]) for r in rows), key
    assert rows[-1]["n_resamples"] == sum(r["resampled"] for r in rows) == m.n_resamples >= 1
    assert all(0 < r["ess"] <= 1 for r in rows)
    # after a resampling the weights restart at 0 (ESS 1 until the next move is completed)
    assert all(r["ess"] >= 0.99 or r["resampled"] == 1 for r in rows[1:])


def test_resampling_schedule_and_unweighted_never_resamples():
    path = gauss_path(10)
    m = make_method(path, 500, resample_threshold=0.999, resample_from_step=7)
    rows = [m.train_step(DATA, k) for k in range(1, 11)]
    assert all(r["resampled"] == 0 for r in rows[:7]) and any(r["resampled"] == 1 for r in rows[7:])
    u = make_method(path, 500, resample_threshold=0.999, weighted=False)
    for k in range(1, 11):
        u.train_step(DATA, k)
    assert u.n_resamples == 0 and float(u.log_w.abs().max()) == 0.0


def test_fixed_lag_resamples_every_l_updates_whatever_the_ess():
    """resample_every = L (App. B.1, Fig. 10's lags): updates start + L, start + 2L, ...
    resample, even at threshold c = 0 where the ESS test would never fire, and the weights
    restart at 0 there."""
    path = gauss_path(10)
    m = make_method(path, 500, resample_threshold=0.0, resample_every=3, resample_from_step=2)
    rows = [m.train_step(DATA, k) for k in range(1, 11)]
    assert [k for k, r in zip(range(1, 11), rows) if r["resampled"]] == [5, 8]
    assert m.n_resamples == 2
    never = make_method(path, 500, resample_threshold=0.0)
    assert not any(never.train_step(DATA, k)["resampled"] for k in range(1, 11))


def test_resample_ess_over_loss_reads_only_the_loss_walkers():
    """resample_ess_over: loss (reference CIFAR-10 code, docs/reference-equivalence.md row
    16): the resampling test reads the ESS of the N' walkers the loss uses (grad_walkers:
    previous), not Eq. 13's over all N. Here the 4 loss walkers carry degenerate weights
    (ESS 1 of 4) while the 64 walkers together stay above c = 0.5."""
    path = gauss_path(4)
    log_w = torch.zeros(64, dtype=torch.float64)
    log_w[:4] = torch.tensor([0.0, -30.0, -30.0, -30.0], dtype=torch.float64)
    ess_all = ess_fraction(log_w)
    assert ess_all > 0.5
    for over, want in (("all", False), ("loss", True)):
        m = make_method(path, 64, n_moved=4, grad_walkers="previous", resample_threshold=0.5,
                        resample_ess_over=over)
        m.prev_idx = torch.arange(4)
        assert m.resample_due(1, ess_all, log_w) is want, over
    with pytest.raises(ConfigError, match="resample_ess_over"):
        make_method(path, 64, n_moved=4, grad_walkers="subset", resample_ess_over="loss")


def test_clamp_is_refused_unless_the_quirk_is_named():
    cls = METHODS.get("jarzynski")
    info = DataInfo((1, 8, 8), True)
    params = {"net": "convnet", "net_params": {"nf": 4}, "clamp": True, "walker_init": "noise"}
    with pytest.raises(ConfigError, match="weights_ignore_clamp"):
        cls(params, info, "cpu", 0)
    cls({**params, "weights_ignore_clamp": True}, info, "cpu", 0)
    cls({**params, "weighted": False}, info, "cpu", 0)


def test_log_space_estimates_do_not_overflow():
    a = torch.tensor([5000.0, 5000.0, 4990.0, -1e4], dtype=torch.float64)
    assert math.isfinite(float(log_mean_exp(a)))
    assert float(log_mean_exp(a)) == pytest.approx(5000.0 + math.log((2 + math.exp(-10)) / 4))
    assert 0 < ess_fraction(a) <= 1


def test_weights_at_another_temperature_are_the_named_quirk_and_are_wrong():
    """weights_temperature reproduces reference-code quirk 2 (weights for T = 1 on a chain
    run at T != 1): it exists to reproduce that code, and its log Z is not the chain's."""
    k_steps, n, temperature = 20, 12000, 0.25
    path = gauss_path(k_steps, shift=1.0)
    exact = log_z_exact(path[-1][1], temperature)
    same = make_method(path, n, temperature, resample_threshold=0.5, weights_temperature=temperature)
    run_path(same, k_steps)
    quirk = make_method(path, n, temperature, resample_threshold=0.5, weights_temperature=1.0)
    run_path(quirk, k_steps)
    assert abs(same.estimates()["log_z"] - exact) < 0.05
    assert abs(quirk.estimates()["log_z"] - exact) > 0.5


def test_walker_init_model_without_an_exact_sampler_is_an_error():
    """Prop. 1 needs X_0 ~ rho_theta0: `model` on a network without an exact sampler is
    refused (no silent fallback); `noise` + burn-in is the explicit, logged approximation."""
    cls = METHODS.get("jarzynski")
    info = DataInfo((1, 8, 8), True)
    params = {"net": "convnet", "net_params": {"nf": 4}, "n_walkers": 8, "n_steps": 1, "burn_in_steps": 1}
    with pytest.raises(ConfigError, match="exact sampler"):
        cls({**params, "walker_init": "model"}, info, "cpu", 0)
    m = cls({**params, "walker_init": "noise"}, info, "cpu", 0)
    out = m.train_step(torch.zeros((4, 1, 8, 8)), 1)
    assert out["walkers_exact_start"] == 0.0
    # the GMM student at T = 1 has one: exact start, logged as such
    g = cls({"net": "gmm_energy", "n_walkers": 8, "temperature": 1.0, "optimizer": "sgd", "lr": 0.0},
            DataInfo((3,), False), "cpu", 0)
    assert g.train_step(torch.zeros((4, 3)), 1)["walkers_exact_start"] == 1.0
    with pytest.raises(ConfigError, match="exact sampler"):  # ... but not at another temperature
        cls({"net": "gmm_energy", "temperature": 0.5}, DataInfo((3,), False), "cpu", 0)


class GradRecorder:
    """Stands in for the optimiser: keeps a copy of every parameter gradient at step()."""

    def __init__(self, net):
        self.net, self.grads = net, None

    def zero_grad(self, set_to_none=True):
        for w in self.net.parameters():
            w.grad = None

    def step(self):
        self.grads = [w.grad.detach().clone() for w in self.net.parameters()]

    param_groups: list = []


def _param_grad(net, x):
    """d/dtheta of sum_i U(x_i), one row per point: (n, n_params)."""
    rows = []
    for xi in x:
        net.zero_grad()
        net(xi[None]).sum().backward()
        rows.append(torch.cat([w.grad.flatten() for w in net.parameters()]))
    net.zero_grad()
    return torch.stack(rows).double()


@pytest.mark.parametrize("n_moved, grad_walkers", [(0, "all"), (10, "all"), (10, "moved")])
def test_parameter_gradient_is_the_weighted_eq11_estimate(n_moved, grad_walkers):
    """Eq. 11 / Alg. 2 line 5: D = sum_i p_i dU(X_i) - mean_j dU(x*_j), p = softmax(A), over
    all N walkers (grad_walkers: all) or over the N' moved ones with p renormalised among
    them (moved). The optimiser descends the cross-entropy, whose gradient is -D (Eq. 8:
    d/dtheta H = E_*[dU] - E_theta[dU]). Uniform weights or the wrong walker set fail."""
    cls = METHODS.get("jarzynski")
    n, d = 24, 3
    m = cls({"net": "mlp", "net_params": {"hidden": 8, "depth": 2}, "n_walkers": n, "n_moved": n_moved,
             "grad_walkers": grad_walkers, "walker_init": "noise", "resample_threshold": 0.0, "step_size": 0.1,
             "temperature": 1.0}, DataInfo((d,), False), "cpu", 0)
    g = torch.Generator().manual_seed(5)
    m.walkers = torch.randn((n, d), generator=g)
    m.log_w = 3.0 * torch.randn(n, generator=g, dtype=torch.float64)  # far from uniform
    m.initialised = True
    m.opt = rec = GradRecorder(m.net)
    data = torch.randn((16, d), generator=g)
    x0, a = m.walkers.clone(), m.log_w.clone()
    gen = torch.Generator()
    gen.set_state(m.gen.get_state())
    m.train_step(data, 1)
    got = torch.cat([w.flatten() for w in rec.grads]).double()
    if n_moved and grad_walkers == "moved":
        idx = torch.randperm(n, generator=gen)[:n_moved]  # the mini-batch B of this update
    else:
        idx = torch.arange(n)
    p = torch.softmax(a[idx], 0)
    want = _param_grad(m.net, data).mean(0) - (p[:, None] * _param_grad(m.net, x0[idx])).sum(0)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got - want).abs().max()
    uniform = _param_grad(m.net, data).mean(0) - _param_grad(m.net, x0[idx]).mean(0)
    assert (uniform - want).abs().max() > 100 * (got - want).abs().max() + 1e-4  # the test can tell


@pytest.mark.parametrize("resampler", ["systematic", "multinomial"])
def test_resampling_resets_a_carries_log_z_and_tracks_ancestors_like_the_literal_algorithm(resampler):
    """Alg. 1 with the resampling step of Sec. 3.2 written out literally: when ESS_k < c
    the walkers are redrawn with p = softmax(A_k), A is reset to 0 and log Z is carried,
    log Z_k = log Z_{k_r} + logmeanexp(A_k) (Eq. 12); every walker keeps the index of the
    initial walker it descends from. Not resetting A, not carrying log Z or not permuting
    the ancestors fails."""
    k_steps, n, h = 8, 256, 0.1
    path = gauss_path(k_steps)
    m = make_method(path, n, resample_threshold=0.9, resampler=resampler)
    ref_net = GaussEnergy(*path[0])
    gen = torch.Generator()
    gen.set_state(m.gen.get_state())
    x = m.walkers.clone()
    a = torch.zeros(n, dtype=torch.float64)
    log_z_ref = m.log_z_ref
    anc = torch.arange(n)
    n_res = 0
    for k in range(1, k_steps + 1):
        out = m.train_step(DATA, k)
        # literal step k: estimates at theta_k, resampling, then the ULA move and Eq. 5
        log_z_k = log_z_ref + float(log_mean_exp(a))
        assert out["log_z"] == pytest.approx(log_z_k, abs=1e-6)
        now = k > 1 and ess_fraction(a) < 0.9
        if now:
            idx = resample_indices(a, n, resampler, gen)
            x, anc = x[idx], anc[idx]
            log_z_ref, a = log_z_k, torch.zeros(n, dtype=torch.float64)
            n_res += 1
        assert out["resampled"] == float(now)
        u_k, g_k = _u_and_grad(ref_net, x)
        x_new = x - h * g_k + math.sqrt(2 * h) * torch.randn((n, D), generator=gen)
        with torch.no_grad():
            ref_net.m.copy_(path[k][0])
            ref_net.log_s.copy_(path[k][1])
        u_k1, g_k1 = _u_and_grad(ref_net, x_new)
        a = a - _eq6_alpha(u_k1, g_k1, x_new, x, h) + _eq6_alpha(u_k, g_k, x, x_new, h)
        x = x_new
        assert out["n_resamples"] == n_res and m.log_z_ref == pytest.approx(log_z_ref, abs=1e-6)
        assert torch.equal(m.ancestors, anc) and out["n_ancestors"] == len(torch.unique(anc))
    assert n_res >= 2 and len(torch.unique(anc)) < n  # resampling happened and removed lineages
    assert torch.allclose(m.walkers, x, atol=1e-5)
    got, _ = m.completed_log_weights()
    assert torch.allclose(got, a, atol=1e-4), (got - a).abs().max()
    assert m.estimates()["log_z"] == pytest.approx(log_z_ref + float(log_mean_exp(a)), abs=1e-4)


def test_ancestry_survives_a_resume(tmp_path):
    """The ancestors are part of the method state: a run resumed from a checkpoint logs the
    same n_ancestors as an uninterrupted one."""
    path = gauss_path(12)
    full = make_method(path, 300, resample_threshold=0.95)
    rows = [full.train_step(DATA, k) for k in range(1, 13)]
    part = make_method(path, 300, resample_threshold=0.95)
    for k in range(1, 7):
        part.train_step(DATA, k)
    state = part.state_dict()
    again = make_method(path, 300, resample_threshold=0.95)
    again.load_state_dict(state)
    rest = [again.train_step(DATA, k) for k in range(7, 13)]
    assert [r["n_ancestors"] for r in rows[6:]] == [r["n_ancestors"] for r in rest]
    assert torch.equal(full.ancestors, again.ancestors) and rows[-1]["n_ancestors"] < 300


class ShiftOptimizer:
    """theta_k = theta_0 + k * delta: a parameter path that does not depend on gradients."""

    def __init__(self, net, scale=0.02, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.net, self.k = net, 0
        self.theta0 = [w.detach().clone() for w in net.parameters()]
        self.delta = [scale * torch.randn(w.shape, generator=g) for w in net.parameters()]

    def zero_grad(self, set_to_none=True):
        pass

    def step(self):
        self.k += 1
        with torch.no_grad():
            for w, w0, dw in zip(self.net.parameters(), self.theta0, self.delta):
                w.copy_(w0 + self.k * dw)

    param_groups: list = []


def _weights_under(precision_setting, weights_precision, n_moved):
    """Log weights and walkers after 3 updates with the global matmul precision set as given."""
    cls = METHODS.get("jarzynski")
    d = 48
    m = cls({"net": "mlp", "net_params": {"hidden": 256, "depth": 2}, "n_walkers": 64, "n_moved": n_moved,
             "walker_init": "noise", "burn_in_steps": 0, "resample_threshold": 0.0, "step_size": 0.01,
             "temperature": 1e-3, "weights_precision": weights_precision}, DataInfo((d,), False), "cpu", 0)
    m.opt = ShiftOptimizer(m.net)
    data = torch.randn((16, d), generator=torch.Generator().manual_seed(1))
    old = torch.get_float32_matmul_precision()
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.set_float32_matmul_precision(precision_setting)
        torch.backends.cuda.matmul.allow_tf32 = precision_setting != "highest"
        for k in range(1, 4):
            m.train_step(data, k)
        a, _ = m.completed_log_weights()
    finally:
        torch.set_float32_matmul_precision(old)
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return a, m.walkers.clone()


@pytest.mark.parametrize("n_moved", [0, 16])
def test_weight_update_does_not_depend_on_the_matmul_precision_setting(n_moved):
    """The work terms are energy differences / T (T = 1e-3 here, 5e-5 at paper scale): the
    walker energies and gradients that enter them run in IEEE float32 whatever
    torch.set_float32_matmul_precision / allow_tf32 say (on this CPU "medium" turns float32
    matmuls into bfloat16 where supported; on CUDA "high" means TF32)."""
    ref_a, ref_x = _weights_under("highest", "strict", n_moved)
    for setting in ("high", "medium"):
        a, x = _weights_under(setting, "strict", n_moved)
        assert torch.equal(x, ref_x) and torch.allclose(a, ref_a, rtol=0, atol=1e-9), (setting, (a - ref_a).abs().max())
    # the check can fail: where reduced precision exists, the unprotected weights change
    x = torch.randn(64, 256)
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        reduced = not torch.equal(x @ x.T, torch.mm(x.double(), x.double().T).float()) and \
            not torch.equal(x @ x.T, _mm_highest(x))
    finally:
        torch.set_float32_matmul_precision(old)
    if reduced:
        a, _ = _weights_under("medium", "native", n_moved)
        # a thousand times the strict check's tolerance: how much bfloat16 moves the weights
        # depends on the CPU (8e-5 on one machine of this workplace, above 1e-3 on another)
        assert (a - ref_a).abs().max() > 1e-6


def _mm_highest(x):
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        return x @ x.T
    finally:
        torch.set_float32_matmul_precision(old)
