"""The verdict table as text: claims.md (one line per claim, one column per scale) and the
per-paper verdict counts that open claims.md, summary.md and the README."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ebm_bench.claims.judge import STATISTICAL, VERDICTS
from ebm_bench.claims.spec import ClaimsFile

SHORT = {"regime not reached": "not reached", "too few seeds": "too few seeds", "protocol mismatch": "mismatch"}


def _num(v: Any, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(v) else f"{v:.{digits}g}"


def cell(r: pd.Series) -> str:
    """One design's verdict in a few words: verdict, effect [95% CI] and n; or the first
    failed gate; or why it has no verdict."""
    v = str(r["verdict"])
    if v in STATISTICAL:
        eff = _num(r["effect"])
        ci = f" [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if _num(r["ci_low"]) else ""
        extra = " (degenerate)" if "degenerate spread" in str(r["note"]) else ""
        return f"**{v}** {eff}{ci} n={int(r['n'])}{extra}"
    if v == "regime not reached":
        first = str(r["gates_failed"]).split("; ")[0]
        more = str(r["gates_failed"]).count("; ")
        return f"not reached: {first}" + (f" (+{more})" if more else "")
    return SHORT.get(v, v)


def counts(table: pd.DataFrame, claims: ClaimsFile) -> pd.DataFrame:
    """Per paper (rows) and scale (columns): the verdict counts of the designs that ran."""
    rows = []
    for pid, paper in claims.papers.items():
        t = table[table["paper"].astype(str) == pid]
        row = {"claims of": f"{pid} {paper['citation']} ({int(t['id'].nunique())})"}
        for scale in claims.scales:
            s = t[t["scale"] == scale]
            c = s["verdict"].value_counts()
            parts = [f"{c[v]} {SHORT.get(v, v)}" for v in VERDICTS if v in c and v != "not run"]
            row[scale] = ", ".join(parts) or ("not run" if len(s) else "")
        rows.append(row)
    return pd.DataFrame(rows)


def counts_markdown(table: pd.DataFrame, claims: ClaimsFile) -> str:
    return counts(table, claims).to_markdown(index=False, disable_numparse=True)


def claims_markdown(table: pd.DataFrame, claims: ClaimsFile) -> str:
    scales = list(claims.scales)
    judged = table[table["verdict"].isin(STATISTICAL)]
    lines = ["# Claims and verdicts", "",
             f"{table['id'].nunique()} claims of {len(claims.papers)} papers from `{claims.path}`, tested in "
             f"{len(table)} designs at {len(scales)} scales ({', '.join(f'`{s}`: {t}' for s, t in claims.scales.items())}; "
             "most faithful first). Verdict counts of the designs that ran:", "",
             counts_markdown(table, claims), "",
             "Effect: oriented so that positive means the paper is right (`within` claims: the deviation from the "
             "claimed value); 95% t interval; each decision is a one-sided test at 2.5% against the claim's smallest "
             "effect that counts (`within`: two one-sided tests, TOST). **not reached**: a gate of the design "
             "failed (the runs are outside the paper's regime; the numbers are shown, the paper is not judged). "
             f"Benjamini-Hochberg adjusted p over the {len(judged)} designs judged: `p_adj_bh` in claims.csv, "
             "with statements, sources, both sides' numbers and every gate. Rule: docs/protocol.md (\"Verdicts\").",
             ""]
    for pid, paper in claims.papers.items():
        t = table[table["paper"].astype(str) == pid]
        if t.empty:
            continue
        lines += [f"## {pid}: {paper['title']} ({paper['citation']})", ""]
        rows = []
        for cid in dict.fromkeys(t["id"]):
            d = t[t["id"] == cid]
            row = {"claim": f"`{cid}`"}
            for scale in scales:
                s = d[d["scale"] == scale]
                if s.empty:
                    row[scale] = ""
                elif len(s) == 1:
                    row[scale] = cell(s.iloc[0])
                else:
                    row[scale] = "<br>".join(f"{r['dataset']}: {cell(r)}" for _, r in s.iterrows())
            rows.append(row)
        lines.append(pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(lines)


def csv_text(table: pd.DataFrame) -> str:
    out = table.copy()
    for col in ("target", "tolerance"):
        out[col] = out[col].map(lambda v: "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else v)
    return out.to_csv(index=False, na_rep="")
