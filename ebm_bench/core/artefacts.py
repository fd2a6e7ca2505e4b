"""The files a run leaves behind, read and written in one place.

The pipeline's stages (:mod:`ebm_bench.pipeline.stages`) write them; the metric families
(:mod:`ebm_bench.evaluation`) and the benchmarks read them through here, so no layer below
the pipeline imports the pipeline. Everything is data only: ``.npz`` without pickles and
JSON text.

- ``samples.npz``: ``samples`` (uint8 images or float points), ``status`` and the
  generation ``cost`` (JSON) of the sample stage;
- ``reference/{dataset}.npz`` + ``.json``: a dataset's FID/KID statistics and their meta;
- ``metrics/{family}.json``: metric values (non-finite values written as null) and the
  fingerprint id of the feature space they were computed in.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ebm_bench.core.io import atomic_write_bytes, read_json, spec_hash


def save_npz(path: Path, **arrays: Any) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


def load_samples(path: Path) -> tuple[np.ndarray, str]:
    with np.load(path, allow_pickle=False) as z:
        return z["samples"], str(z["status"])


def load_sample_cost(path: Path) -> dict[str, Any]:
    """The generation cost the sample stage recorded (grad evals, seconds); {} if none."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["cost"])) if "cost" in z.files else {}


def load_reference(path: Path) -> dict[str, Any]:
    """A reference written by :func:`ebm_bench.pipeline.stages.reference_stage` (arrays as data, no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["meta"] = read_json(Path(path).with_suffix(".json"))
    return out


def clean_metrics(metrics: dict) -> dict:
    return {k: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v))
            for k, v in metrics.items()}


def fingerprint_id(fp: dict | None) -> str | None:
    return None if not fp else spec_hash(fp)[:12]
