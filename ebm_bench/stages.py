"""The sample, evaluate and classifier stages of one run (called by the CLI/rules).

Every stage reads the previous stage's files as data only and writes under the run
folder. A run whose training diverged still gets every output, marked ``diverged``, so
the DAG completes and the tables say what happened.
"""

from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runs
from .data import to_uint8
from .io import atomic_write_bytes, load_torch, read_json, write_json


def _save_npz(path: Path, **arrays: Any) -> None:
    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


def load_samples(path: Path) -> tuple[np.ndarray, str]:
    with np.load(path, allow_pickle=False) as z:
        return z["samples"], str(z["status"])


def load_trained(spec: dict[str, Any], run_dir: Path, data):
    method = runs.build_method(spec, data)
    state = load_torch(run_dir / "model.pt", method.device)
    method.load_state_dict(state["method"])
    return method


def sample_stage(spec: dict[str, Any], run_dir: Path, threads: int | None = None) -> str:
    from .plots import sample_grid

    runs.set_threads(threads)
    label = runs.run_label(spec)
    status = read_json(run_dir / "train_status.json")["status"]
    data = runs.load_data(spec)
    samples = np.zeros((0, *data.shape), dtype=np.uint8 if data.is_image else np.float32)
    if status == "ok":
        method = load_trained(spec, run_dir, data)
        method.gen.manual_seed(spec["seed"] + 7919)  # the sampling stage is reproducible alone
        n = int(spec["sample"]["n"])
        print(f"[{label}] sampling {n} with {type(method).__name__}", flush=True)
        x = method.sample(n).detach().cpu()
        if not torch.isfinite(x).all():
            status = "diverged"
            print(f"[{label}] samples are not finite: recorded as diverged", flush=True)
        else:
            samples = to_uint8(x).numpy() if data.is_image else x.float().numpy()
    _save_npz(run_dir / "samples.npz", samples=samples, status=np.array(status))
    real = None if data.is_image else data.x_test[:2000].numpy()
    sample_grid(samples, run_dir / "samples.png", data.is_image, real=real)
    return status
