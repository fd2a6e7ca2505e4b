"""The shared Gibbs-Langevin sampler (ebm_bench/samplers/gibbs_langevin.py).

The joint chain is checked on a small GRBM, whose hidden marginal p(h) is known in closed
form: integrating v out of E(v, h) gives
    p(h) ∝ exp(b^T h + sum_i [(mu_i + (W h)_i)^2 - mu_i^2] / (2 sigma_i^2)),
and exp(-E/T) is again a GRBM (sigma^2 -> T sigma^2, b -> b / T), so the same formula
checks the temperature. A wrong sign, a missing 1/sigma^2, a hidden draw from the wrong
conditional or a noise scale off by any factor moves these frequencies far beyond the
tolerances used here.

The x-moves alone are checked on a GRBM with W = 0, where x does not feel z and every
chain is ULA on the Gaussian N(mu, T sigma^2): a linear map plus Gaussian noise, so the
exact law of the chain after any sequence of steps is Gaussian with moments computed
here from (mu, sigma^2) (:func:`x_law`), independently of the sampler's autograd moves.

Mutations of ebm_bench/samplers/gibbs_langevin.py these tests were seen to catch (made one
at a time, then restored):
- preconditioned step: ``precond`` ignored (rule = None), or squared;
- step scale: ``step_scale`` ignored in ``step_sizes``, or not passed on by ``run``;
- chains' initial spread: ``init_std`` ignored in ``noise``;
- hidden temperature: ``hidden_temperature`` not passed by ``GibbsLangevin.sample_hidden``,
  the logits multiplied by it instead of divided, the x-moves' ``temperature`` used for
  the draws instead;
- data bank capacity: the head of a large batch kept instead of its tail, the
  ``capacity == 0`` guard removed, ``len`` not capped at the capacity, the capacity off by
  one. (Writing the whole batch instead of its tail is equivalent on CPU, where the last
  of duplicate indices wins; on CUDA which one wins is undefined.)
- batch normalisation: the step not divided by B, or the temperature not multiplied by B;
- persistence: x re-drawn from N(0, I) at every Gibbs step;
- the x-moves at temperature 1 whatever ``temperature``.
"""

import itertools
import math

import pytest
import torch

from ebm_bench.methods.grbm import GRBMEnergy
from ebm_bench.samplers.gibbs_langevin import DataBank, GibbsLangevin, cosine_schedule


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


@pytest.mark.parametrize("hidden_temperature", [None, 0.4])
def test_hidden_draws_follow_the_joint_energy_at_the_hidden_temperature(hidden_temperature):
    """z_j ~ Bern(p_j) with p_j / (1 - p_j) = exp((E(x, z_j = 0) - E(x, z_j = 1)) / T_h), the odds
    read off the joint energy here (not from ``hidden_logits``); T_h = ``hidden_temperature``,
    1 by default (Alg. 1 and 2 as written) whatever the x-moves' temperature."""
    m = small_grbm(d=2, h=3)
    kw = {} if hidden_temperature is None else {"hidden_temperature": hidden_temperature}
    s = GibbsLangevin(gibbs_steps=1, langevin_steps=1, step_size=0.1, temperature=0.25, **kw)
    T_h = 1.0 if hidden_temperature is None else hidden_temperature
    x = torch.tensor([[0.4, -1.2]], dtype=torch.float64).expand(40000, 2)
    z = s.sample_hidden(m, x, torch.Generator().manual_seed(3))
    assert set(z.unique().tolist()) <= {0.0, 1.0}
    off = torch.zeros(1, 3, dtype=torch.float64)
    with torch.no_grad():
        e_off = m.joint_energy(x[:1], off)
        e_on = torch.stack([m.joint_energy(x[:1], off.index_fill(1, torch.tensor([j]), 1.0)) for j in range(3)], 1)
    p = torch.sigmoid((e_off[:, None] - e_on) / T_h)[0]
    se = torch.sqrt(p * (1 - p) / len(z))
    assert ((z.mean(0) - p).abs() < 5 * se).all(), (z.mean(0), p)
    # the other temperature (0.25: the x-moves', or 1) is rejected by the same test
    p_other = torch.sigmoid((e_off[:, None] - e_on) / (0.25 if T_h == 1.0 else 1.0))[0]
    assert ((z.mean(0) - p_other).abs() > 5 * se).any()


def test_run_is_alg1_x_moves_then_a_hidden_draw_per_gibbs_step():
    """run() == the hand-composed Alg. 1 loop with the same random stream: x ~ N(0, I),
    z ~ p(z | x), then per Gibbs step L Langevin steps on x (from where the last stopped)
    and one draw of z given the new x."""
    m = small_grbm().float()
    s = GibbsLangevin(gibbs_steps=3, langevin_steps=2, step_size=0.1, temperature=0.7)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x1, z1 = s.train_chains(m, 16, (2,), g1, "cpu")
    x = torch.randn((16, 2), generator=g2)
    z = s.sample_hidden(m, x, g2)
    for _ in range(3):
        x = s.langevin(m, x, z, g2)
        z = s.sample_hidden(m, x, g2)
    assert torch.equal(x1, x) and torch.equal(z1, z)


def decoupled_grbm():
    """W = 0: x does not feel z, p(x | z) = N(mu, sigma^2) for every z."""
    m = small_grbm(d=2, h=3)
    with torch.no_grad():
        m.W.zero_()
    return m


def x_law(mu, var, T, steps, mean0, var0):
    """Exact mean and variance of x after ULA steps of sizes ``steps`` (per element) on
    N(mu, T var) from x ~ N(mean0, var0): each step is x' = (1 - a) x + a mu + sqrt(2 e T) xi
    with a = e / var."""
    mean, v = mean0, var0
    for e in steps:
        a = e / var
        mean, v = (1 - a) * mean + a * mu, (1 - a) ** 2 * v + 2 * e * T
    return mean, v


def assert_law(x, mean, var):
    n = len(x)
    assert ((x.mean(0) - mean).abs() < 5 * torch.sqrt(var / n)).all(), (x.mean(0), mean)
    assert ((x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all(), (x.var(0), var)


def test_chains_follow_the_exact_law_of_preconditioned_scaled_persistent_ula():
    """M Gibbs steps of L steps eps * step_scale * precond_i, at T, from x ~ N(0, init_std^2):
    the law of x is the exact law of M * L such ULA steps on N(mu, T sigma^2) from that
    start. Large init_std and few steps keep the start visible in the variance; the two
    pixels' preconditioners differ 4-fold; x re-drawn at a Gibbs step, the scale or the
    preconditioner dropped, or the initial spread ignored each move a moment by >> 5 SE."""
    m = decoupled_grbm()
    mu, var = m.mu.detach(), m.var().detach()
    s = GibbsLangevin(gibbs_steps=3, langevin_steps=4, step_size=0.2, temperature=0.7, init_std=3.0)
    precond = torch.tensor([0.5, 2.0], dtype=torch.float64)
    x, _ = s.train_chains(m, 20000, (2,), torch.Generator().manual_seed(0), "cpu", step_scale=0.5,
                          precond=precond)
    steps = [0.2 * 0.5 * precond] * (3 * 4)
    assert_law(x.double(), *x_law(mu, var, 0.7, steps, torch.zeros(2, dtype=torch.float64), 9.0))


def test_batch_normalised_grad_samples_at_temperature_times_b():
    """The reference quirk (dE/dx / B, noise sqrt(2 eps T)) is ULA at (eps / B, T * B): with
    a fixed B = 4 and the cosine schedule, the chain's law is that of ULA at T * B (not T)."""
    m = decoupled_grbm()
    mu, var = m.mu.detach(), m.var().detach()
    s = GibbsLangevin(gibbs_steps=6, langevin_steps=5, step_size=0.5, temperature=0.05, schedule="cosine",
                      batch_normalised_grad=True, normalising_batch=4)
    assert s.effective_temperature(20000) == pytest.approx(0.2) and s.effective_step(20000) == pytest.approx(0.125)
    x, _ = s.train_chains(m, 20000, (2,), torch.Generator().manual_seed(1), "cpu")
    steps = [e / 4 for e in cosine_schedule(0.5, 5)] * 6
    mean, v = x_law(mu, var, 0.2, steps, torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    assert_law(x.double(), mean, v)
    _, v_plain = x_law(mu, var, 0.05, steps, torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    assert ((v - v_plain) > 0.5 * v).all()  # the un-normalised chain would be far off
    # B = the number of chains run when not fixed (the GRBM reference code)
    free = GibbsLangevin(gibbs_steps=1, langevin_steps=1, step_size=0.5, temperature=0.05, batch_normalised_grad=True)
    assert free.effective_temperature(512) == pytest.approx(0.05 * 512)


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


def test_cosine_schedule_matches_reference_code():
    """Liao et al.'s schedule (github.com/DSL-Lab/GRBM utils.py, cosine_schedule with
    eta_min = 0): from eps down half a cosine period, never reaching 0; at n = 4 the
    values are eps (1, (2 + sqrt 2) / 4, 1 / 2, (2 - sqrt 2) / 4)."""
    r2 = math.sqrt(2.0)
    assert cosine_schedule(2.0, 4) == pytest.approx([2.0, 2.0 * (2 + r2) / 4, 1.0, 2.0 * (2 - r2) / 4])
    eps = cosine_schedule(2.0, 10)
    assert len(eps) == 10 and eps[0] == 2.0 and eps[5] == pytest.approx(1.0)
    assert all(a > b > 0 for a, b in zip(eps, eps[1:]))
    assert all(eps[l] + eps[10 - l] == pytest.approx(2.0) for l in range(1, 10))  # symmetric about eps / 2
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


def test_data_bank_keeps_the_last_capacity_examples_of_a_large_batch():
    """A batch larger than the bank leaves it holding that batch's last ``capacity``
    examples, and the next ones replace the oldest (first in, first out); a bank of
    capacity 0 keeps nothing and says it is empty."""
    bank = DataBank(5, (2,), False, "cpu")
    x = torch.arange(28, dtype=torch.float32).view(14, 2)
    g = torch.Generator().manual_seed(0)

    def held():
        return sorted(bank.draw(len(bank), g)[:, 0].div(2).long().tolist())

    bank.add(x[:12])
    assert len(bank) == 5 and held() == [7, 8, 9, 10, 11]
    bank.add(x[12:])
    assert len(bank) == 5 and held() == [9, 10, 11, 12, 13]
    empty = DataBank(0, (2,), False, "cpu")
    empty.add(x)
    assert len(empty) == 0
    with pytest.raises(RuntimeError, match="empty"):
        empty.draw(1, g)
