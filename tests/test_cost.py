"""The cost family's cost structure (ebm_bench/evaluation/cost.py): walkers per moved chain,
sampler steps per update, and whether the times were taken quietly."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ebm_bench.evaluation.cost import cost, sampler_steps_per_update, walkers_per_moved
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS

INFO = DataInfo((2,), False, None)


def _make(name, **over):
    cls = METHODS.get(name)
    params = {**cls.defaults, **cls.tiny_params(INFO), **over}
    return cls(params, INFO, "cpu", 0), params


@pytest.mark.parametrize("name, over, batch, expected", [
    ("jarzynski", {"n_walkers": 256, "n_moved": 64}, 32, 4.0),
    ("jarzynski", {"n_walkers": 256, "n_moved": 0}, 32, 1.0),     # Alg. 1: every walker moves
    ("jarzynski", {"n_walkers": 256, "n_moved": 300}, 32, 1.0),
    ("pcd", {"buffer_size": 256, "n_chains": 64}, 32, 4.0),
    ("pcd", {"buffer_size": 100, "n_chains": 0}, 25, 4.0),        # n_chains 0: the batch
    ("stanley", {"chains": "persistent", "buffer_size": 64}, 16, 4.0),
    ("stanley", {"chains": "short_run"}, 16, 1.0),
    ("short_run", {}, 16, 1.0),
    ("cd", {}, 16, 1.0),
    ("data", {}, 16, None),
    ("gaussian", {}, 16, None),
    ("exact_energy", {}, 16, None),
])
def test_walkers_per_moved(name, over, batch, expected) -> None:
    method, params = _make(name, **over)
    assert walkers_per_moved(method, params, batch) == expected


def test_sampler_steps_per_update() -> None:
    assert sampler_steps_per_update({"n_steps": 3}, 3) == 3.0
    assert sampler_steps_per_update({"n_steps": 3}, 6) == 3.0  # the method's own K first
    assert sampler_steps_per_update({"gibbs_steps": 2, "langevin_steps": 8}, 16) == 16.0
    assert sampler_steps_per_update({"n_steps": 40}, 0) is None  # a sampler-only row: no updates
    assert sampler_steps_per_update({}, None) is None


def test_cost_family_writes_the_structure(tmp_path: Path) -> None:
    (tmp_path / "train_status.json").write_text(json.dumps(
        {"status": "ok", "steps": 10, "wall_time_s": 2.0, "time_per_update_ms": 200.0, "grad_evals_train": 30,
         "n_params": 5, "sampler_steps_per_iter": 3, "device": "cpu"}))
    np.savez(tmp_path / "samples.npz", samples=np.zeros((1, 2)), status=np.array("ok"))
    method, params = _make("jarzynski", n_walkers=256, n_moved=64, n_steps=3)
    ctx = SimpleNamespace(run_dir=tmp_path, method=method, ok=True,
                          spec={"method_params": params, "train": {"batch_size": 32}})
    metrics, protocol = cost(ctx)
    assert metrics["walkers_per_moved"] == 4.0 and metrics["sampler_steps_per_update"] == 3.0
    assert metrics["timed_quietly"] == 0.0
    assert protocol["directions"]["timed_quietly"] == ""
