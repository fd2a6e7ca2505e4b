"""Claims (config/claims.yaml) + the runs' metric files -> verdicts (claims.csv / claims.md).

A pure reduction like the tables (it reads what :func:`ebm_bench.reports.collect.collect` reads
and imports no torch), so the verdicts are rebuilt at any time without retraining:
``ebm-bench claims``. It reads **every** results folder
the claims' designs name (each design's config file says where its results go) plus the
ones given, and writes **one** report: each claim once, its verdict at every scale that
ran. A design is judged only from the runs its own config file made (the provenance in
their metric files), however and wherever the tables are regenerated.

Modules: :mod:`.spec` (the claims file), :mod:`.stats` (intervals and tests),
:mod:`.judge` (gates and the verdict of one design), :mod:`.report` (claims.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from ebm_bench.claims.judge import COLUMNS, VERDICTS, adjust, judge
from ebm_bench.claims.report import claims_markdown, counts_markdown, csv_text
from ebm_bench.claims.spec import DEFAULT_CLAIMS, ClaimError, ClaimsFile, Design, Gate, load_claims

__all__ = ["COLUMNS", "VERDICTS", "DEFAULT_CLAIMS", "ClaimError", "ClaimsFile", "Design", "Gate", "build_claims",
           "claims_table", "counts_markdown", "load_claims", "main", "results_dirs"]


def results_dirs(claims: ClaimsFile, given: Iterable[str | Path] = ()) -> list[Path]:
    """The results folders to read: the ones given, then each design config's
    ``results_dir`` (default ``results``) where that config file exists here."""
    import yaml

    out: list[Path] = [Path(p) for p in given]
    for config in dict.fromkeys(d.config for d in claims.designs):
        path = Path(config)
        if not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        out.append(Path(str(doc.get("results_dir") or "results")))
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _collect(dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ebm_bench.reports.collect import collect

    tidy, runs = [], []
    for d in dirs:
        if not (d / "runs").is_dir():
            continue
        t, r, _ = collect(d)
        tidy.append(t)
        runs.append(r)
    if not tidy:
        return collect(Path("/nonexistent-results"))[:2]
    tidy_all = pd.concat(tidy, ignore_index=True)
    runs_all = pd.concat(runs, ignore_index=True)
    return tidy_all, runs_all


def claims_table(claims: ClaimsFile, tidy: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Every design judged, most faithful scale first within each claim, with BH-adjusted p."""
    order = {s: i for i, s in enumerate(claims.scales)}
    rows = [judge(d, tidy, runs, claims.min_seeds) for d in claims.designs]
    table = pd.DataFrame(rows, columns=COLUMNS)
    claim_order = {c["id"]: i for i, c in enumerate(claims.claims)}
    table = table.assign(_c=table["id"].map(claim_order), _s=table["scale"].map(order))
    table = table.sort_values(["_c", "_s"], kind="stable").drop(columns=["_c", "_s"]).reset_index(drop=True)
    return adjust(table)


def build_claims(results_dir: str | Path | Iterable[str | Path], out_dir: str | Path,
                 claims: str | Path = DEFAULT_CLAIMS) -> dict[str, Path]:
    """Write claims.csv and claims.md: every design of ``claims`` judged from the runs under
    ``results_dir`` (one folder or several) and the results folders of the designs' configs."""
    spec = load_claims(claims)
    given = [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)
    dirs = results_dirs(spec, given)
    tidy, runs = _collect(dirs)
    table = claims_table(spec, tidy, runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, text in (("claims.csv", csv_text(table)), ("claims.md", claims_markdown(table, spec))):
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written[name] = path
    return written
