"""HEE (ebm_bench/methods/hee.py, ebm_bench/samplers/hee_dynamics.py): the second-order
dynamics of supp. Eq. 4-13 leave a Gaussian posterior invariant, the interneurons estimate
A'(eta) (supp. Eq. 3), the local learning rule is grad ln p(x_{0:L}) (supp. Eq. 1), HEE-L
learns a Gaussian's covariance, generation samples the model, and bad params are refused.

Tolerances are Monte Carlo standard errors computed in the test (or the O(dt) bias of
Euler-Maruyama computed exactly from the linear recursion), never tuned constants."""

import math

import pytest
import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.hee import HEE
from ebm_bench.evaluation import hee_moments as hmo
from ebm_bench.samplers import hee_dynamics as hd

# a correlated 3-D Gaussian "posterior" N(mu, P^-1), eigenvalues of P in [1, 4]
_Q = torch.linalg.qr(torch.tensor([[1.0, 0.3, -0.2], [0.1, 1.0, 0.4], [-0.3, 0.2, 1.0]], dtype=torch.float64))[0]
PREC = _Q @ torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)) @ _Q.T
MU = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
COV = torch.linalg.inv(PREC)


def gauss_score(z):
    return -(z - MU) @ PREC


def cov_se(cov, n):
    """Standard error of each entry of a sample covariance of n Gaussian draws."""
    d = torch.diagonal(cov)
    return torch.sqrt((d[:, None] * d[None, :] + cov ** 2) / n)


@pytest.mark.parametrize("adaptation", ["literal", "driven"])
def test_em_stationary_law_of_second_order_tends_to_posterior_times_gaussian_v(adaptation):
    """Exact stationary covariance of the EM recursion (discrete Lyapunov fixed point, its
    matrices read off the step function): for both readings the z-block tends to P^-1, z
    and v decorrelate, v's variance tends to 4 m tau_z / tau_v, and the error is O(dt)
    (halving dt halves it): both discretisations are consistent (Eq. 12-13)."""
    errs = []
    for dt in (0.02, 0.01, 0.005):
        s = hmo.stationary_cov_linear(PREC, dt, tau_z=1.0, order=2, m=0.5, tau_v_factor=0.5, adaptation=adaptation)
        err_z = (s[:3, :3] - COV).abs().max() / COV.abs().max()
        err_v = (s[3:, 3:] - 4 * 0.5 / 0.5 * torch.eye(3, dtype=torch.float64)).abs().max() / 4.0
        err_zv = s[:3, 3:].abs().max() / math.sqrt(COV.abs().max() * 4.0)
        errs.append(max(err_z, err_v, err_zv))
    assert errs[1] < 0.05
    assert 1.6 < errs[0] / errs[1] < 2.4 and 1.6 < errs[1] / errs[2] < 2.4, errs


@pytest.mark.parametrize("adaptation", ["literal", "driven"])
def test_second_order_dynamics_leave_gaussian_posterior_invariant(adaptation):
    """Start (z, v) from the claimed stationary law p(z | x) N(v; 0, 4 m tau_z / tau_v) and
    run supp. Eq. 4-5 for 10 tau_z: mean and covariance of z and v stay at the exact
    stationary law of the EM recursion (itself within O(dt) of the claim, test above), to
    Monte Carlo error. Mutations caught: independent noise for v (z over-dispersed ~5x in
    the slow direction), a wrong noise scale in either equation, v's drift sign."""
    n, dt, tau = 6000, 0.01, 1.0
    g = torch.Generator().manual_seed(0)
    s = hmo.stationary_cov_linear(PREC, dt, tau_z=tau, order=2, adaptation=adaptation)
    chol = torch.linalg.cholesky(s)
    zv = torch.randn(n, 6, generator=g, dtype=torch.float64) @ chol.T
    z0, v0 = zv[:, :3] + MU, zv[:, 3:]
    z, v = hd.run_langevin(gauss_score, z0, 1000, dt, tau, g, order=2, m=0.5, tau_v_factor=0.5, v0=v0,
                           adaptation=adaptation)
    joint = torch.cat([z, v], 1)
    emp = torch.cov(joint.T)
    assert ((z.mean(0) - MU).abs() < 4 * torch.sqrt(torch.diagonal(s[:3, :3]) / n)).all()
    assert (v.mean(0).abs() < 4 * torch.sqrt(torch.diagonal(s[3:, 3:]) / n)).all()
    assert ((emp - s).abs() < 4 * cov_se(s, n)).all(), (emp - s)
    # and v is N(0, 4 m tau_z / tau_v) = N(0, 4) within MC + the O(dt) bias bounded above
    assert (torch.diagonal(emp[3:, 3:]) - 4.0).abs().max() < 4 * 4.0 * math.sqrt(2 / n) + 0.05 * 4.0


@pytest.mark.parametrize("order", [1, 2])
def test_dynamics_converge_to_posterior_from_rest(order):
    """From z = 0 (and v = 0) both orders reach N(mu, P^-1) after 20 tau_z (slowest rate 1)."""
    n, dt = 4000, 0.01
    g = torch.Generator().manual_seed(1)
    z, _ = hd.run_langevin(gauss_score, torch.zeros(n, 3, dtype=torch.float64), 2000, dt, 1.0, g, order=order)
    s = hmo.stationary_cov_linear(PREC, dt, tau_z=1.0, order=order)[:3, :3]
    assert ((z.mean(0) - MU).abs() < 4 * torch.sqrt(torch.diagonal(s) / n)).all()
    assert ((torch.cov(z.T) - s).abs() < 4 * cov_se(s, n)).all()


def _slow_direction():
    evals, evecs = torch.linalg.eigh(PREC)
    return evecs[:, 0]  # eigenvalue 1: the slowest posterior direction


def test_stationary_covariance_and_iact_of_an_ar1_recursion_are_its_closed_forms():
    """The analysis primitives on the one case with a closed form: s' = a s + sqrt(q) n has
    stationary variance q / (1 - a^2) and integrated autocorrelation time (1 + a) / (1 - a)
    steps; and on a random stable 3x3 recursion S solves S = M S M^T + Q.
    Mutations caught: the IACT's "- 1" term (-> - 0.9), S scaled by 1.01, M transposed
    in the Lyapunov call."""
    a, q, dt = 0.9, 0.3, 0.25
    M, Q = torch.tensor([[a]], dtype=torch.float64), torch.tensor([[q]], dtype=torch.float64)
    S = hmo.lyapunov(M, Q)
    assert abs(float(S) - q / (1 - a * a)) < 1e-12
    assert abs(hmo.iact(M, S, torch.ones(1), dt) - dt * (1 + a) / (1 - a)) < 1e-12
    g = torch.Generator().manual_seed(0)
    M = 0.4 * torch.randn(3, 3, generator=g, dtype=torch.float64)
    B = torch.randn(3, 3, generator=g, dtype=torch.float64)
    S = hmo.lyapunov(M, B @ B.T)
    assert torch.allclose(S, M @ S @ M.T + B @ B.T, rtol=0, atol=1e-12)


def test_literal_reading_has_first_orders_z_autocovariance():
    """Supp. Eq. 7 as printed: v is never driven by z and z's noise is white noise through
    an all-pass filter, so the stationary autocovariance of z is first order's. Exactly
    (Lyapunov recursion, lags 0 .. 4 tau_z), the EM recursions agree to O(dt): the
    difference halves with dt; the driven reading's differs at every dt (the test can fail)."""
    diffs, driven = [], []
    for dt in (0.02, 0.01, 0.005):
        lags = [int(round(t / dt)) for t in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
        first = hmo.lag_autocov_linear(PREC, dt, 1.0, 1, lags)
        lit = hmo.lag_autocov_linear(PREC, dt, 1.0, 2, lags, adaptation="literal")
        drv = hmo.lag_autocov_linear(PREC, dt, 1.0, 2, lags, adaptation="driven")
        scale = COV.abs().max()
        diffs.append(max(float((a - b).abs().max()) for a, b in zip(lit, first)) / scale)
        driven.append(max(float((a - b).abs().max()) for a, b in zip(drv, first)) / scale)
    assert diffs[1] < 0.05, diffs
    assert 1.6 < diffs[0] / diffs[1] < 2.4 and 1.6 < diffs[1] / diffs[2] < 2.4, diffs
    assert min(driven) > 0.2, driven


def test_driven_reading_has_lower_integrated_autocorrelation_time():
    """Integrated autocorrelation time of the slowest posterior direction, exactly from the
    recursion: the literal reading's equals first order's (to O(dt)), the driven reading's
    is several times lower (continuous-time slow rate ~5 p / tau_z at m = 1/2, tau_v =
    tau_z / 2 against p / tau_z for first order: 2 / p = 2 tau_z for first order here)."""
    w = _slow_direction()
    dt = 0.005
    first = hmo.iact_linear(PREC, dt, 1.0, 1, w)
    lit = hmo.iact_linear(PREC, dt, 1.0, 2, w, adaptation="literal")
    drv = hmo.iact_linear(PREC, dt, 1.0, 2, w, adaptation="driven")
    assert abs(first - 2.0) < 0.02, first  # OU with rate p = 1: integral of e^{-|t|} = 2
    assert abs(lit / first - 1) < 0.02, (lit, first)
    assert drv < 0.5 * first, (drv, first)


def test_hee_method_runs_the_configured_reading_and_counts_gradient_evaluations():
    """The HEE method's inference loop moves v by the configured reading (driven: v responds
    to z's score within one step; literal: it does not) and counts one gradient evaluation
    per chain per EM step."""
    from ebm_bench.samplers.counting import grad_evals

    outs = {}
    for adaptation in ("literal", "driven"):
        m = HEE({"layers": [3], "nonlinearity": "linear", "interneurons": False, "adaptation": adaptation,
                 "v_init": "zero", "m": 0.5, "tau_v_factor": 0.5}, DataInfo((2,), False), "cpu", 0)
        m.bias[m.sl[1]] = 5.0  # a large latent score at z = 0
        x0 = torch.zeros(400, 2)
        before = grad_evals()
        r = m.simulate(x0, 1, torch.Generator().manual_seed(0), mode="infer", init=torch.zeros(400, m.N))
        assert grad_evals() - before == 400
        outs[adaptation] = r["V"][:, m.sl[1]]
    # literal: v' = (1 - dt m / tau_v) * 0 + noise (independent of the score); driven adds
    # -dt m / tau_v * 4 g = -0.01 * 4 * 5 = -0.2 on average (noise sd of each mean ~0.008)
    assert abs(outs["literal"].mean()) < 0.05
    assert abs(outs["driven"].mean() + 0.2) < 0.05


def _model(**params):
    p = {"layers": [3, 2], "nonlinearity": "linear", **params}
    if p.get("quadratic") == "diagonal":
        p.setdefault("interneuron_precondition", True)  # required for precisions up to 25
    return HEE(p, DataInfo((2,), False), "cpu", 0)


@pytest.mark.parametrize("quadratic,precondition", [("fixed", False), ("diagonal", True), ("full", False),
                                                    ("diagonal", "exact")])
def test_interneurons_estimate_a_prime_of_gaussian_conditional(quadratic, precondition):
    """Interneurons driven by a fixed eta: their average over chains and the last 2 tau_x is
    A'(eta) = (2 Lambda)^-1 eta within 4 Monte Carlo standard errors (chains independent;
    the EM recursion is linear, its stationary mean has no discretisation bias), and their
    variance is the exact stationary variance of the EM recursion (the conditional's
    (2 Lambda)^-1 up to the O(dt / tau_u) factor 2 / (2 - a); for the exact OU step the
    conditional's variance itself) to 4 MC errors. Mutations
    caught: noise std off by sqrt(2); drift eta - Lambda u instead of eta - 2 Lambda u."""
    exact = precondition == "exact"
    m = _model(quadratic=quadratic, interneuron_precondition=precondition is True,
               interneuron_integrator="exact" if exact else "euler")
    g = torch.Generator().manual_seed(2)
    n_chain = 2000
    if quadratic == "full":
        m.lam = [torch.tensor([[1.0, 0.3], [0.3, 0.8]]), 1.5 * torch.eye(3), torch.tensor([[0.6, -0.2], [-0.2, 1.2]])]
    else:
        m.lam = torch.linspace(0.5, 2.0, m.N)
    eta = torch.randn(1, m.N, generator=g).expand(n_chain, -1)
    want = m.cond_mean(eta)[0]
    u = torch.zeros(n_chain, m.N)
    acc = torch.zeros(n_chain, m.N)
    for step in range(500):  # 5 tau_x = 50 tau_u
        u = m._interneuron_step(u, eta, g)
        if step >= 300:
            acc += u
    avg = acc / 200
    se = avg.std(0) / math.sqrt(n_chain)
    assert ((avg.mean(0) - want).abs() < 4 * se).all(), (avg.mean(0), want)
    # exact stationary variance of the EM recursion: u' = (1 - a) u + ..., a = dt / tau_u * 2 lambda
    # (preconditioned: a = dt / tau_u, noise scaled by (2 lambda)^-1/2), and for the full
    # precision the discrete Lyapunov fixed point of the same recursion
    if exact:  # exact OU step: the conditional's variance itself
        var_em = 1 / (2 * m.lam)
    elif quadratic == "full":
        var_em = torch.cat([torch.diagonal(hmo.stationary_cov_linear(2 * lam, m.dt, m.tau_u, order=1)) for lam in m.lam])
    else:
        a = m.dt / m.tau_u * (torch.ones(m.N) if precondition is True else 2 * m.lam)
        var_em = 2 * m.dt / m.tau_u * (1 / (2 * m.lam) if precondition is True else 1) / (a * (2 - a))
    ratio = u.var(0) / var_em.float()
    assert ((ratio - 1).abs() < 4 * math.sqrt(2 / n_chain)).all(), ratio


def _per_layer_updates(m, xs, a, a2=None):
    """HEE.updates (the rule the dynamics apply) on per-layer lists; W, b, lam per layer."""
    X = torch.cat(xs, 1)
    A2 = None if a2 is None else (a2 if m.full else torch.cat(a2, 1))
    u = m.updates(X, m.f(X), torch.cat(a, 1), A2)
    out = {"W": u["W"], "b": [u["b"][s] for s in m.sl]}
    if "lam" in u:
        out["lam"] = u["lam"] if m.full else [u["lam"][s] for s in m.sl]
    return out


@pytest.mark.parametrize("nonlinearity,quadratic", [("linear", "fixed"), ("tanh", "diagonal"), ("tanh", "full")])
def test_local_learning_rule_is_the_gradient_of_log_joint(nonlinearity, quadratic):
    """dW_l = <(x_l - A'(eta_l)) f(x_{l+1})^T>, db_l = <x_l - A'>, dLambda = <E[x x^T|eta] - x x^T>
    (the rule the dynamics apply, with the interneuron estimate replaced by its expectation)
    equals autograd's grad of mean ln p(x_{0:L}) (log_joint is written independently)."""
    m = _model(layers=[3, 4], nonlinearity=nonlinearity, quadratic=quadratic)
    g = torch.Generator().manual_seed(3)
    m.W = [torch.randn(w.shape, generator=g, dtype=torch.float64) for w in m.W]
    m.bias = torch.randn(m.N, generator=g, dtype=torch.float64)
    if quadratic == "full":
        m.lam = []
        for n in m.sizes:
            a = torch.randn(n, n, generator=g, dtype=torch.float64)
            m.lam.append(a @ a.T / n + 0.5 * torch.eye(n, dtype=torch.float64))
    else:
        m.lam = torch.rand(m.N, generator=g, dtype=torch.float64) + 0.5
    xs = [torch.randn(7, n, generator=g, dtype=torch.float64) for n in m.sizes]
    E = m.eta(m.f(torch.cat(xs, 1)))
    a = m.split(m.cond_mean(E))
    a2 = m.cond_second_moment(E)
    a2 = a2 if quadratic == "full" else m.split(a2)
    local = _per_layer_updates(m, xs, a, a2 if quadratic != "fixed" else None)

    W = [w.clone().requires_grad_(True) for w in m.W]
    b = [bl.clone().requires_grad_(True) for bl in m.b]
    lam = [m.lam_layer(l).clone().requires_grad_(True) for l in range(m.L + 1)]
    m.log_joint(xs, W=W, b=b, lam=lam).mean().backward()
    for l in range(m.L):
        assert torch.allclose(local["W"][l], W[l].grad, atol=1e-10), l
    for l in range(m.L + 1):
        assert torch.allclose(local["b"][l], b[l].grad, atol=1e-10), l
    if quadratic != "fixed":
        for l in range(m.L + 1):
            grad = lam[l].grad
            assert torch.allclose(local["lam"][l], grad, atol=1e-10), l


def test_hee_l_learns_the_covariance_of_gaussian_data():
    """HEE-L (one latent layer of 2 units, g = -x^T x) trained by the full system --
    second-order inference, interneurons, the local rule -- on N(mu, C) data: the model's
    exact p(x_0) = N(m_0, C_0) has C_0 within 15% of C (relative Frobenius; measured
    ~5-9% over seeds: O(dt) EM bias of the posterior and the interneurons' lag) and m_0
    within 0.15. Mutation caught: latent noise std x sqrt(2) (posterior too wide)."""
    torch.manual_seed(0)
    info = DataInfo((2,), False)
    C = torch.tensor([[3.0, 1.0], [1.0, 1.5]])
    mu = torch.tensor([1.0, -0.5])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 2, generator=g) @ torch.linalg.cholesky(C).T + mu
    m = HEE({"layers": [2], "nonlinearity": "linear", "present_time": 2.0, "learn_after": 1.0, "tau_theta": 0.5,
             "order": 2, "tau_z": 1.0, "weight_init": 1.0}, info, "cpu", 0)
    for step in range(60):
        m.train_step(x[torch.randint(0, len(x), (1024,), generator=g)], step + 1)
    mean, cov = m.marginal_gaussian()
    assert ((mean.float() - mu).abs() < 0.15).all(), mean
    assert (cov.float() - C).norm() / C.norm() < 0.15, cov


def test_joint_and_marginal_generation_sample_hee_l_marginal():
    """With ``generation_output: last`` joint generation (Langevin on the joint, closed-form
    A') is exact up to O(dt): samples of x_0 have HEE-L's p(x_0) mean and covariance to MC
    error (+2% EM bias allowance). Marginal generation (top-down) with slow upper layers
    (tau_z = 50 tau_x) too; its x_1 -> x_0 lag shrinks the x_1-driven variance by
    rate_0 / (rate_0 + rate_1) = 0.98 here (our documented choice), inside 4 SE + 4%."""
    n = 3000
    for gen_mode, extra, bias in (("joint", {"tau_z": 1.0, "joint_time": 20.0, "joint_average": 1.0, "interneurons": False}, 0.02),
                                  ("marginal", {"tau_z": 50.0, "marginal_time": 150.0, "marginal_average": 1.0}, 0.04)):
        m = HEE({"layers": [2], "nonlinearity": "linear", "generation_output": "last", "sample_batch": n, **extra},
                DataInfo((2,), False), "cpu", 0)
        g = torch.Generator().manual_seed(4)
        m.W = [torch.tensor([[2.0, -1.0], [0.5, 1.5]])]
        m.bias = torch.tensor([1.0, -1.0, 0.5, 0.3])
        mean, cov = m.marginal_gaussian()
        x = m.sample(n, generation=gen_mode).double()
        se = cov_se(cov, n)
        assert ((x.mean(0) - mean).abs() < 4 * torch.sqrt(torch.diagonal(cov) / n)).all(), (gen_mode, x.mean(0), mean)
        assert ((torch.cov(x.T) - cov).abs() < 4 * se + bias * cov.abs().max()).all(), (gen_mode, torch.cov(x.T), cov)
        del g


def test_mc_marginal_density_matches_closed_form_for_linear_model():
    """The nonlinear model's density estimator (mixture over ancestral samples), applied to
    a linear model, agrees with HEE-L's exact Gaussian p(x_0)."""
    m = _model(density_mc=20000)
    with torch.no_grad():
        m.W = [torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.8, -0.4]]), torch.tensor([[0.5, 0.1], [-0.3, 0.6], [0.2, 0.2]])]
        m.bias = torch.linspace(-0.5, 0.5, m.N)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(5)) * 1.2
    exact = m.log_marginal(x)
    m.params["nonlinearity"] = "tanh"
    m.f = lambda t: t  # same model, MC path
    mc = m.log_marginal(x)
    terms = m.mc_log_terms(x).exp()  # N(x; mu_k, K_0) per ancestral sample k
    se_log = terms.std(1) / terms.mean(1) / math.sqrt(terms.shape[1])  # delta method
    assert ((mc - exact).abs() < 4 * se_log + 1e-6).all(), ((mc - exact).abs() / se_log).max()


@pytest.mark.parametrize("key,value", [("order", 3), ("generation", "ancestral"), ("nonlinearity", "relu"),
                                       ("quadratic", "cubic"), ("layers", []), ("tau_z", [1.0]), ("dt", 0.5),
                                       ("connectivity", 0.0), ("joint_average", 400.0), ("learn_after", 300.0)])
def test_bad_params_raise_config_error_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        HEE({key: value}, DataInfo((2,), False), "cpu", 0)


def test_sparse_connections_stay_sparse():
    m = HEE({"layers": [20, 10], "connectivity": 0.2, "present_time": 0.5}, DataInfo((30,), False), "cpu", 0)
    zero = [w == 0 for w in m.W]
    assert all(0.1 < float(z.float().mean()) < 1 - 0.1 for z in zero)
    m.train_step(torch.randn(16, 30), 1)
    assert all(bool((w[z] == 0).all()) for w, z in zip(m.W, zero))


def test_full_quadratic_interneuron_moment_is_the_batch_mean_without_per_sample_matrices():
    """quadratic: full with interneurons: the Lambda update reads the batch mean of the
    interneurons' u u^T (averaged over the k interneurons), computed as one (n, n) product
    (HEE.interneuron_second_moment), never as B per-sample (n, n) matrices (4.6 GB per
    Euler step at CIFAR-10's first layer, supp. Table 1); the update is the one the
    per-sample estimates give."""
    from ebm_bench.methods.hee import HEE

    g = torch.Generator().manual_seed(0)
    U = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)  # k = 3 interneurons, B = 5, n = 4
    per_sample = (U[:, :, :, None] * U[:, :, None, :]).mean(0)  # (B, n, n): the old estimate
    assert torch.allclose(HEE.interneuron_second_moment(U), per_sample.mean(0), atol=1e-12)
    m = _model(layers=[3, 4], quadratic="full")
    X = torch.randn(5, m.N, generator=g, dtype=torch.float64)
    A = torch.randn(5, m.N, generator=g, dtype=torch.float64)
    Uk = torch.randn(2, 5, m.N, generator=g, dtype=torch.float64)
    FX = m.f(X)
    old = m.updates(X, FX, A, [(Uk[:, :, s, None] * Uk[:, :, None, s]).mean(0) for s in m.sl])
    new = m.updates(X, FX, A, [HEE.interneuron_second_moment(Uk[:, :, s]) for s in m.sl])
    for a, b in zip(old["lam"], new["lam"]):
        assert torch.allclose(a, b, atol=1e-12)
    # the dynamics hand the update (n, n) matrices: no (B, n, n) tensor is built
    seen = []
    orig = HEE.updates

    def spy(self, X, FX, A, A2):
        seen.extend(a.dim() for a in A2)
        return orig(self, X, FX, A, A2)

    m2 = _model(layers=[3, 4], quadratic="full", present_time=0.05)  # 5 Euler steps
    HEE.updates = spy
    try:
        m2.train_step(torch.randn(6, m2.sizes[0], generator=g), 1)
    finally:
        HEE.updates = orig
    assert seen and set(seen) == {2}
