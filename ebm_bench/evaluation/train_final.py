"""``train_final``: the last logged row of ``train_log.csv`` as metrics ``final_<name>``.

Whatever a method logs per update (Jarzynski's ESS, resampling count and cross-entropy
estimates, the GMM student's mass, an acceptance rate) becomes a claim-able number at
the end of training without a family of its own: paper 003's "the Eq. 12 estimate
tracks the exact cross-entropy" compares ``final_cross_entropy_est`` with
``final_cross_entropy_exact`` of the same run. Values of a diverged run are null.
"""

from __future__ import annotations

import csv
import math

from ebm_bench.evaluation import register_family

SKIP = {"step", "wall_time_s"}


@register_family("train_final", order=80)
def train_final(ctx):
    path = ctx.run_dir / "train_log.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    last = rows[-1]
    metrics = {}
    for key, text in last.items():
        if key in SKIP or key is None:
            continue
        try:
            value = float(text)
        except (TypeError, ValueError):
            continue
        metrics[f"final_{key}"] = value if (ctx.ok and math.isfinite(value)) else None
    protocol = {"step": int(float(last["step"])), "source": "last row of train_log.csv",
                "directions": {k: "" for k in metrics},
                "fingerprint": {"step": int(float(last["step"]))}}
    return metrics, protocol
