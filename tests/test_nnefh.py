"""NN-EFH (ebm_bench/methods/nnefh.py) against paper 004's Eq. 5-7 and Algorithms 1-2,
and its matched EBM baseline (ebm_bench/methods/ebm_matched.py)."""

import copy
import itertools

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
    m = make(step_size=1.0, temperature=5e-5)
    s = m.sampler
    assert (s.step_size, s.temperature, s.batch_normalised_grad, s.hidden_temperature) == (1.0, 5e-5, False, 1.0)
    assert s.effective_temperature(64) == 5e-5  # the loss mean does not touch the sampler
    q = make(sampler_batch_normalised=True, step_size=1.0, temperature=5e-5)
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
