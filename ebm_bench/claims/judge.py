"""One design of a claim + the runs' tidy metrics -> one row of claims.csv.

Each claim reduces to an *oriented effect*, positive where the paper is right:

- ``compare`` a vs b: ``less`` (the claim says a < b): b - a; ``greater``: a - b;
  ``relative: true``: b / a - 1 (``less``) or a / b - 1 (``greater``), on log ratios;
- ``threshold`` a vs the number ``target``: target - a (``less``) or a - target;
- ``within``: the deviation a - b - target (relative: a / b - 1 - target) or a - target,
  and the claim is |deviation| <= ``tolerance``.

A design is judged only from its own runs: those whose metric files name the design's
config file in their provenance (the embedded and CPU configs share dataset and variant
names at different sizes). The verdict rule (docs/protocol.md, "Verdicts"), first match
wins: not run, error, diverged (every run of a side), protocol mismatch, **regime not
reached** (a gate failed: the paper's regime, declared by the design, is not where these
runs are; effect and interval are still shown, never a verdict on the paper), too few
seeds, then the interval: holds / contradicted / inconclusive; where the spread is
degenerate (zero or round-off) the t interval does not exist: threshold and paired
compare claims are decided by the exact sign test's interval of the median (6 seeds or
more), everything else is inconclusive (no interval is shown as one).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ebm_bench.claims import stats
from ebm_bench.claims.spec import Design, Gate

STATISTICAL = ("holds", "contradicted", "inconclusive")
VERDICTS = ("holds", "contradicted", "inconclusive", "regime not reached", "too few seeds", "not run",
            "protocol mismatch", "diverged", "error")
UNRELIABLE = "unreliable:"  # a family's flag text for a value that failed its own diagnostic
COLUMNS = ["id", "paper", "scale", "config", "dataset", "statement", "source", "kind", "direction", "relative",
           "a", "a_mean", "a_sd", "a_n", "b", "b_mean", "b_sd", "b_n", "target", "tolerance", "min_effect",
           "paired", "n", "seeds", "dropped_seeds", "diverged_seeds", "effect", "ci_low", "ci_high", "ci_level",
           "df", "test", "p_value", "p_adj_bh", "gates", "gates_failed", "verdict", "paper_value", "note"]


def same_config(a: str, b: str) -> bool:
    """Config paths as written (relative to the workflow directory) name the same file."""
    return bool(a) and bool(b) and os.path.normpath(str(a)) == os.path.normpath(str(b))


@dataclass
class Side:
    """One side's values in one design: {seed: value} of the finite ok values."""

    values: dict[int, float] = field(default_factory=dict)
    runs: int = 0
    diverged: list[int] = field(default_factory=list)
    errors: int = 0
    metric_seen: bool = False
    fingerprints: set[str] = field(default_factory=set)
    unreliable: list[str] = field(default_factory=list)  # flag texts of the values
    notes: list[str] = field(default_factory=list)


def _select(df: pd.DataFrame, dataset: str, variant: str, config: str) -> pd.DataFrame:
    if df.empty:
        return df
    keep = (df["dataset"] == dataset) & (df["method"] == variant)
    cfg = df["config"] if "config" in df else pd.Series("", index=df.index)
    keep &= cfg.map(lambda c: same_config(c, config))
    return df[keep]


def side_values(tidy: pd.DataFrame, runs: pd.DataFrame, dataset: str, variant: str, metric: str,
                config: str) -> Side:
    r = _select(runs, dataset, variant, config)
    t = _select(tidy, dataset, variant, config)
    t = t[t["metric"] == metric] if not t.empty else t
    out = Side(runs=len(r), diverged=sorted(int(s) for s in r.loc[r["status"] == "diverged", "seed"]),
               metric_seen=not t.empty)
    if t.empty:
        return out
    ok = t[(t["status"] == "ok") & np.isfinite(t["value"].astype(float))]
    out.values = {int(s): float(v) for s, v in zip(ok["seed"], ok["value"])}
    out.fingerprints = {str(f) for f in ok["fingerprint"]}
    out.errors = int(t["status"].isin(["error", "unreadable"]).sum())
    notes = sorted({n for n in ok["note"] if isinstance(n, str) and n})
    out.unreliable = [n for n in notes if n.startswith(UNRELIABLE)]
    out.notes = sorted({n for n in t["note"] if isinstance(n, str) and n and not n.startswith(UNRELIABLE)})
    return out


# --- gates ------------------------------------------------------------------------------

_OPS = {">=": lambda v, t: v >= t, ">": lambda v, t: v > t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t,
        "abs<=": lambda v, t: abs(v) <= t}
_AGG = {"min": min, "max": max, "mean": lambda xs: float(np.mean(xs)), "maxabs": lambda xs: max(abs(x) for x in xs)}


def gate_value(gate: Gate, tidy: pd.DataFrame, runs: pd.DataFrame, dataset: str, config: str) -> float | None:
    """The gate's value over the design's runs (None where a value is missing)."""
    vals = side_values(tidy, runs, dataset, gate.variant, gate.metric, config).values
    if not vals:
        return None
    value = float(_AGG[gate.agg](list(vals.values())))
    if gate.minus_metric:
        other = side_values(tidy, runs, dataset, gate.minus_variant or gate.variant, gate.minus_metric, config).values
        if not other:
            return None
        value -= float(np.mean(list(other.values())))
    return value


def check_gates(design: Design, tidy: pd.DataFrame, runs: pd.DataFrame,
                sides: dict[str, Side]) -> tuple[list[str], list[str]]:
    """(every gate as ``name value op threshold``, the failed ones). A value that its own
    metric family flagged as unreliable fails an implicit gate ``<side>.<metric> own diagnostic``."""
    texts, failed = [], []
    for g in design.gates:
        v = gate_value(g, tidy, runs, design.dataset, design.config)
        text = g.text(v)
        texts.append(text)
        if v is None or not math.isfinite(v) or not _OPS[g.op](v, g.threshold):
            failed.append(text)
    for name, side in sides.items():
        metric = (design.a if name == "a" else design.b or {}).get("metric", "")
        for flag in side.unreliable:
            text = f"{name}.{metric} own diagnostic: {flag[len(UNRELIABLE):].strip()}"
            texts.append(text)
            failed.append(text)
    return texts, failed


# --- one design ---------------------------------------------------------------------------


def _describe(vals: dict[int, float]) -> tuple[float, float, int]:
    x = np.array(list(vals.values()), dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x)


def _estimate(design: Design, a: dict[int, float], b: dict[int, float] | None, min_seeds: int
              ) -> tuple[stats.Estimate | None, dict[str, Any], str]:
    """The oriented effect's estimate, what pairing was used, and a reason it could not be made."""
    c = design.claim
    kind, direction, relative = c["kind"], c.get("direction"), bool(c.get("relative"))
    m = float(c.get("min_effect", 0.0))
    target = design.target if design.target is not None else 0.0
    tol = float(c.get("tolerance", math.nan))
    info: dict[str, Any] = {"paired": "", "seeds": "", "dropped": ""}
    scale = max([abs(v) for v in a.values()] + [abs(v) for v in (b or {}).values()] + [0.0])
    if b is None:
        seeds = sorted(a)
        x = np.array([a[s] for s in seeds], dtype=float)
        info["seeds"] = " ".join(map(str, seeds))
        if len(x) < min_seeds:
            return None, info, f"{len(x)} value(s), need {min_seeds}"
        if kind == "within":
            return stats.equivalence(x - target, -tol, tol, scale=scale, paired=False), info, ""
        d = (target - x) if direction == "less" else (x - target)
        return stats.one_sample(d, min_effect=m, scale=scale, paired=False), info, ""
    shared, only_a, only_b = stats.pair_seeds(a, b)
    same_data = design.a["dataset"] == design.b["dataset"]
    if same_data and len(shared) >= min_seeds:
        info["paired"] = "yes"
        info["seeds"] = " ".join(map(str, shared))
        info["dropped"] = "; ".join(f"{n}: {' '.join(map(str, s))}" for n, s in (("a", only_a), ("b", only_b)) if s)
        x = np.array([a[s] for s in shared], dtype=float)
        y = np.array([b[s] for s in shared], dtype=float)
        if kind == "within":
            if relative:
                est = stats.log_ratio_equivalence(x, y, target - tol, target + tol, paired=True)
                return _shift(est, -target), info, ""
            return stats.equivalence(x - y - target, -tol, tol, scale=scale), info, ""
        if relative:
            num, den = (y, x) if direction == "less" else (x, y)
            return stats.log_ratio_paired(num, den, min_effect=m), info, ""
        d = (y - x) if direction == "less" else (x - y)
        return stats.one_sample(d, min_effect=m, scale=scale), info, ""
    x = np.array(list(a.values()), dtype=float)
    y = np.array(list(b.values()), dtype=float)
    info["paired"] = "no" + ("" if not same_data else f" (shared seeds: {len(shared)})")
    info["seeds"] = f"a: {' '.join(map(str, sorted(a)))}; b: {' '.join(map(str, sorted(b)))}"
    if min(len(x), len(y)) < min_seeds:
        return None, info, f"{len(x)} and {len(y)} values, need {min_seeds} each"
    if kind == "within":
        if relative:
            return _shift(stats.log_ratio_equivalence(x, y, target - tol, target + tol, paired=False), -target), info, ""
        return _shift(stats.equivalence_welch(x, y, target - tol, target + tol, scale=scale), -target), info, ""
    if relative:
        num, den = (y, x) if direction == "less" else (x, y)
        return stats.log_ratio_welch(num, den, min_effect=m), info, ""
    hi, lo = (y, x) if direction == "less" else (x, y)
    return stats.welch(hi, lo, min_effect=m, scale=scale), info, ""


def _shift(est: stats.Estimate, by: float) -> stats.Estimate:
    """Report a within claim's estimate as the deviation from its target."""
    from dataclasses import replace

    return replace(est, effect=est.effect + by, ci_low=est.ci_low + by, ci_high=est.ci_high + by)


def _label(side: dict | None) -> str:
    return "" if side is None else f"{side['variant']}.{side['metric']}"


def judge(design: Design, tidy: pd.DataFrame, runs: pd.DataFrame, min_seeds: int = 3) -> dict[str, Any]:
    """One row of claims.csv (module docstring)."""
    c = design.claim
    row: dict[str, Any] = {k: c.get(k, "") for k in ("id", "paper", "statement", "source", "kind", "direction",
                                                      "paper_value")}
    row.update(scale=design.scale, config=design.config, dataset=design.dataset, relative=bool(c.get("relative")),
               a=_label(design.a), b=_label(design.b),
               target=math.nan if design.target is None else design.target,
               tolerance=float(c.get("tolerance", math.nan)), min_effect=float(c.get("min_effect", 0.0)),
               paired="", n=0, seeds="", dropped_seeds="", diverged_seeds="", effect=math.nan, ci_low=math.nan,
               ci_high=math.nan, ci_level=f"{int(round(stats.LEVEL * 100))}%", df=math.nan, test="",
               p_value=math.nan, p_adj_bh=math.nan, gates="", gates_failed="")
    named = [("a", design.a)] + ([("b", design.b)] if design.b is not None else [])
    sides = {n: side_values(tidy, runs, s["dataset"], s["variant"], s["metric"], design.config) for n, s in named}
    for n, _ in named:
        mean, sd, k = _describe(sides[n].values)
        row.update({f"{n}_mean": mean, f"{n}_sd": sd, f"{n}_n": k})
    if design.b is None:
        row.update(b_mean=math.nan, b_sd=math.nan, b_n=0)
    row["diverged_seeds"] = "; ".join(f"{n}: {' '.join(map(str, s.diverged))}" for n, s in sides.items()
                                      if s.diverged)
    notes = sorted({x for s in sides.values() for x in s.notes})

    def done(verdict: str, note: str = "") -> dict[str, Any]:
        row["verdict"] = verdict
        extra = [f"diverged seeds (an outcome, not dropped silently): {row['diverged_seeds']}"] \
            if row["diverged_seeds"] else []
        row["note"] = "; ".join(x for x in [note, *extra, *notes] if x)
        return row

    for n, side in named:
        if sides[n].runs == 0:
            return done("not run", f"no runs of {side['dataset']}/{side['variant']} made by {design.config}")
    for n, side in named:
        s = sides[n]
        if not s.values and s.errors:
            return done("error", f"{_label(side)}: no usable value")
    for n, side in named:
        s = sides[n]
        if len(s.diverged) == s.runs:
            return done("diverged", f"every run of {side['variant']} diverged")
        if not s.metric_seen:
            return done("not run", f"{side['dataset']}/{side['variant']} has no metric {side['metric']!r}")
    fps = {f for s in sides.values() for f in s.fingerprints}
    if len(fps) > 1:
        return done("protocol mismatch", "fingerprints differ: " + ", ".join(sorted(fps)))

    texts, failed = check_gates(design, tidy, runs, sides)
    row.update(gates="; ".join(texts), gates_failed="; ".join(failed))
    try:
        est, info, short = _estimate(design, sides["a"].values, sides["b"].values if design.b else None, min_seeds)
    except ValueError as e:  # e.g. a log ratio of a non-positive value
        est, info, short = None, {"paired": "", "seeds": "", "dropped": ""}, str(e)
    row.update(paired=info["paired"], seeds=info["seeds"], dropped_seeds=info["dropped"])
    dropped_note = f"paired on the shared seeds; dropped: {info['dropped']}" if info["dropped"] else ""
    if est is not None:
        row.update(n=est.n, effect=est.effect, ci_low=est.ci_low, ci_high=est.ci_high, df=est.df, test=est.test,
                   p_value=est.p_value)
    if failed:
        return done("regime not reached", "; ".join(x for x in ["gate failed: " + "; ".join(failed), dropped_note]
                                                     if x))
    if est is None:
        return done("too few seeds", short)
    lo, hi = est.ci_low, est.ci_high
    if est.degenerate:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return done("inconclusive", f"degenerate spread ({est.degenerate}): no interval"
                        + ("; the sign test needs 6 seeds" if est.test in ("paired t", "one-sample t") else ""))
        dropped_note = "; ".join(x for x in [f"degenerate spread ({est.degenerate}): exact sign test on the median",
                                             dropped_note] if x)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return done("inconclusive", "; ".join(x for x in ["no interval", dropped_note] if x))
    if c["kind"] == "within":
        tol = float(c["tolerance"])
        verdict = "holds" if (-tol <= lo and hi <= tol) else "contradicted" if (lo > tol or hi < -tol) else \
            "inconclusive"
    else:
        m = float(c.get("min_effect", 0.0))
        verdict = "holds" if lo > m else "contradicted" if hi < m else "inconclusive"
    return done(verdict, dropped_note)


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Benjamini-Hochberg adjusted p over the designs judged by the interval (holds /
    contradicted / inconclusive with a p value); the per-claim level is unchanged."""
    judged = table["verdict"].isin(STATISTICAL) & np.isfinite(table["p_value"].astype(float))
    table["p_adj_bh"] = math.nan
    if judged.any():
        table.loc[judged, "p_adj_bh"] = stats.adjust_bh(table.loc[judged, "p_value"].astype(float).to_numpy())
    return table
