"""Build the objects of one run from its spec (what every CLI stage shares)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ebm_bench.data import Dataset, load_dataset
from ebm_bench.core.errors import ConfigError
from ebm_bench.core.io import spec_hash
from ebm_bench.core.precision import set_default_policy
from ebm_bench.methods.base import DataInfo, Method
from ebm_bench.core.registry import METHODS


def set_threads(threads: int | None) -> None:
    """Match torch's thread pool to the job's cores so parallel jobs do not oversubscribe."""
    from ebm_bench.core.threads import limit_threads

    if threads:
        limit_threads(threads)  # no-op for libraries already loaded: the CLI sets it first
        torch.set_num_threads(int(threads))


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is visible to this job")
    return torch.device(name)


def load_data(spec: dict[str, Any]) -> Dataset:
    ds = spec["dataset"]
    return load_dataset(ds["type"], ds["params"], Path(spec["data_root"]), spec["seed"])


def build_method(spec: dict[str, Any], data: Dataset | DataInfo) -> Method:
    """The run's method. Every stage of a run builds it here, so this is where a job starts
    from the precision policy's default (full float32: TF32 off for matmuls and for cuDNN
    convolutions, which PyTorch leaves on; docs/performance.md)."""
    set_default_policy()
    info = data if isinstance(data, DataInfo) else DataInfo.of(data)
    cls = METHODS.get(spec["method"], key=f"variants.{spec['variant']}.method")
    return cls(spec["method_params"], info, resolve_device(spec["device"]), spec["seed"])


def config_id(spec: dict[str, Any]) -> str:
    """What makes two runs the same training run (not sampling/evaluation settings)."""
    keys = ("dataset", "method", "method_params", "seed", "train")
    return spec_hash({k: spec[k] for k in keys})


def provenance(spec: dict[str, Any]) -> dict[str, str]:
    """What a result file says about where its run came from: the config file the run was
    made for (``spec["config_file"]``, set by the workflow; "" where unknown). A claim reads
    it to tell the runs of its own design from runs another config left in the folder."""
    return {"config": str(spec.get("config_file") or "")}


def run_label(spec: dict[str, Any]) -> str:
    return f"{spec['dataset']['name']}/{spec['variant']}/seed{spec['seed']}"
