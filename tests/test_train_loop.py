"""The one training loop's hooks and in-memory mode (ebm_bench/training/loop.py).

Callers that need something done along training (the GMM experiment's exact metrics,
a benchmark's clock) attach a Hook instead of driving updates themselves; these tests pin
what they rely on. Mutations tried (each made the named test fail, then restored):
- the due rule without ``or step == steps`` -> ..._every_k_updates_and_after_the_last;
- hooks shown the previous update's scalars -> same test;
- the in-memory batch generator seeded ``10_007 * seed + 2`` -> ..._same_batches_and_writes_nothing;
- in memory writing the checkpoint anyway (into the working folder) -> same test;
- hook time not subtracted from the wall time -> test_hook_time_is_not_training_time;
- hooks also called after a diverged update -> test_hooks_skip_a_diverged_update;
- the ``every >= 1`` check removed -> test_hook_every_must_be_positive.
"""

import csv
import types

import pytest
import torch

from ebm_bench.core.errors import ConfigError
from ebm_bench.core.registry import METHODS
from ebm_bench.methods.base import DataInfo
from ebm_bench.training import loop
from ebm_bench.training.loop import Hook, train

TRAIN = {"steps": 7, "batch_size": 16, "checkpoint_every": 2, "log_every": 1}


def _data() -> torch.Tensor:
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(3))


def _method(**extra):
    cls = METHODS.get("short_run")
    info = DataInfo((2,), False)
    return cls({**cls.tiny_params(info), **extra}, info, "cpu", 0)


def test_hooks_run_every_k_updates_and_after_the_last(tmp_path):
    """Called at steps 3, 6 and 7 (the last) of 7, each time with that update's scalars:
    the ones the loop logs for that step."""
    seen = []
    m = _method()
    train(m, _data(), TRAIN, tmp_path, "cfg", 0, hooks=[Hook(3, lambda now: seen.append(now))])
    assert [s.step for s in seen] == [3, 6, 7]
    assert all(s.steps == 7 and s.method is m for s in seen)
    logged = {int(r["step"]): r for r in csv.DictReader(open(tmp_path / "train_log.csv"))}
    for s in seen:
        assert s.scalars and {k: float(logged[s.step][k]) for k in s.scalars} == s.scalars


def test_in_memory_run_has_the_same_batches_and_writes_nothing(tmp_path, monkeypatch):
    """run_dir=None trains exactly as a run with a folder (same batch stream: mini-batches
    of 16 from 64 rows) and leaves no file behind; hooks do not change the training."""
    on_disk = _method()
    train(on_disk, _data(), TRAIN, tmp_path / "run", "cfg", 5)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    in_memory = _method()
    status = train(in_memory, _data(), TRAIN, None, "", 5, hooks=[Hook(1, lambda now: None)])
    assert status["status"] == "ok" and status["steps"] == 7
    assert list(work.iterdir()) == []
    a, b = on_disk.state_dict(), in_memory.state_dict()
    assert torch.equal(a["gen"], b["gen"])  # the method's own random stream
    assert a["net"].keys() == b["net"].keys()
    for name, t in a["net"].items():
        assert torch.equal(t, b["net"][name]), name


def test_hook_time_is_not_training_time(monkeypatch):
    """With a clock that only the hook moves (by 1000 s a call), the loop's training time
    and the time a hook is shown stay 0."""
    clock = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    shown = []

    def slow(now):
        shown.append(now.train_s)
        clock[0] += 1000.0

    status = train(_method(), _data(), TRAIN, None, "", 0, hooks=[Hook(2, slow)])
    assert len(shown) == 4 and shown == [0.0] * 4
    assert status["wall_time_s"] == 0.0


def test_hooks_skip_a_diverged_update(tmp_path):
    """A diverged update ends training; the hook saw only the healthy ones before it."""
    seen = []
    m = _method(step_size=1e12, temperature=1.0, n_steps=20)
    status = train(m, _data(), {**TRAIN, "steps": 50}, None, "", 0, hooks=[Hook(1, lambda now: seen.append(now.step))])
    assert status["status"] == "diverged"
    assert seen == list(range(1, status["diverged_step"]))


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_hook_every_must_be_positive(every):
    with pytest.raises(ConfigError, match=r"^hook every = .*: expected an integer >= 1"):
        Hook(every, lambda now: None)
