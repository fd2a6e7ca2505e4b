"""The one training loop: iterations, CSV log, progress, atomic checkpoints, resume,
divergence detection and timing. Every method trains through :func:`train`, and so does
every caller that needs updates: what it does along training (the GMM experiment's exact
metrics every k updates, a benchmark's clock) is a :class:`Hook`, and ``run_dir=None``
trains in memory (no files: no checkpoint, log or model), with the same batches.

Resume is exact: the checkpoint holds the method's full state (parameters, optimiser,
persistent chains, random generator) and the batch generator's state, so a run killed
after a checkpoint and restarted ends in the same state as an uninterrupted run (CPU,
same thread count). A checkpoint written under another configuration is ignored; one
that cannot be read or does not fit the method (a truncated file, another code version)
is moved aside to ``checkpoint.pt.corrupt`` and training restarts from step 0 with a
warning. Files a later stage reads (``model.pt``, ``train_log.csv``,
``train_status.json``) are written atomically (temporary file + rename).
"""

from __future__ import annotations

import csv
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ebm_bench.core import precision, progress
from ebm_bench.core.errors import ConfigError
from ebm_bench.core.io import atomic_write_bytes, load_torch, save_torch, write_json
from ebm_bench.samplers.counting import grad_evals

CHECKPOINT = "checkpoint.pt"
PARTIAL_LOG = ".train_log.partial.csv"


def _healthy(scalars: dict[str, float], limit: float) -> bool:
    """Non-finite or exploding scalars (energies, sample magnitudes) mean divergence."""
    return all(math.isfinite(v) and abs(v) <= limit for v in scalars.values())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class _Log:
    """Append-only CSV of logged scalars; truncated to the checkpoint's step on resume."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.fields: list[str] | None = None
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                rows = [r for r in reader if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            if self.fields:
                w = csv.DictWriter(f, self.fields)
                w.writeheader()
                w.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)



@dataclass(frozen=True)
class StepInfo:
    """What a hook sees after update ``step`` of ``steps``: the method in its state after
    that update, the update's scalars and ``train_s``, the seconds of training so far
    (hooks not counted: the loop's ``wall_time_s``)."""

    step: int
    steps: int
    method: Any
    scalars: dict[str, float]
    train_s: float


@dataclass(frozen=True)
class Hook:
    """``fn(info)`` after every ``every``-th update and after the last one. Not called
    after an update that diverged; the time it takes is not training time. A resumed run
    calls it from the checkpoint's step on (what it recorded before is the caller's)."""

    every: int
    fn: Callable[[StepInfo], None]

    def __post_init__(self) -> None:
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ConfigError(f"hook every = {self.every!r}: expected an integer >= 1 (updates between calls)")

    def due(self, step: int, steps: int) -> bool:
        return step % self.every == 0 or step == steps


def next_batch(x_train: torch.Tensor, batch_size: int, batch_gen: torch.Generator) -> torch.Tensor:
    """The next mini-batch: ``batch_size`` rows without replacement (one randperm draw per
    update, so the stream is the same whatever the batch size). A full batch is the data
    itself: its order changes nothing but would cost an N x d gather (App. B.1: N = 1e4)."""
    n = len(x_train)
    idx = torch.randperm(n, generator=batch_gen)[: min(batch_size, n)]
    return x_train if batch_size >= n else x_train[idx]

def train(
    method,
    x_train: torch.Tensor,
    cfg: dict[str, Any],
    run_dir: Path | None,
    config_id: str,
    seed: int,
    label: str = "",
    stop_after: int | None = None,
    status_extra: dict[str, Any] | None = None,
    hooks: Iterable[Hook] = (),
    stage: str = "train",
) -> dict[str, Any]:
    """Train ``method`` for ``cfg['steps']`` updates; returns and writes the run status.

    Outputs in ``run_dir``: ``model.pt`` (final state), ``train_log.csv`` and
    ``train_status.json``; working files ``checkpoint.pt`` and the partial log.
    ``run_dir=None`` writes nothing (no checkpoint, log rows or "done" line; progress
    lines once a minute) and returns the status. ``stop_after`` ends the process early
    after that many steps *without* finishing, as a kill would (used by tests).
    ``status_extra`` is added to the status (the CLI records the GPU the job claimed
    there). ``hooks`` run along training (:class:`Hook`); ``stage`` names the progress
    lines (``[label] stage: step i/n``).
    """
    hooks = tuple(hooks)
    in_memory = run_dir is None
    if not in_memory:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    steps, bs = int(cfg["steps"]), int(cfg["batch_size"])
    every_ckpt, every_log = int(cfg["checkpoint_every"]), int(cfg["log_every"])
    limit = float(cfg.get("diverge_above", 1e10))
    batch_gen = torch.Generator().manual_seed(10_007 * seed + 1)

    start, wall0, resumed_from, status = 0, 0.0, None, {"status": "ok", "diverged_step": None}
    ckpt_path = None if in_memory else run_dir / CHECKPOINT
    if ckpt_path is not None and ckpt_path.exists():
        try:
            state = load_torch(ckpt_path)  # CPU: load_state_dict moves tensors to the device
            if not isinstance(state, dict):
                raise ValueError(f"expected a dict, got {type(state).__name__}")
            same = state.get("config_id") == config_id
            if same:
                start, wall0 = int(state["step"]), float(state["wall_time_s"])
                status = dict(state["status"])
                method.load_state_dict(state["method"])
                batch_gen.set_state(state["batch_gen"])
                resumed_from = start
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means: start afresh
            aside = ckpt_path.with_name(CHECKPOINT + ".corrupt")
            ckpt_path.replace(aside)
            reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
            _say(label, f"warning: {ckpt_path} is unreadable ({reason}); moved it to {aside.name}, "
                        f"training restarts from step 0")
            # the method may hold part of the checkpoint's state: build it afresh
            _reset(method)
            start, wall0, resumed_from, status = 0, 0.0, None, {"status": "ok", "diverged_step": None}
            batch_gen = torch.Generator().manual_seed(10_007 * seed + 1)
        else:
            if same:
                _say(label, f"resuming from checkpoint at step {start}")
            else:
                _say(label, "checkpoint belongs to another configuration; starting afresh")
    log = None if in_memory else _Log(run_dir / PARTIAL_LOG, resumed_from)

    def checkpoint(step: int, wall: float) -> None:
        if in_memory:
            return
        save_torch(
            {"config_id": config_id, "step": step, "wall_time_s": wall, "status": status,
             "method": method.state_dict(), "batch_gen": batch_gen.get_state()},
            ckpt_path,
        )

    t0 = time.perf_counter() - wall0
    hooks_s = 0.0  # time spent in hooks: not training time
    step = start
    evals0 = grad_evals() - int(status.get("grad_evals", 0) or 0)
    precision_mode = precision.method_mode(method)  # docs/performance.md: fp32 unless the method asks
    with progress.scope(label, stage), progress.Task("step", steps, done=start, elapsed=wall0) as task:
        while step < steps and status["status"] == "ok":
            step += 1
            with precision.training_step(precision_mode):
                scalars = method.train_step(next_batch(x_train, bs, batch_gen), step)
            wall = time.perf_counter() - t0 - hooks_s
            if not _healthy(scalars, limit):
                status = {"status": "diverged", "diverged_step": step}
                _say(label, f"diverged at step {step}: {scalars}")
            logged = log is not None and (step % every_log == 0 or step == steps or status["status"] != "ok")
            if logged:
                log.append({"step": step, "wall_time_s": round(wall, 4), **scalars})
            # a line at every logged row, and at least once a minute between them (long
            # steps: HEE presentations); the scalars are formatted only when one is printed
            task.tick(step, lambda s=scalars: " ".join(f"{k}={v:.4g}" for k, v in list(s.items())[:3]),
                      force=logged)
            if step % every_ckpt == 0 or status["status"] != "ok":
                status["grad_evals"] = grad_evals() - evals0
                checkpoint(step, wall)
            due = [h for h in hooks if h.due(step, steps)] if status["status"] == "ok" else []
            if due:
                t_hooks = time.perf_counter()
                now = StepInfo(step, steps, method, scalars, wall)
                for hook in due:
                    hook.fn(now)
                hooks_s += time.perf_counter() - t_hooks
            if stop_after is not None and step - start >= stop_after and step < steps:
                return {"status": "interrupted", "step": step}

    wall = time.perf_counter() - t0 - hooks_s
    status["grad_evals"] = grad_evals() - evals0
    checkpoint(step, wall)
    if not in_memory:
        info = {"shape": list(method.data.shape), "is_image": method.data.is_image,
                "num_classes": method.data.num_classes}
        save_torch({"config_id": config_id, "step": step, "data_info": info, "method": method.state_dict()},
                   run_dir / "model.pt")
        log_bytes = (run_dir / PARTIAL_LOG).read_bytes()
        atomic_write_bytes(run_dir / "train_log.csv", lambda f: f.write(log_bytes))
    evals_train = int(status.pop("grad_evals"))
    result = {
        **status,
        "steps": step,
        "wall_time_s": wall,
        "sampler_steps": step * int(method.sampler_steps_per_iter),
        "sampler_steps_per_iter": int(method.sampler_steps_per_iter),
        # compute-matched comparisons: grad_x U evaluations (chains x steps) spent in
        # training, and the trainable parameters (what the optimiser updates)
        "grad_evals_train": evals_train,
        "time_per_update_ms": 1000.0 * wall / max(step, 1),
        "n_params": n_trainable(method),
        "resumed_from": resumed_from,
        "peak_rss_mb": _peak_rss_mb(),
        "device": str(method.device),
        **(status_extra or {}),
    }
    if method.device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(method.device) / 2**20
    if not in_memory:
        write_json(result, run_dir / "train_status.json")
        _say(label, f"done: {result['status']} after {step} steps in {wall:.1f}s")
    return result


def _reset(method) -> None:
    """Put ``method`` back in its just-constructed state, in place (a failed
    ``load_state_dict`` may have loaded part of a checkpoint into it)."""
    fresh = type(method)(method.params, method.data, method.device, method.seed)
    method.__dict__.clear()
    method.__dict__.update(fresh.__dict__)


def n_trainable(method) -> int:
    """Trainable parameters: those the method's optimiser updates (every method builds
    its optimiser over exactly its trainable tensors), else its networks' parameters."""
    try:
        groups = method.opt.param_groups
    except (NotImplementedError, AttributeError):
        groups = None
    if groups is not None:
        return int(sum(p.numel() for g in groups for p in g["params"]))
    mods = [v for v in vars(method).values() if isinstance(v, torch.nn.Module)]
    return int(sum(p.numel() for m in mods for p in m.parameters() if p.requires_grad))


def _say(label: str, msg: str) -> None:
    print(f"[{label}] {msg}" if label else msg, file=sys.stderr, flush=True)
