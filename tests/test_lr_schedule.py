"""The learning-rate schedule shared by the Langevin-trained EBMs (paper 003 decays Adam's
rate linearly over training): exact rates per update, per parameter group, and errors."""

from __future__ import annotations

import math

import pytest
import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS

INFO = DataInfo((2,), False, None)


def _method(name: str = "pcd", **params):
    cls = METHODS.get(name)
    base = {"net": "mlp", "net_params": {"hidden": 8, "depth": 1}, "n_steps": 1}
    return cls({**cls.defaults, **base, **params}, INFO, "cpu", 0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_rates_follow_the_schedule(kind: str) -> None:
    m = _method(lr=1e-2, lr_schedule=kind, lr_decay_steps=10, lr_final_factor=1e-6)
    for step in (1, 2, 6, 11, 50):
        m.schedule_lr(step)
        t = min(step - 1, 10) / 10
        s = 1 - t if kind == "linear" else 0.5 * (1 + math.cos(math.pi * t))
        assert m.opt.param_groups[0]["lr"] == pytest.approx(1e-2 * (1e-6 + (1 - 1e-6) * s), rel=1e-12)


def test_training_uses_the_scheduled_rate_and_groups_keep_their_own() -> None:
    """After update k the optimiser ran at lr_k; param_lr groups decay from their own rate."""
    m = _method("short_run", lr=1e-2, lr_schedule="linear", lr_decay_steps=4, lr_final_factor=0.0)
    x = torch.randn(16, 2)
    rates = []
    for step in range(1, 6):
        m.train_step(x, step)
        rates.append(m.opt.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0])
    names = [n for n, _ in m.net.named_parameters()]
    m2 = _method(lr=1e-2, lr_schedule="linear", lr_decay_steps=2, param_lr={names[0]: 1.0})
    m2.schedule_lr(2)
    lrs = sorted(g["lr"] for g in m2.opt.param_groups)
    assert lrs[-1] == pytest.approx(0.5) and lrs[0] == pytest.approx(5e-3)


def test_jarzynski_uses_the_schedule_too() -> None:
    m = _method("jarzynski", lr=1e-2, lr_schedule="linear", lr_decay_steps=2, n_walkers=16, n_moved=0,
                burn_in_steps=0, walker_init="noise")
    x = torch.randn(16, 2)
    m.train_step(x, 1)
    m.train_step(x, 2)
    assert m.opt.param_groups[0]["lr"] == pytest.approx(5e-3)


@pytest.mark.parametrize("params, key", [({"lr_schedule": "step"}, "lr_schedule"),
                                         ({"lr_schedule": "linear"}, "lr_decay_steps")])
def test_bad_schedule_fails_at_construction(params, key) -> None:
    with pytest.raises(ConfigError, match=key):
        _method(**params)
