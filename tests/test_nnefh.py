"""NN-EFH (ebm_bench/methods/nnefh.py) against paper 004's Eq. 5-7 and Algorithms 1-2,
and its matched EBM baseline (ebm_bench/methods/ebm_matched.py)."""

import copy
import itertools
import math

import pytest
import torch

from ebm_bench.methods.base import DataInfo
from ebm_bench.methods.ebm_matched import EBMMatched
from ebm_bench.methods.nnefh import NNEFH
from ebm_bench.samplers.gibbs_langevin import GibbsLangevin

INFO = DataInfo((1, 8, 8), True, 10)
NET = {"net": "attention", "net_params": {"nf": 4, "n_features": 6}}


def make(**params):
    p = {**NET, "n_hidden": 5, "gibbs_steps": 2, "langevin_steps": 2, "data_bank_size": 16, **params}
    m = NNEFH(p, INFO, "cpu", 0)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # a generic point: non-zero mu, attention gains, biases
        m.model.mu.copy_(0.3 * torch.randn(INFO.shape, generator=g))
        for mod in m.model.modules():
            if hasattr(mod, "gamma"):
                mod.gamma.fill_(0.5)
        m.model.hidden.bias.copy_(torch.randn(m.model.hidden.bias.shape, generator=g))
    return m


def batch(n, g, h=5):
    return torch.rand((n, *INFO.shape), generator=g) * 2 - 1, torch.bernoulli(torch.full((n, h), 0.5), generator=g)


def eq6(m, x, z):
    """Eq. 6 written out independently: |x - mu|^2 - U(x)^T W^T z - b_z^T z."""
    u = m.model.stats_net.features(x)
    W, b, mu = m.model.hidden.weight, m.model.hidden.bias, m.model.mu
    return ((x - mu) ** 2).flatten(1).sum(1) - ((u @ W.T) * z).sum(1) - z @ b


def test_energy_is_eq6_and_posterior_is_eq5():
    m = make()
    g = torch.Generator().manual_seed(0)
    x, z = batch(6, g)
    with torch.no_grad():
        assert torch.allclose(m.model.joint_energy(x, z), eq6(m, x, z), atol=1e-5)
        feats = m.features(x)
        u = m.model.stats_net.features(x)
        eta = u @ m.model.hidden.weight.T + m.model.hidden.bias
        assert torch.allclose(feats["U"], u) and torch.allclose(feats["eta"], eta, atol=1e-6)
        # Eq. 5 is the exact conditional of Eq. 6: log p(z_j=1|x)/p(z_j=0|x) = E(z_j=0) - E(z_j=1)
        for j in range(5):
            z0, z1 = z.clone(), z.clone()
            z0[:, j], z1[:, j] = 0.0, 1.0
            diff = m.model.joint_energy(x, z0) - m.model.joint_energy(x, z1)
            assert torch.allclose(diff, eta[:, j], atol=1e-5)


def test_free_energy_marginalises_the_hidden_units():
    m = make(n_hidden=3)
    x = torch.rand((4, *INFO.shape), generator=torch.Generator().manual_seed(1)) * 2 - 1
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    with torch.no_grad():
        e = torch.stack([m.model.joint_energy(x, s.expand(4, 3)) for s in states], 1)
        assert torch.allclose(m.energy(x), -torch.logsumexp(-e, 1), atol=1e-5)


def test_gradient_of_every_parameter_group_is_eq7():
    """d loss / d theta = mean dE/dtheta(data) - mean dE/dtheta(model), per group: closed
    forms for mu, W, b_z; autograd through the independent Eq. 6 for phi."""
    m = make()
    g = torch.Generator().manual_seed(3)
    x_pos, z_pos = batch(8, g)
    x_neg, z_neg = batch(12, g)
    loss, _, _ = m.contrastive_loss(x_pos, z_pos, x_neg, z_neg)
    m.opt.zero_grad()
    loss.backward()
    mu = m.model.mu.detach()
    with torch.no_grad():
        u_pos, u_neg = m.model.stats(x_pos), m.model.stats(x_neg)
    want_mu = (-2 * (x_pos - mu)).mean(0) - (-2 * (x_neg - mu)).mean(0)
    want_W = -(z_pos.T @ u_pos) / 8 + (z_neg.T @ u_neg) / 12
    want_b = -z_pos.mean(0) + z_neg.mean(0)
    assert torch.allclose(m.model.mu.grad, want_mu, atol=1e-5)
    assert torch.allclose(m.model.hidden.weight.grad, want_W, atol=1e-5)
    assert torch.allclose(m.model.hidden.bias.grad, want_b, atol=1e-6)
    phi = list(m.model.stats_net.parameters())
    ref = torch.autograd.grad(eq6(m, x_pos, z_pos).mean() - eq6(m, x_neg, z_neg).mean(), phi)
    assert len(phi) > 4
    for p, r in zip(phi, ref):
        assert p.grad is not None and torch.allclose(p.grad, r, atol=1e-5)


def test_eq7_sign_lowers_the_energy_of_data():
    m = make()
    g = torch.Generator().manual_seed(4)
    x_pos, z_pos = batch(16, g)
    x_neg, z_neg = batch(16, g)
    with torch.no_grad():
        before_pos, before_neg = m.model.joint_energy(x_pos, z_pos).mean(), m.model.joint_energy(x_neg, z_neg).mean()
    opt = torch.optim.SGD(m.model.parameters(), lr=1e-3)
    loss, _, _ = m.contrastive_loss(x_pos, z_pos, x_neg, z_neg)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after_pos, after_neg = m.model.joint_energy(x_pos, z_pos).mean(), m.model.joint_energy(x_neg, z_neg).mean()
    assert after_pos < before_pos and after_neg > before_neg


def test_train_step_uses_data_as_the_positive_phase_and_fresh_chains():
    m = make(data_noise=0.0)
    seen = []
    orig = m.contrastive_loss

    def spy(x_pos, z_pos, x_neg, z_neg):
        seen.append((x_pos.clone(), x_neg.clone()))
        return orig(x_pos, z_pos, x_neg, z_neg)

    m.contrastive_loss = spy
    x = torch.rand((8, *INFO.shape), generator=torch.Generator().manual_seed(5)) * 2 - 1
    m.train_step(x, 1)
    assert torch.equal(seen[0][0], x)
    assert m.sampler_steps_per_iter == 2 * 2
    # no chain state survives an update: a method restored to the same (parameters, generator)
    # draws the same negatives whatever chains it ran before
    state = copy.deepcopy(m.state_dict())
    m.train_step(x, 2)
    other = make(data_noise=0.0)
    other.contrastive_loss = spy
    other.load_state_dict(state)
    other.train_step(x, 2)
    assert torch.equal(seen[1][1], seen[2][1])


def test_sampler_settings_and_batch_normalisation_option():
    m = make(step_size=1.0, temperature=5e-5, sampler_batch_normalised=False)
    s = m.sampler
    assert (s.step_size, s.temperature, s.batch_normalised_grad, s.hidden_temperature) == (1.0, 5e-5, False, 1.0)
    assert s.effective_temperature(64) == 5e-5  # the loss mean does not touch the sampler
    q = make(step_size=1.0, temperature=5e-5)  # the default: the batch-normalised reading
    assert q.sampler.batch_normalised_grad
    assert q.sampler.effective_temperature(64) == pytest.approx(64 * 5e-5)
    assert q.sampler.ula(1.0, 64).noise_std == pytest.approx(0.01)


def test_generation_starts_hidden_units_from_training_data(monkeypatch):
    """Alg. 2: sample() draws z ~ p(z | x_data) with x_data from the bank of training examples."""
    m = make(data_noise=0.0)
    x = torch.rand((16, *INFO.shape), generator=torch.Generator().manual_seed(6)) * 2 - 1
    x = ((x + 1) * 127.5).round() / 127.5 - 1  # on the bank's 256-level grid
    m.train_step(x, 1)
    calls = []
    orig = GibbsLangevin.init_test

    def spy(self, model, x_data, gen):
        calls.append(x_data.clone())
        return orig(self, model, x_data, gen)

    monkeypatch.setattr(GibbsLangevin, "init_test", spy)
    out = m.sample(10)
    assert out.shape == (10, *INFO.shape) and len(calls) == 1
    d = (calls[0].flatten(1)[:, None] - x.flatten(1)[None]).abs().amax(-1).min(1).values
    assert d.max() < 1e-5  # every initialisation is a training example
    calls.clear()
    make(sample_init="noise").sample(4)
    assert not calls


def test_matched_ebm_is_the_same_network_with_a_linear_readout():
    e = EBMMatched({**NET}, INFO, "cpu", 0)
    n = NNEFH({**NET, "n_hidden": 5}, INFO, "cpu", 0)
    x = torch.rand((4, *INFO.shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(e.features(x)["penultimate"], n.features(x)["U"])  # same init, same U
        u = e.net.features(x)
        assert torch.allclose(e.energy(x), u @ e.net.head.weight[0] + e.net.head.bias[0], atol=1e-6)
    sd_e = {k for k in e.net.state_dict() if not k.startswith("head.")}
    sd_n = {k.removeprefix("stats_net.") for k in n.model.state_dict() if k.startswith("stats_net.")}
    assert sd_e == sd_n
    assert e.params["n_steps"] == n.params["gibbs_steps"] * n.params["langevin_steps"]
    assert (e.params["step_size"], e.params["temperature"]) == (n.params["step_size"], n.params["temperature"])
    x0 = e.init_chains(20000)
    assert abs(float(x0.std()) - 1.0) < 0.01  # N(0, I), like the NN-EFH's chains


# --------------------------------------------------------------------------------------------
# issue 12: tests that fail when the method is wrong, and the matched settings of paper 004


class LinearStats(torch.nn.Module):
    """U(x) = A x + c: a linear sufficient-statistics network (Gaussian p(x | z))."""

    def __init__(self, d, k, g):
        super().__init__()
        self.lin = torch.nn.Linear(d, k)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(k, d, generator=g))
            self.lin.bias.copy_(torch.randn(k, generator=g))

    def features(self, x):
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("eps,T", [(0.25, 0.5), (0.1, 2e-2)])
def test_x_moves_sample_the_closed_form_gaussian_when_u_is_linear(eps, T):
    """With U(x) = A x + c, E(x, z) = |x - mu|^2 - (W (A x + c))^T z - b^T z is quadratic in x:
    p(x | z) ~ exp(-E / T) = N(m, T/2 I), m = mu + A^T W^T z / 2. ULA at step eps on it is the
    linear recursion x' = (1 - 2 eps) x + 2 eps m + sqrt(2 eps T) xi, whose exact stationary
    law is N(m, T / (2 (1 - eps)) I) (the T/2 of the target up to ULA's O(eps) bias). The
    NN-EFH's own sampler (GibbsLangevin.langevin at fixed z) must reach it."""
    from ebm_bench.methods.nnefh import NNEFHEnergy

    g = torch.Generator().manual_seed(0)
    d, k, h = 3, 4, 5
    model = NNEFHEnergy(LinearStats(d, k, g), (d,), h)
    with torch.no_grad():
        model.mu.copy_(torch.tensor([0.5, -0.3, 0.2]))
        model.hidden.weight.copy_(0.3 * torch.randn(h, k, generator=g))
    sampler = GibbsLangevin(gibbs_steps=1, langevin_steps=int(8 / eps), step_size=eps, temperature=T)
    n = 20000
    z = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]]).expand(n, h)
    A, W, mu = model.stats_net.lin.weight.detach(), model.hidden.weight.detach(), model.mu.detach()
    mean = mu + (z[0] @ W @ A) / 2
    var = T / (2 * (1 - eps))
    x = torch.randn(n, d, generator=g)
    x = sampler.langevin(model, x, z, g)
    assert ((x.mean(0) - mean).abs() < 5 * math.sqrt(var / n)).all(), (x.mean(0), mean)
    assert ((x.var(0) / var - 1).abs() < 5 * math.sqrt(2 / n)).all(), (x.var(0), var)


def _spy_fresh_starts(monkeypatch):
    """Record every chain initialisation (GibbsLangevin.noise) and the state every Langevin
    run starts from."""
    starts, runs = [], []
    orig_noise, orig_langevin = GibbsLangevin.noise, GibbsLangevin.langevin

    def noise(self, shape, gen, device, dtype=torch.float32):
        x = orig_noise(self, shape, gen, device, dtype)
        starts.append(x.clone())
        return x

    def langevin(self, model, x, z, gen, *a, **k):
        runs.append(x.clone())
        return orig_langevin(self, model, x, z, gen, *a, **k)

    monkeypatch.setattr(GibbsLangevin, "noise", noise)
    monkeypatch.setattr(GibbsLangevin, "langevin", langevin)
    return starts, runs


def test_nnefh_chains_start_fresh_every_update_and_persist_across_gibbs_steps(monkeypatch):
    """Paper 004 (Sampling; Alg. 1 lines 10-18): one fresh start from noise per parameter
    update, then x persists across the M Gibbs steps of that update."""
    m = make(data_noise=0.0, gibbs_steps=3, langevin_steps=2)
    starts, runs = _spy_fresh_starts(monkeypatch)
    x = torch.rand((8, *INFO.shape), generator=torch.Generator().manual_seed(5)) * 2 - 1
    n_updates = 4
    for step in range(1, n_updates + 1):
        m.train_step(x, step)
    assert len(starts) == n_updates  # one fresh start per update
    assert len(runs) == n_updates * 3
    for u in range(n_updates):
        assert torch.equal(runs[3 * u], starts[u])  # the first Langevin run starts at the fresh noise
        for j in (1, 2):  # the later ones continue the chain, never restart
            assert not any(torch.equal(runs[3 * u + j], s) for s in starts)


def test_free_energy_ebm_chains_start_fresh_every_update(monkeypatch):
    from ebm_bench.methods.ebm_free_energy import EBMFreeEnergy
    from ebm_bench.samplers.ula import ULA

    m = EBMFreeEnergy({**NET, "n_hidden": 5, "gibbs_steps": 2, "langevin_steps": 3, "data_noise": 0.0}, INFO, "cpu", 0)
    starts, _ = _spy_fresh_starts(monkeypatch)
    seen = []
    orig = ULA.run

    def run(self, energy, x, n_steps, gen):
        seen.append((x.clone(), n_steps, self.step_size, self.temperature))
        return orig(self, energy, x, n_steps, gen)

    monkeypatch.setattr(ULA, "run", run)
    x = torch.rand((8, *INFO.shape), generator=torch.Generator().manual_seed(5)) * 2 - 1
    for step in range(1, 4):
        m.train_step(x, step)
    assert len(starts) == 3 and len(seen) == 3
    for s, (x0, k, eps, T) in zip(starts, seen):
        assert torch.equal(x0, s) and k == 2 * 3  # fresh noise, M * L plain Langevin steps
        assert (eps, T) == (m.sampler.effective_step(8), m.sampler.effective_temperature(8))


def test_free_energy_ebm_is_the_nnefh_free_energy_with_the_same_parameters():
    from ebm_bench.methods.ebm_free_energy import EBMFreeEnergy

    p = {**NET, "n_hidden": 5}
    n, e = NNEFH(p, INFO, "cpu", 3), EBMFreeEnergy(p, INFO, "cpu", 3)
    sd_n, sd_e = n.model.state_dict(), e.model.state_dict()
    assert sd_n.keys() == sd_e.keys() and all(torch.equal(sd_n[k], sd_e[k]) for k in sd_n)  # same init
    x = torch.rand((4, *INFO.shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(e.energy(x), n.model.free_energy(x))
    # the optimiser holds exactly the model's parameters (n_params of the cost table)
    count = lambda m: sum(q.numel() for grp in m.opt.param_groups for q in grp["params"])  # noqa: E731
    assert count(n) == count(e) == sum(q.numel() for q in n.model.parameters())


def n_trainable(method):
    return sum(q.numel() for grp in method.opt.param_groups for q in grp["params"])


def matched_specs(config_path, dataset):
    import yaml

    from ebm_bench.pipeline.config import run_spec

    cfg = yaml.safe_load(open(config_path))
    return {v: run_spec(cfg, dataset, v, 0) for v in ("nnefh", "ebm_free_energy", "ebm_matched")
            if v in cfg["variants"] and v in cfg["datasets"][dataset]["variants"]}


def sampler_law(method, n_chains=64):
    """(effective step, temperature, Langevin steps per update, init std) actually run."""
    from ebm_bench.methods.ebm_matched import EBMMatched

    if isinstance(method, EBMMatched):
        assert method.params["init_dist"] == "normal"
        return (method.sampler.step_size, method.sampler.temperature, method.sampler_steps_per_iter,
                float(method.params["init_scale"]))
    s = method.sampler
    return (s.effective_step(n_chains), s.effective_temperature(n_chains), method.sampler_steps_per_iter,
            s.init_std)


@pytest.mark.parametrize("config_path,dataset", [
    ("config/config.yaml", "digits"),
    ("config/claims_cpu.yaml", "fashion_mnist"),
    ("config/paper.yaml", "fashion_mnist"),
    ("config/paper.yaml", "cifar10"),
])
def test_paper004_comparisons_are_matched(config_path, dataset):
    """NN-EFH vs ebm_free_energy: equal parameters (count and initial values), step,
    temperature, M * L Langevin steps, initialisation, data noise, body; ebm_matched: the
    same except its linear read-out (fewer parameters)."""
    from pathlib import Path

    from ebm_bench.training.runs import build_method

    specs = matched_specs(Path(__file__).parent.parent / config_path, dataset)
    assert {"nnefh", "ebm_free_energy", "ebm_matched"} <= set(specs)
    ds = specs["nnefh"]["dataset"]
    shape = (1, 8, 8) if ds["type"] == "digits" else (1, int(ds["params"].get("size", 32)), int(ds["params"].get("size", 32)))
    info = DataInfo(shape, True, 10)
    m = {v: build_method({**s, "device": "cpu"}, info) for v, s in specs.items()}
    law = {v: sampler_law(x) for v, x in m.items()}
    assert law["nnefh"] == law["ebm_free_energy"] == pytest.approx(law["ebm_matched"]), law
    assert n_trainable(m["nnefh"]) == n_trainable(m["ebm_free_energy"])
    for v in ("ebm_free_energy", "ebm_matched"):
        assert m[v].params["data_noise"] == m["nnefh"].params["data_noise"]
        assert m[v].params["lr"] == m["nnefh"].params["lr"]
        assert specs[v]["train"] == specs["nnefh"]["train"]
    body_n = m["nnefh"].model.stats_net.state_dict()
    for other in (m["ebm_free_energy"].model.stats_net.state_dict(),
                  {k: w for k, w in m["ebm_matched"].net.state_dict().items() if not k.startswith("head.")}):
        assert other.keys() == body_n.keys() and all(torch.equal(other[k], body_n[k]) for k in body_n)


def test_batch_normalised_step_is_derived_from_train_batch_size():
    from pathlib import Path

    import yaml

    from ebm_bench.pipeline.config import run_spec

    cfg = yaml.safe_load(open(Path(__file__).parent.parent / "config/paper.yaml"))
    spec = run_spec(cfg, "cifar10", "nnefh", 0)
    p = spec["method_params"]
    assert p["sampler_batch_normalised"] and p["sampler_batch"] == spec["train"]["batch_size"] == 64
    assert (p["step_size"], p["temperature"]) == (1.0, 5e-5)  # the paper's values, read as eps / B, T * B
    cfg["train"]["batch_size"] = 128
    assert run_spec(cfg, "cifar10", "nnefh", 0)["method_params"]["sampler_batch"] == 128
    m = NNEFH({**NET, "sampler_batch": 64}, INFO, "cpu", 0)
    for n_chains in (64, 500):  # generation with any number of chains runs the training dynamics
        assert m.sampler.ula(1.0, n_chains).step_size == pytest.approx(1 / 64)
        assert m.sampler.ula(1.0, n_chains).noise_std == pytest.approx(0.01)


def test_probe_family_scores_both_probes_and_the_untrained_same_seed_control(monkeypatch):
    """The probe family (evaluation/probe.py): standardised and raw probes of every feature,
    and the same two on the same spec and seed *untrained*, for methods that declare the
    control; none for the raw-pixel reference row."""
    from types import SimpleNamespace

    import numpy as np

    from ebm_bench.evaluation import probe as fam
    from ebm_bench.metrics import probe as mp
    from ebm_bench.training.runs import build_method

    spec = {"method": "nnefh", "variant": "nnefh", "device": "cpu", "seed": 3,
            "method_params": {**NET, "n_hidden": 5, "gibbs_steps": 1, "langevin_steps": 2, "data_noise": 0.0}}
    g = torch.Generator().manual_seed(0)
    data = SimpleNamespace(x_train=torch.rand((40, *INFO.shape), generator=g) * 2 - 1, y_train=torch.arange(40) % 3,
                           x_test=torch.rand((20, *INFO.shape), generator=g) * 2 - 1, y_test=torch.arange(20) % 3,
                           shape=INFO.shape, is_image=True, num_classes=3)
    trained = build_method(spec, INFO)
    for step in range(1, 4):
        trained.train_step(data.x_train[:16], step)
    calls = []
    orig = mp.linear_probe

    def spy(f_train, y_train, f_test, y_test, seed=0, max_train=None, standardise=True):
        calls.append((np.array(f_train), standardise))
        return orig(f_train, y_train, f_test, y_test, seed=seed, max_train=max_train, standardise=standardise)

    monkeypatch.setattr(mp, "linear_probe", spy)
    ctx = SimpleNamespace(data=data, method=trained, ev={"probe_max_train": 100}, ok=True, spec=spec,
                          log=lambda msg: None)
    metrics, protocol = fam.probe(ctx)
    assert set(metrics) == {f"{p}_{f}{s}" for p in ("probe_acc", "probe_raw_acc") for f in ("U", "eta")
                            for s in ("", "_untrained")}
    assert [c[1] for c in calls] == [True, False] * 4
    fresh = build_method(spec, INFO)  # the initialisation: same spec, same seed
    u_init, u_trained = fresh.features(data.x_train)["U"].double().numpy(), trained.features(data.x_train)["U"].double().numpy()
    assert not np.allclose(u_init, u_trained)  # training moved the features
    assert np.allclose(calls[0][0], u_trained) and np.allclose(calls[4][0], u_init)
    assert protocol["probe_raw_acc_U"]["pipeline"] == "LogisticRegression"
    # the raw-pixel control: the data row has no untrained control
    from ebm_bench.methods.data import HeldOutData

    assert not HeldOutData.probe_untrained_control
    assert fam.metric_names(["pixels"], False) == ["probe_acc_pixels", "probe_raw_acc_pixels"]
    assert fam.metric_names(["penultimate"], False) == ["probe_acc_penultimate"]  # other rows: standardised only
    ctx.ok = False
    none, _ = fam.probe(ctx)
    assert set(none) == set(metrics) and all(v is None for v in none.values())


def test_raw_probe_is_not_standardised():
    """A class signal carried by a feature of scale 1e-4 among unit-scale noise: the
    standardised probe finds it, the raw L2 probe (C = 1) cannot afford the weight."""
    import numpy as np

    from ebm_bench.metrics.probe import linear_probe

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    f = rng.normal(size=(600, 5))
    f[:, 0] = 1e-4 * (2 * y - 1 + 0.1 * rng.normal(size=600))
    std = linear_probe(f[:400], y[:400], f[400:], y[400:], standardise=True)
    raw = linear_probe(f[:400], y[:400], f[400:], y[400:], standardise=False)
    assert std["accuracy"] > 0.95 and raw["accuracy"] < 0.7
    assert (std["protocol"]["standardise"], raw["protocol"]["standardise"]) == (True, False)


@pytest.mark.parametrize("size", [8, 32])
def test_three_conv_layout_has_exactly_three_convolutions(size):
    """Paper 004 Methods: "three convolutional layers interspersed with self-attention
    layers"; the penultimate layer has n_features units (U(x))."""
    from ebm_bench.nets import build_net
    from ebm_bench.nets.attention import SelfAttention

    net = build_net("attention", (1, size, size), {"nf": 4, "n_features": 12, "layout": "three_conv",
                                                   "attn_max_res": size})
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and sum(isinstance(m, SelfAttention) for m in net.body) == 3
    assert net.features(torch.zeros(2, 1, size, size)).shape == (2, 12)
    suite = build_net("attention", (1, size, size), {"nf": 4, "n_features": 12})
    assert sum(isinstance(m, torch.nn.Conv2d) for m in suite.body) == int(math.log2(size // 4)) + 2
