"""The shared Gibbs-Langevin sampler (ebm_bench/samplers/gibbs_langevin.py).

The joint chain is checked on a small GRBM, whose hidden marginal p(h) is known in closed
form: integrating v out of E(v, h) gives
    p(h) ∝ exp(b^T h + sum_i [(mu_i + (W h)_i)^2 - mu_i^2] / (2 sigma_i^2)),
and exp(-E/T) is again a GRBM (sigma^2 -> T sigma^2, b -> b / T), so the same formula
checks the temperature. A wrong sign, a missing 1/sigma^2, a hidden draw from the wrong
conditional or a noise scale off by any factor moves these frequencies far beyond the
tolerances used here.
"""

import itertools
import math

import pytest
import torch

from ebm_bench.methods.grbm import GRBMEnergy
from ebm_bench.samplers.gibbs_langevin import DataBank, GibbsLangevin, cosine_schedule, sample_hidden


def small_grbm(d=2, h=3, seed=0):
    m = GRBMEnergy(d, h, 1.0, seed).double()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        m.W.copy_(torch.randn(d, h, generator=g, dtype=torch.float64) * 0.8)
        m.b.copy_(torch.tensor([0.5, -0.7, 0.2][:h], dtype=torch.float64))
        m.mu.copy_(torch.tensor([0.3, -0.4, 0.1][:d], dtype=torch.float64))
        m.log_var.copy_(torch.log(torch.tensor([0.6, 1.4, 1.0][:d], dtype=torch.float64)))
    return m


def exact_hidden_marginal(m, T=1.0):
    """p_T(h) for exp(-E/T), by enumeration of the 2^h states."""
    h = m.W.shape[1]
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=h)), dtype=torch.float64)
    var = m.var().detach() * T
    b, mu, W = m.b.detach() / T, m.mu.detach(), m.W.detach()
    mean = mu + states @ W.T
    logp = states @ b + ((mean**2 - mu**2) / (2 * var)).sum(1)
    return states, torch.softmax(logp, 0)


def state_frequencies(z, states):
    idx = (z.unsqueeze(1) == states.unsqueeze(0)).all(-1).double().argmax(1)
    return torch.bincount(idx, minlength=len(states)).double() / len(z)


@pytest.mark.parametrize("T", [1.0, 0.5])
def test_joint_chain_samples_the_grbm_hidden_marginal(T):
    m = small_grbm()
    states, p = exact_hidden_marginal(m, T)
    assert p.max() - p.min() > 0.1  # a non-trivial target: wrong samplers are visibly off
    s = GibbsLangevin(gibbs_steps=100, langevin_steps=5, step_size=0.02, temperature=T, hidden_temperature=T)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10000, 2, generator=g, dtype=torch.float64)
    z = s.sample_hidden(m, x, g)
    x, z = s.run(m, x, z, g)
    freq = state_frequencies(z, states)
    se = torch.sqrt(p * (1 - p) / len(z))
    # 5 standard errors plus the O(eps) bias of the unadjusted x-moves
    assert ((freq - p).abs() < 5 * se + 0.01).all(), (freq, p)
    # and the other temperature's law is rejected by the same test
    _, p_other = exact_hidden_marginal(m, 1.0 if T != 1.0 else 0.5)
    assert ((freq - p_other).abs() > 5 * se + 0.01).any()


def test_hidden_draws_are_exact_bernoulli():
    m = small_grbm(d=2, h=3)
    x = torch.tensor([[0.4, -1.2]], dtype=torch.float64).expand(40000, 2)
    g = torch.Generator().manual_seed(3)
    z = sample_hidden(m, x, g)
    var = m.var().detach()
    p = torch.sigmoid((x[0] / var) @ m.W.detach() + m.b.detach())  # by hand
    se = torch.sqrt(p * (1 - p) / len(z))
    assert ((z.mean(0) - p).abs() < 5 * se).all(), (z.mean(0), p)
    assert set(z.unique().tolist()) <= {0.0, 1.0}


def test_run_persists_x_across_gibbs_steps():
    """run() == hand-composed Alg. 1 loop with the same random stream (no re-initialisation)."""
    m = small_grbm().float()
    s = GibbsLangevin(gibbs_steps=3, langevin_steps=2, step_size=0.1, temperature=0.7)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x1, z1 = s.train_chains(m, 16, (2,), g1, "cpu")
    # by hand: x ~ N(0, I), z ~ p(z|x), then M x (L Langevin steps, z ~ p(z|x))
    x = torch.randn((16, 2), generator=g2)
    z = s.sample_hidden(m, x, g2)
    var = m.var().detach()
    for _ in range(3):
        for _ in range(2):
            grad = (x - m.mu.detach()) / var - (z @ m.W.detach().T) / var
            x = x - 0.1 * grad + math.sqrt(2 * 0.1 * 0.7) * torch.randn(x.shape, generator=g2)
        z = s.sample_hidden(m, x, g2)
    assert torch.allclose(x1, x, atol=1e-5) and torch.equal(z1, z)


def test_keep_from_returns_the_states_of_every_gibbs_step():
    m = small_grbm()
    s = GibbsLangevin(gibbs_steps=4, langevin_steps=1, step_size=0.1)
    g = torch.Generator().manual_seed(0)
    xs, zs = s.train_chains(m, 8, (2,), g, "cpu", keep_from=1)
    assert len(xs) == len(zs) == 3
    g = torch.Generator().manual_seed(0)
    x_last, z_last = s.train_chains(m, 8, (2,), g, "cpu")
    assert torch.equal(xs[-1], x_last) and torch.equal(zs[-1], z_last)


def test_test_chains_start_hidden_units_from_data():
    """Alg. 2: z ~ p(z | x_data) although x starts from noise."""
    m = small_grbm(d=2, h=3)
    with torch.no_grad():
        m.W.mul_(4.0)  # p(z | x) depends strongly on x
    x_data = torch.tensor([[2.0, -2.0]], dtype=torch.float64).expand(20000, 2)
    s = GibbsLangevin(gibbs_steps=0, langevin_steps=1, step_size=0.1)  # no Gibbs step: the initial state
    x, z = s.test_chains(m, x_data, torch.Generator().manual_seed(0))
    p_data = torch.sigmoid(m.hidden_logits(x_data[:1]))[0].detach()
    se = torch.sqrt(p_data * (1 - p_data) / len(z)) + 1e-3
    assert ((z.mean(0) - p_data).abs() < 5 * se).all()
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1.0) < 0.05  # visible units from N(0, I)


def test_batch_normalised_grad_is_ula_at_step_over_b_and_temperature_times_b():
    m = small_grbm()
    s = GibbsLangevin(gibbs_steps=1, langevin_steps=1, step_size=0.5, temperature=0.01, batch_normalised_grad=True)
    B = 32
    ula = s.ula(0.5, B)
    assert ula.step_size == pytest.approx(0.5 / B) and ula.temperature == pytest.approx(0.01 * B)
    assert ula.noise_std == pytest.approx(math.sqrt(2 * 0.5 * 0.01))  # the noise is not rescaled
    assert s.effective_temperature(B) == pytest.approx(0.01 * B)
    # one move, by hand: x - eps/B dE/dx + sqrt(2 eps T) xi
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(B, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    z = torch.ones(B, 3, dtype=torch.float64)
    out = s.langevin(m, x, z, g1)
    var = m.var().detach()
    grad = (x - m.mu.detach()) / var - (z @ m.W.detach().T) / var
    ref = x - 0.5 / B * grad + math.sqrt(2 * 0.5 * 0.01) * torch.randn(x.shape, generator=g2, dtype=x.dtype)
    assert torch.allclose(out, ref)


def test_cosine_schedule_matches_reference_code():
    eps = cosine_schedule(2.0, 10)
    assert eps[0] == pytest.approx(2.0) and len(eps) == 10
    assert eps == pytest.approx([2.0 * (1 + math.cos(t * math.pi / 10)) / 2 for t in range(10)])
    s = GibbsLangevin(gibbs_steps=1, langevin_steps=10, step_size=2.0, schedule="cosine")
    assert s.step_sizes(scale=0.5) == pytest.approx(cosine_schedule(1.0, 10))
    with pytest.raises(ValueError):
        GibbsLangevin(gibbs_steps=1, langevin_steps=1, step_size=1.0, schedule="linear")


def test_data_bank_is_a_ring_buffer_with_state():
    bank = DataBank(5, (1, 2, 2), True, "cpu")
    x = torch.linspace(-1, 1, 7 * 4).view(7, 1, 2, 2)
    bank.add(x[:3])
    bank.add(x[3:])
    assert len(bank) == 5 and bank.count == 7
    # slots hold examples 5, 6, 2, 3, 4 (quantised to 256 levels)
    want = x[[5, 6, 2, 3, 4]]
    assert (bank._decode(bank.data) - want).abs().max() <= 1 / 127.5
    g = torch.Generator().manual_seed(0)
    d = bank.draw(5, g)
    assert len(torch.unique(d.flatten(1), dim=0)) == 5  # distinct when n <= size
    other = DataBank(5, (1, 2, 2), True, "cpu")
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.data, bank.data) and other.count == bank.count
    with pytest.raises(RuntimeError):
        DataBank(4, (2,), False, "cpu").draw(1, g)
