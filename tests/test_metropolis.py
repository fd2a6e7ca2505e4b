"""The Metropolis-adjusted step of the shared ULA sampler (samplers/ula.py, ``metropolis``)
leaves a known target exp(-U / T) invariant exactly, for a constant step (MALA) and for
STANLEY's position-dependent step (paper 002 Eq. 5-6 with its Eq. 17 correction); without
the correction the position-dependent step does not. Acceptances are counted, gradient
evaluations are counted (K + 1 per chain for K steps), and any Langevin method switches it
on by one config key.

Tolerances: Monte Carlo standard errors of the moments of n independent chains."""

import math

import pytest
import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS
from ebm_bench.samplers import ULA
from ebm_bench.samplers.counting import grad_evals
from ebm_bench.samplers.stanley_step import StanleyStep

M = torch.tensor([0.5, -1.0], dtype=torch.float64)
P = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)


def energy(x):
    d = x - M
    return 0.5 * ((d @ P) * d).sum(-1)


def run(sampler, T, n=20000, steps=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    cov = T * torch.linalg.inv(P)
    x = M + torch.randn((n, 2), generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    return sampler.run(energy, x, steps, g), cov


def moment_z(x, cov):
    """Largest |standardised error| over the mean and the variance of each coordinate."""
    n = len(x)
    zm = (x.mean(0) - M).abs() / torch.sqrt(torch.diag(cov) / n)
    zv = (x.var(0) - torch.diag(cov)).abs() / (torch.diag(cov) * math.sqrt(2.0 / n))
    return float(torch.cat([zm, zv]).max())


@pytest.mark.parametrize("rule,T", [(None, 1.0), (None, 0.3), ("stanley", 1.0), ("stanley_sample", 0.5)])
def test_metropolis_step_leaves_target_invariant(rule, T):
    """Chains started at exp(-U/T) stay there (to 5 MC standard errors) at a step far
    beyond ULA's accuracy (h0 = 0.6: ULA's own stationary variance is 1 / (p (1 - h p / 2)),
    +43% in the stiff direction), with a constant step and with STANLEY's gamma."""
    step_rule = {None: None, "stanley": StanleyStep(0.5 * math.sqrt(T)),
                 "stanley_sample": StanleyStep(0.7 * math.sqrt(T), "sample")}[rule]
    s = ULA(step_size=0.6, temperature=T, step_rule=step_rule, metropolis=True)
    x, cov = run(s, T)
    assert moment_z(x, cov) < 5.0
    assert 0.3 < s.accept_rate < 1.0


def test_position_dependent_step_without_metropolis_is_not_invariant():
    """The same STANLEY step without the correction moves the chains off the target by far
    more than the Monte Carlo error (and so would a constant step at this h0)."""
    T = 1.0
    s = ULA(step_size=0.6, temperature=T, step_rule=StanleyStep(0.5))
    x, cov = run(s, T)
    assert moment_z(x, cov) > 10.0


def test_reverse_proposal_uses_step_at_proposed_point():
    """ln q(x | y) must be evaluated with h(y): with one coordinate whose gradient exceeds
    the threshold at y but not at x the two densities differ."""
    s = ULA(step_size=0.5, temperature=1.0, step_rule=StanleyStep(1.0))
    x = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    y = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    gy = (y - M) @ P
    h_y = 0.5 * StanleyStep(1.0)(gy)
    want = (-0.5 * (x - y + h_y * gy) ** 2 / (2 * h_y) - 0.5 * torch.log(2 * h_y)).sum()
    assert torch.allclose(s.log_proposal(x, y, gy), want.view(1))


def test_gradient_evaluations_and_acceptances_are_counted():
    s = ULA(step_size=0.3, temperature=1.0, metropolis=True)
    x = torch.zeros(7, 2, dtype=torch.float64)
    before = grad_evals()
    s.run(energy, x, 5, torch.Generator().manual_seed(0))
    assert grad_evals() - before == 7 * 6  # K + 1 per chain
    assert s.n_proposed == 35 and 0 <= s.n_accepted <= 35
    s.reset_acceptance()
    assert s.accept_rate is None


def test_clamped_target_rejects_proposals_outside_the_box():
    s = ULA(step_size=4.0, temperature=1.0, clamp=(-1.0, 1.0), metropolis=True)
    x = s.run(energy, torch.zeros(500, 2, dtype=torch.float64), 20, torch.Generator().manual_seed(0))
    assert x.abs().max() <= 1.0 and s.accept_rate < 1.0


@pytest.mark.parametrize("method", ["short_run", "pcd", "stanley"])
def test_any_langevin_method_switches_it_on_by_config_and_logs_acceptance(method):
    """MALA-PCD (and STANLEY + MH, short-run + MH) is a config line: ``metropolis: true``."""
    cls = METHODS.get(method)
    info = DataInfo((2,), False)
    m = cls({**cls.tiny_params(info), "metropolis": True}, info, "cpu", 0)
    assert m.sampler.metropolis
    out = m.train_step(torch.randn(8, 2), 1)
    assert 0.0 <= out["accept_rate"] <= 1.0
    off = cls(cls.tiny_params(info), info, "cpu", 0).train_step(torch.randn(8, 2), 1)
    assert "accept_rate" not in off


def test_jarzynski_refuses_metropolis():
    cls = METHODS.get("jarzynski")
    info = DataInfo((2,), False)
    with pytest.raises(ConfigError, match="metropolis"):
        cls({**cls.tiny_params(info), "metropolis": True}, info, "cpu", 0)
