"""Every registered method honours the method contract (ebm_bench/methods/base.py).

New methods are picked up from the registry automatically: adding a file to
``ebm_bench/methods/`` puts it under these checks with no edit here.
"""

import math

import pytest
import torch

from ebm_bench.core.io import load_torch
from ebm_bench.methods.base import DataInfo
from ebm_bench.core.registry import METHODS
from ebm_bench.training.loop import train

TRAIN = {"steps": 6, "batch_size": 16, "checkpoint_every": 2, "log_every": 1}


def make(name, data, seed=0):
    cls = METHODS.get(name)
    info = DataInfo.of(data)
    return cls(cls.tiny_params(info), info, "cpu", seed)


def flat_state(obj, prefix=""):
    """All tensors and numbers of a nested state dict, keyed by path."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_state(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flat_state(v, f"{prefix}/{i}"))
    else:
        out[prefix] = obj
    return out


def assert_same_state(a, b):
    fa, fb = flat_state(a), flat_state(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        va, vb = fa[k], fb[k]
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), k
        else:
            assert va == vb, k


@pytest.mark.parametrize("name", METHODS.names())
def test_trains_samples_and_exposes_features(name, tiny_data, tmp_path):
    m = make(name, tiny_data)
    status = train(m, tiny_data.x_train, TRAIN, tmp_path, "cfg", 0)
    assert status["status"] == "ok"
    assert status["sampler_steps"] == TRAIN["steps"] * m.sampler_steps_per_iter
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    assert len(log) == 1 + TRAIN["steps"] and log[0].startswith("step,wall_time_s")
    if hasattr(m, "bind_data"):  # the held-out data row is handed the dataset before sampling
        m.bind_data(tiny_data)
    x = m.sample(5)
    assert x.shape == (5, *tiny_data.shape) and torch.isfinite(x).all()
    feats = m.features(tiny_data.x_test[:7])
    assert feats, "a method must expose at least one named representation"
    for fname, f in feats.items():
        assert f.ndim == 2 and f.shape[0] == 7 and torch.isfinite(f).all(), fname
    state = load_torch(tmp_path / "model.pt")  # weights_only=True: data, never code
    assert state["step"] == TRAIN["steps"]


@pytest.mark.parametrize("name", METHODS.names())
def test_resume_matches_uninterrupted_run(name, tiny_data, tmp_path):
    full = make(name, tiny_data)
    train(full, tiny_data.x_train, TRAIN, tmp_path / "full", "cfg", 0)

    killed = make(name, tiny_data)
    r = train(killed, tiny_data.x_train, TRAIN, tmp_path / "resumed", "cfg", 0, stop_after=3)
    assert r["status"] == "interrupted"
    resumed = make(name, tiny_data)  # a fresh process: state comes only from checkpoint.pt
    status = train(resumed, tiny_data.x_train, TRAIN, tmp_path / "resumed", "cfg", 0)
    assert status["resumed_from"] == 2
    assert_same_state(load_torch(tmp_path / "full" / "model.pt")["method"],
                      load_torch(tmp_path / "resumed" / "model.pt")["method"])
    full_log = (tmp_path / "full" / "train_log.csv").read_text().splitlines()
    res_log = (tmp_path / "resumed" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in full_log] == [r.split(",")[0] for r in res_log]


@pytest.mark.parametrize("name", METHODS.names())
def test_checkpoint_of_other_config_is_not_resumed(name, tiny_data, tmp_path):
    train(make(name, tiny_data), tiny_data.x_train, TRAIN, tmp_path, "cfg-a", 0, stop_after=3)
    status = train(make(name, tiny_data), tiny_data.x_train, TRAIN, tmp_path, "cfg-b", 0)
    assert status["resumed_from"] is None


@pytest.mark.parametrize("name", METHODS.names())
def test_unknown_hyperparameter_is_not_declared(name):
    cls = METHODS.get(name)
    assert cls.defaults, f"{name} must declare its hyperparameters in `defaults`"
    assert set(cls.tiny) <= set(cls.defaults), f"{name}.tiny sets undeclared keys"


def test_divergence_is_recorded_not_raised(tmp_path):
    data_x = torch.randn(64, 2)
    cls = METHODS.get("short_run")
    info = DataInfo((2,), False)
    params = {**cls.tiny_params(info), "step_size": 1e12, "temperature": 1.0, "n_steps": 20}
    m = cls(params, info, "cpu", 0)
    status = train(m, data_x, {**TRAIN, "steps": 50}, tmp_path, "cfg", 0)
    assert status["status"] == "diverged" and 1 <= status["diverged_step"] <= 50
    assert (tmp_path / "model.pt").exists() and (tmp_path / "train_status.json").exists()
    last = (tmp_path / "train_log.csv").read_text().splitlines()[-1].split(",")
    assert int(last[0]) == status["diverged_step"]
    assert any(not math.isfinite(float(v)) or abs(float(v)) > 1e10 for v in last[2:])
