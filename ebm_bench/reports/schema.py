"""What the report modules share: the tidy table's columns and statuses, how metric names
are read (which way is better, which are details, family order) and how numbers are printed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np


TIDY_COLUMNS = ["dataset", "method", "seed", "metric", "value", "status", "fingerprint", "note"]

# status of one metric value: ok | diverged (the run diverged) | error (its family raised;
# note = the message) | unreadable (its metrics file cannot be parsed) | missing (the run
# has no value for a metric other runs of the dataset have)
BAD_STATUSES = ("error", "unreadable", "missing")

COST_COLUMNS = ["n_params", "train_time_s", "sampler_steps", "grad_evals_train", "peak_mem_mb"]

DIVERGED = "diverged"

# Which way is better, by metric name (first match wins). Uncertainties (…_std,
# …_stderr) and bookkeeping numbers get no arrow.
_DIRECTIONS: list[tuple[str, str]] = [
    (r"(_std|_stderr|_se|_sem|_ci\w*)$", ""),
    (r"^final_|^grad_evals|^n_params$|^time_per_|_acc$|classifier_acc", ""),
    (r"(^|_)gap($|_)", "lower"),
    (r"^n_|_n$|^seed$|rel_diff|^mass_|^mode_weight_", ""),
    (r"(^|_)fid($|_)", "lower"),
    (r"(^|_)(is|inception_score)($|_)", "higher"),
    (r"(^|_)(kid|mmd|w1|w2|wasserstein|energy_distance|tv|jsd?)($|_)", "lower"),
    (r"(^|_)kl($|_)|kl_div", "lower"),
    (r"mode.*(err|error)", "lower"),
    (r"(^|_)(nll|cross_entropy|bpd|bits_per_dim)($|_)", "lower"),
    (r"(err|error)($|_)", "lower"),
    (r"(acc|accuracy|probe)", "higher"),
    (r"(log_?lik|loglik|log_likelihood|elbo)", "higher"),
    (r"(^|_)(ess|precision|recall|coverage|density|modes_covered|n_modes)($|_)", "higher"),
]

# Kept in runs.csv and {dataset}.csv but left out of the Markdown/LaTeX tables, which
# stay readable: per-mode weights, a metric's own within-run spread, backend checks.
DETAIL_METRICS = [r"^mode_weight_", r"^model_mode_weight_", r"^mode_rel_error_(?!mean$|max$)", r"(_std|_stderr)$", r"rel_diff",
                  r"^final_", r"^grad_evals_train$", r"^n_params$", r"^train_time_s$", r"^drift_", r"^change_", r"^slope_", r"^tail_mean_",
                  r"^min_", r"^max_"]

# column order of the tables: metric families in evaluation order, others after
FAMILY_ORDER = ["fid", "probe", "exact", "exact_samples", "modes", "model_modes", "cost", "train_final",
                "diagnostics"]

ARROWS = {"lower": "↓", "higher": "↑", "": ""}

TEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$", "": ""}

def is_detail(name: str) -> bool:
    low = name.lower().split(".")[-1]
    return any(re.search(p, low) for p in DETAIL_METRICS)

def metric_direction(name: str) -> str:
    """'lower', 'higher' or '' (unknown / not a score) for a metric name."""
    low = name.lower().split(".")[-1]
    for pattern, direction in _DIRECTIONS:
        if re.search(pattern, low):
            return direction
    return ""

def as_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan

def format_number(v: Any, digits: int = 4) -> str:
    if isinstance(v, str):
        return v
    if v is None or not np.isfinite(v):
        return ""
    if float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.{digits}g}"
