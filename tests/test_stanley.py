"""STANLEY (paper 002, Eq. 5-6) is the shared ULA sampler with a step rule.

Where every gradient is within the threshold (gamma = 1) a step is plain ULA at the base
step; elsewhere the step shrinks exactly as Eq. 5 says, per coordinate or per sample;
step_size = 0.5 and T = 1 give Eq. 6 literally.
"""

import math

import pytest
import torch

from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS
from ebm_bench.samplers import ULA, energy_and_grad
from ebm_bench.samplers.stanley_step import StanleyStep

SCALE = torch.tensor([0.5, 1.0, 4.0])


def energy(x):
    # anisotropic quadratic: grad U = SCALE * x, so |grad| differs per coordinate
    return 0.5 * (SCALE * x**2).sum(-1)


def one_step(sampler, x, seed):
    return sampler.step(energy, x, torch.Generator().manual_seed(seed))[0]


@pytest.mark.parametrize("mode", ["coordinate", "sample"])
def test_reduces_to_plain_ula_where_gradients_are_within_threshold(mode):
    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(500, 3, generator=gen)  # |grad| <= 4 * 0.1 * |x| << th
    _, g = energy_and_grad(energy, x)
    th = 10.0 * float(g.flatten(1).norm(dim=1).max())
    for h, T in [(0.1, 1.0), (1.0, 5e-5)]:
        plain = ULA(step_size=h, temperature=T)
        stanley = ULA(step_size=h, temperature=T, step_rule=StanleyStep(th, mode))
        assert torch.equal(StanleyStep(th, mode)(g), torch.ones_like(StanleyStep(th, mode)(g)))
        assert torch.allclose(one_step(stanley, x, 1), one_step(plain, x, 1), rtol=0, atol=1e-6)


def test_coordinate_step_shrinks_exactly_as_eq5():
    gen = torch.Generator().manual_seed(2)
    x = 3.0 * torch.randn(400, 3, generator=gen)
    th, h, T = 0.7, 0.2, 0.5
    _, g = energy_and_grad(energy, x)
    gamma = StanleyStep(th, "coordinate")(g)
    expected_gamma = th / torch.maximum(torch.full_like(g, th), g.abs())  # Eq. 5
    assert torch.equal(gamma, expected_gamma)
    assert ((gamma < 1) == (g.abs() > th)).all() and (gamma < 1).any() and (gamma == 1).any()
    # the move: x' = x - h gamma g + sqrt(2 h gamma T) xi, xi drawn as ULA draws it
    xi = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    expected = x - h * gamma * g + torch.sqrt(2 * h * gamma * T) * xi
    got = one_step(ULA(step_size=h, temperature=T, step_rule=StanleyStep(th)), x, 3)
    assert torch.allclose(got, expected, atol=1e-6)
    # drift and noise variance shrink by gamma exactly where |grad| > th (noise-free check)
    got0 = one_step(ULA(step_size=h, temperature=0.0, step_rule=StanleyStep(th)), x, 3)
    assert torch.allclose(x - got0, h * gamma * g, atol=1e-6)


def test_sample_mode_uses_the_gradient_norm():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(300, 3, generator=gen) * torch.linspace(0.01, 3.0, 300)[:, None]
    th = 1.0
    _, g = energy_and_grad(energy, x)
    gamma = StanleyStep(th, "sample")(g)
    norm = g.norm(dim=1, keepdim=True)
    assert gamma.shape == (300, 1)
    assert torch.allclose(gamma, th / torch.clamp(norm, min=th))
    assert (gamma < 1).any() and (gamma == 1).any()
    # images: one gamma per sample, broadcast over (C, H, W)
    gi = torch.randn(5, 1, 4, 4)
    gam = StanleyStep(0.5, "sample")(gi)
    assert gam.shape == (5, 1, 1, 1)
    assert torch.allclose(gam.flatten(), 0.5 / gi.flatten(1).norm(dim=1).clamp(min=0.5))


def test_step_size_half_at_unit_temperature_is_eq6():
    """Eq. 6: z' = z + gamma/2 grad f + sqrt(gamma) B with f = -U."""
    gen = torch.Generator().manual_seed(5)
    z = 2.0 * torch.randn(200, 3, generator=gen)
    th = 0.8
    _, g = energy_and_grad(energy, z)
    gamma = th / torch.clamp(g.abs(), min=th)
    b = torch.randn(z.shape, generator=torch.Generator().manual_seed(6))
    eq6 = z + gamma / 2 * (-g) + torch.sqrt(gamma) * b
    got = one_step(ULA(step_size=0.5, temperature=1.0, step_rule=StanleyStep(th)), z, 6)
    assert torch.allclose(got, eq6, atol=1e-6)


def test_method_installs_the_rule_on_the_shared_sampler():
    cls = METHODS.get("stanley")
    info = DataInfo((2,), False)
    m = cls({**cls.tiny_params(info), "stanley_threshold": 0.3, "stanley_mode": "sample"}, info, "cpu", 0)
    assert isinstance(m.sampler, ULA)
    assert m.sampler.step_rule == StanleyStep(0.3, "sample")
    assert cls.defaults["step_size"] == 0.5 and cls.defaults["temperature"] == 1.0  # Eq. 6 literally
    with pytest.raises(Exception, match="stanley_mode"):
        cls({**cls.tiny_params(info), "stanley_mode": "diagonal"}, info, "cpu", 0)
    assert math.isfinite(m.train_step(torch.randn(16, 2), 1)["loss"])


def test_persistent_chains_are_algorithm_1():
    """chains: persistent moves every one of the batch-size persistent chains by exactly one
    STANLEY step per update (Algorithm 1: z_{t-1} -> z_t), with no restarts; short-run
    chains leave the buffer alone. Near-zero temperature makes the step deterministic."""
    from ebm_bench.samplers.counting import grad_evals

    cls = METHODS.get("stanley")
    info = DataInfo((2,), False)
    base = {**cls.tiny_params(info), "stanley_threshold": 0.3, "temperature": 1e-12, "step_size": 0.1,
            "buffer_size": 16, "n_steps": 1}
    m = cls({**base, "chains": "persistent"}, info, "cpu", 0)
    old = m.buffer.clone()
    _, g = energy_and_grad(m.energy, old)
    want = old - 0.1 * StanleyStep(0.3)(g) * g
    before = grad_evals()
    m.train_step(torch.randn(16, 2), 1)
    assert torch.allclose(m.buffer, want, atol=1e-5)
    assert grad_evals() - before == 16  # 16 chains x 1 step
    s = cls({**base, "chains": "short_run"}, info, "cpu", 0)
    kept = s.buffer.clone()
    s.train_step(torch.randn(16, 2), 1)
    assert torch.equal(s.buffer, kept)
    with pytest.raises(Exception, match="chains"):
        cls({**base, "chains": "forever"}, info, "cpu", 0)
