"""``diagnostics``: numbers that say whether a run reached the regime a claim is about,
read from the run's ``train_log.csv`` and its spec. They are not scores (no direction):
a claim's *gates* read them (a failing gate gives "regime not reached", not a verdict).

- ``ess_min_before_resampling`` (Jarzynski runs: the log has ``ess``, ``n_resamples``,
  ``n_ancestors``): the smallest logged ESS fraction of the weights before resampling
  ever acted on them. With ``resample_from_step`` r > 0 (c_k = 0 up to and including
  update r): the rows with step <= r + 1; update r + 1 is the first at which resampling
  could happen, and its ESS is logged before its resampling, so it still measures the
  unresampled weights. With r = 0: the rows before the first resampling, including the
  update that resampled first (its ESS is logged before it; from ``resampled`` and
  ``n_resamples``), or every row if the run never resampled. Why: paper 003's weights
  only correct the bias if they have not degenerated while nothing renews them.
- ``ancestors_frac_final``: distinct initial walkers among the final ones / ``n_walkers``
  (near 1/N: the population is copies of a few walkers); ``n_resamples_final``.
- ``energy_scale`` (runs that log ``energy_data`` / ``energy_model``): the largest
  |energy| of either over the last quarter of training, the runaway diagnostic (an
  energy drifting to 1e4 is a model whose density is no longer the claim's).
- ``change_<x>`` for every logged scalar x (not step, wall_time_s): the change over the
  last quarter of training predicted by a least-squares line through the logged rows of
  that quarter (slope x span of their steps, scipy.stats.linregress), in x's own units
  (a gate on paper 003's mass a: it moves by less than 0.01); ``drift_<x>``: the same
  change divided by max(|mean of x over the quarter|, 1e-12), for scalars without a
  natural unit. Near 0: x has settled; a claim about a trained model asks that its
  scalars stopped moving. None with fewer than ``MIN_ROWS`` rows in the quarter or a
  non-finite value in it.
- ``slope_<x>``: the same line's slope, per update (``change_<x>`` / the window's span of
  steps): a rate that means the same in a 300-update and an 8,000-update run.
- ``tail_mean_<x>``: the mean of the logged x over the last 1,000 updates (all of a shorter
  run): a time-averaged statistic beside the final value (paper 003 App. B.1's mass
  moves by +-0.03 between updates at the reference settings).
- ``min_<x>`` / ``max_<x>``: the smallest / largest logged x over the whole run (paper 003
  App. B.1 Fig. 8: PCD's mass of mode a collapses towards 0 and swings back towards 1,
  alternately, which the final value alone cannot show). None if a logged value is not finite.

The last quarter of training is the logged rows with step >= 3/4 of the last logged step
(training runs from step 0). Every value is None for a diverged run, as in every family.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from ebm_bench.evaluation import register_family

SKIP = {"step", "wall_time_s"}
TAIL_UPDATES = 1000   # tail_mean_<x>: the mean over the last 1,000 updates (paper 003 App. B.1)
MIN_ROWS = 4          # a line through fewer points says nothing about a trend
QUARTER = 0.75        # the window: step >= QUARTER x last step
ENERGY_COLUMNS = ("energy_data", "energy_model")
JARZYNSKI_COLUMNS = ("ess", "n_resamples", "n_ancestors")


def read_log(path: Path) -> dict[str, np.ndarray] | None:
    """``train_log.csv`` as float columns (text that is not a number: NaN); None if
    absent or without rows."""
    if not Path(path).is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None

    def num(text: Any) -> float:
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    cols = [c for c in rows[0] if c is not None]
    return {c: np.array([num(r.get(c)) for r in rows], dtype=np.float64) for c in cols}


def window(log: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of the rows in the last quarter of training."""
    step = log["step"]
    return step >= QUARTER * np.nanmax(step)


def change(step: np.ndarray, x: np.ndarray) -> float | None:
    """Change of ``x`` over the span of ``step`` predicted by a least-squares line."""
    from scipy.stats import linregress

    if len(x) < MIN_ROWS or not (np.isfinite(x).all() and np.isfinite(step).all()):
        return None
    span = float(step[-1] - step[0])
    if span <= 0:
        return None
    return float(linregress(step, x).slope) * span


def drift(step: np.ndarray, x: np.ndarray) -> float | None:
    """:func:`change` relative to the mean of ``x`` (floored at 1e-12)."""
    c = change(step, x)
    return None if c is None else c / max(abs(float(np.mean(x))), 1e-12)


def ess_min_before_resampling(log: dict[str, np.ndarray], resample_from_step: int) -> float | None:
    """Smallest logged ESS fraction before resampling acted (module docstring)."""
    step, ess = log["step"], log["ess"]
    if resample_from_step > 0:
        keep = step <= resample_from_step + 1
    else:
        done = log["n_resamples"]
        # resamplings before this update: the count after it less this update's own
        prior = done - log["resampled"] if "resampled" in log else done
        keep = prior <= 0
    vals = ess[keep]
    vals = vals[np.isfinite(vals)]
    return float(vals.min()) if len(vals) else None


def diagnose(log: dict[str, np.ndarray], method_params: dict[str, Any]) -> dict[str, float | None]:
    """Every diagnostic of one training log (``read_log``) and its method's parameters."""
    out: dict[str, float | None] = {}
    last = window(log)
    if all(c in log for c in JARZYNSKI_COLUMNS):
        out["ess_min_before_resampling"] = ess_min_before_resampling(
            log, int(method_params.get("resample_from_step", 0) or 0))
        n_walkers = method_params.get("n_walkers")
        anc = float(log["n_ancestors"][-1])
        out["ancestors_frac_final"] = anc / float(n_walkers) if n_walkers and math.isfinite(anc) else None
        n_res = float(log["n_resamples"][-1])
        out["n_resamples_final"] = n_res if math.isfinite(n_res) else None
    energies = [c for c in ENERGY_COLUMNS if c in log]
    if energies:
        vals = np.abs(np.stack([log[c][last] for c in energies]))
        out["energy_scale"] = float(vals.max()) if vals.size and np.isfinite(vals).all() else None
    for c in log:
        if c not in SKIP:
            out[f"change_{c}"] = change(log["step"][last], log[c][last])
            out[f"drift_{c}"] = drift(log["step"][last], log[c][last])
            span = float(log["step"][last][-1] - log["step"][last][0]) if last.any() else 0.0
            out[f"slope_{c}"] = None if out[f"change_{c}"] is None or span <= 0 else out[f"change_{c}"] / span
            tail = log[c][log["step"] > np.nanmax(log["step"]) - TAIL_UPDATES]
            out[f"tail_mean_{c}"] = float(tail.mean()) if len(tail) and np.isfinite(tail).all() else None
            whole = log[c][np.isfinite(log["step"])]
            finite = bool(len(whole)) and bool(np.isfinite(whole).all())
            out[f"min_{c}"] = float(whole.min()) if finite else None
            out[f"max_{c}"] = float(whole.max()) if finite else None
    return out


@register_family("diagnostics", order=85)
def diagnostics(ctx):
    log = read_log(ctx.run_dir / "train_log.csv")
    if log is None or "step" not in log:
        return None
    metrics = diagnose(log, ctx.spec.get("method_params") or {})
    if not metrics:  # nothing logged but the step (the data and gaussian rows)
        return None
    if not ctx.ok:
        metrics = dict.fromkeys(metrics)
    last = window(log)
    protocol = {
        "source": "train_log.csv and the run's method_params",
        "window": f"last quarter of training: logged rows with step >= {QUARTER:g} x last step "
                  f"({int(last.sum())} rows, steps {int(log['step'][last][0])}..{int(log['step'][-1])})",
        "definitions": {
            "ess_min_before_resampling": "min logged ESS fraction before resampling acted (step <= "
                                         "resample_from_step + 1; with resample_from_step 0: up to the first resampling)",
            "ancestors_frac_final": "final n_ancestors / n_walkers",
            "n_resamples_final": "final n_resamples",
            "energy_scale": "max over the window of max(|energy_data|, |energy_model|)",
            "change_<x>": f"linregress slope x step span over the window; None with < {MIN_ROWS} rows",
            "drift_<x>": "change_<x> / max(|mean x over the window|, 1e-12)",
            "slope_<x>": "change_<x> / the window's span of steps (per update)",
            "tail_mean_<x>": f"mean of the logged x over the last {TAIL_UPDATES} updates",
            "min_<x>": "smallest logged x over the whole run", "max_<x>": "largest logged x over the whole run",
        },
        "directions": {k: "" for k in metrics},
        "fingerprint": {"window": QUARTER, "min_rows": MIN_ROWS, "tail_updates": TAIL_UPDATES},
    }
    return metrics, protocol
