"""Reduction: the tidy table -> one row per method of a dataset (mean, spread, n over the
seeds that did not diverge) and the reproduction table (ours beside the papers' numbers).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ebm_bench.reports.schema import ARROWS, COST_COLUMNS, DIVERGED, as_float, format_number, metric_direction


def dataset_table(tidy: pd.DataFrame, runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per method: n_seeds (ok runs), n_diverged, and per metric
    {metric}_mean/_std over the finite values of ok runs (std with ddof=1; empty for one
    value), {metric}_n (how many values the cell stands on: fewer than n_seeds where a
    value is null, errored or unreadable), {metric}_note (the first error / flag message);
    then the mean cost over ok runs. A cell without values reads "diverged" when all the
    method's runs diverged, "error" / "unreadable" when that is why it has none."""
    t = tidy[tidy["dataset"] == dataset]
    r = runs[runs["dataset"] == dataset]
    metrics = list(dict.fromkeys(t["metric"]))
    methods = list(dict.fromkeys(r["method"]))
    out = []
    for method in methods:
        rm = r[r["method"] == method]
        ok = rm[rm["status"] == "ok"]
        n_div = int((rm["status"] == "diverged").sum())
        row: dict[str, Any] = {"method": method, "n_seeds": len(ok), "n_diverged": n_div}
        all_diverged = ok.empty and n_div > 0
        tm_all = t[t["method"] == method]
        tm = tm_all[tm_all["status"] == "ok"]
        for m in metrics:
            vals = tm.loc[tm["metric"] == m, "value"].astype(float)
            vals = vals[np.isfinite(vals)]
            cell = tm_all[tm_all["metric"] == m]
            notes = [n for n in cell["note"] if isinstance(n, str) and n]
            row[f"{m}_n"] = len(vals)
            row[f"{m}_note"] = notes[0] if notes else ""
            if all_diverged:
                row[f"{m}_mean"] = row[f"{m}_std"] = DIVERGED
            elif len(vals) == 0 and (cell["status"].isin(["error", "unreadable"])).any():
                st = "error" if (cell["status"] == "error").any() else "unreadable"
                row[f"{m}_mean"] = row[f"{m}_std"] = st
            else:
                row[f"{m}_mean"] = float(vals.mean()) if len(vals) else math.nan
                row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        for c in COST_COLUMNS:
            vals = ok[c].astype(float)
            vals = vals[np.isfinite(vals)]
            row[c] = DIVERGED if all_diverged else (float(vals.mean()) if len(vals) else math.nan)
        out.append(row)
    cols = (["method", "n_seeds", "n_diverged"]
            + [f"{m}_{s}" for m in metrics for s in ("mean", "std", "n", "note")] + COST_COLUMNS)
    table = pd.DataFrame(out, columns=cols)
    table.attrs["metrics"] = metrics
    return table

def _protocol_check(e: dict[str, Any], ok: pd.DataFrame, fingerprints: dict[str, dict]) -> str:
    """'matches', 'mismatch: ...', or why it cannot be told, for one reproduction row.

    Our values must share one fingerprint; an entry's optional ``protocol`` (e.g.
    {n_generated: 50000, real_split: train}) must agree with it key by key."""
    fps = sorted(set(ok["fingerprint"])) if not ok.empty else []
    if len(fps) > 1:
        return "protocol mismatch: our seeds differ (" + ", ".join(fps) + ")"
    stated = e.get("protocol")
    if not isinstance(stated, dict) or not stated:
        return "not stated by the paper"
    ours = fingerprints.get(fps[0], {}) if fps else {}
    diff = [f"{k} {ours.get(k)!r} vs {v!r}" for k, v in stated.items() if ours.get(k) != v]
    return ("protocol mismatch: " + "; ".join(diff)) if diff else "matches"

def reproduction_table(tidy: pd.DataFrame, entries: list[dict[str, Any]]) -> pd.DataFrame:
    fingerprints = tidy.attrs.get("fingerprints", {}) if hasattr(tidy, "attrs") else {}
    rows = []
    for e in entries:
        sel = tidy[(tidy["dataset"] == str(e["dataset"])) & (tidy["method"] == str(e["method"]))
                   & (tidy["metric"] == str(e["metric"]))]
        okrows = sel[(sel["status"] == "ok") & np.isfinite(sel["value"].astype(float))]
        ok = okrows["value"].astype(float)
        reported = as_float(e["value"])
        proto = ""
        if sel.empty:
            ours, n, diff = "not run", "0", ""
        elif ok.empty:
            ours, n, diff = DIVERGED if (sel["status"] == "diverged").all() else "n/a", "0", ""
        else:
            mean = float(ok.mean())
            ours = format_number(mean) + (f" ± {format_number(float(ok.std(ddof=1)), 2)}" if len(ok) > 1 else "")
            n = str(len(ok))
            proto = _protocol_check(e, okrows, fingerprints)
            diff = format_number(mean - reported) if np.isfinite(reported) else ""
            if proto.startswith("protocol mismatch"):
                diff = "protocol mismatch"
        arrow = ARROWS[metric_direction(str(e["metric"]))]
        rows.append({
            "dataset": str(e["dataset"]), "method": str(e["method"]),
            "metric": f"{e['metric']} {arrow}".strip(),
            "reported": format_number(reported) if np.isfinite(reported) else str(e["value"]),
            "source": str(e["source"]),
            "ours (mean ± std)": ours, "seeds": n, "ours − reported": diff, "protocol": proto,
        })
    return pd.DataFrame(rows, columns=["dataset", "method", "metric", "reported", "source",
                                       "ours (mean ± std)", "seeds", "ours − reported", "protocol"])
