"""Collection: the files a results folder holds -> one tidy table (pandas).

Read as data only (JSON / TSV / YAML text, never pickles); see :mod:`ebm_bench.reports.tables`
for the layout of a results folder.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ebm_bench.reports.schema import COST_COLUMNS, FAMILY_ORDER, as_float, metric_direction


_SEED_DIR = re.compile(r"^seed(\d+)$")

def _read_json(path: Path) -> Any:
    """JSON as data (NaN/Infinity tokens accepted); None if unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"tables: unreadable {path}: {e}", file=sys.stderr)
        return None

def _read_json_or_error(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError) as e:
        return None, f"unreadable {path.name}: {type(e).__name__}: {e}"

def _read_benchmark(path: Path) -> dict[str, float]:
    """Snakemake benchmark TSV -> {"s": wall seconds, "max_rss": MB} (max over repeats)."""
    if not path.is_file():
        return {}
    try:
        df = pd.read_csv(path, sep="\t", na_values=["-", "NA", "n/a", ""])
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return {}
    out = {}
    for col in ("s", "max_rss"):
        if col in df.columns:
            vals = pd.to_numeric(df[col], errors="coerce")
            if vals.notna().any():
                out[col] = float(vals.max())
    return out

def _feature_space(protocol: Any) -> str:
    """'inception', 'domain' or a short name of the features a metric family used."""
    if not isinstance(protocol, dict):
        return ""
    for key in ("feature_kind", "features", "feature_extractor", "extractor", "feature_space", "reader"):
        if key not in protocol:
            continue
        value = protocol[key]
        if isinstance(value, dict):
            value = value.get("name") or value.get("kind") or value.get("type") or ""
        text = str(value).lower()
        if "inception" in text:
            return "inception"
        if "domain" in text or "classifier" in text:
            return "domain"
        return str(value)
    return ""

def _provenance_config(doc: Any) -> str:
    """The config file a metrics file or train_status.json says its run was made for
    (``provenance.config``, written by the evaluate and train stages); "" if none."""
    prov = doc.get("provenance") if isinstance(doc, dict) else None
    return str(prov.get("config") or "") if isinstance(prov, dict) else ""

def _run_dirs(results_dir: Path, datasets, methods, seeds) -> list[tuple[str, str, int, Path]]:
    runs_root = results_dir / "runs"
    found = []
    if not runs_root.is_dir():
        return found
    for ds_dir in sorted(p for p in runs_root.iterdir() if p.is_dir()):
        if datasets is not None and ds_dir.name not in datasets:
            continue
        for v_dir in sorted(p for p in ds_dir.iterdir() if p.is_dir()):
            if methods is not None and v_dir.name not in methods:
                continue
            for s_dir in v_dir.iterdir():
                m = _SEED_DIR.match(s_dir.name)
                if not (m and s_dir.is_dir()):
                    continue
                seed = int(m.group(1))
                if seeds is not None and seed not in seeds:
                    continue
                found.append((ds_dir.name, v_dir.name, seed, s_dir))
    return found

def collect(
    results_dir: str | Path,
    datasets: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read every run's files.

    Returns ``(tidy, runs, legend)``: the tidy metric rows (TIDY_COLUMNS plus
    ``family`` and ``config``), one row per run (dataset, method, seed, status, config,
    cost columns), and one row per (dataset, metric) with its family and feature space.
    ``config`` is the config file the run was made for (its files' ``provenance``; ""
    for files written without one).
    """
    results_dir = Path(results_dir)
    datasets = None if datasets is None else list(datasets)
    methods = None if methods is None else list(methods)
    seeds = None if seeds is None else {int(s) for s in seeds}
    rows: list[dict[str, Any]] = []
    run_rows: list[dict[str, Any]] = []
    legend: dict[tuple[str, str, str], set[str]] = {}
    # (dataset, method, seed, family) -> (status, message) of a family file without values
    bad: dict[tuple[str, str, int, str], tuple[str, str]] = {}
    directions: dict[tuple[str, str], str] = {}
    fingerprints: dict[str, dict] = {}  # hash -> the facts it stands for

    for dataset, method, seed, run_dir in _run_dirs(results_dir, datasets, methods, seeds):
        metrics_dir = run_dir / "metrics"
        files = sorted(metrics_dir.glob("*.json")) if metrics_dir.is_dir() else []
        if not files:
            continue  # not evaluated (yet): not a result
        train = _read_json(run_dir / "train_status.json") if (run_dir / "train_status.json").is_file() else None
        train = train if isinstance(train, dict) else {}
        status = "diverged" if train.get("status") == "diverged" else "ok"
        config_file = _provenance_config(train)
        fam_rows = []
        for path in files:
            doc, problem = _read_json_or_error(path)
            if problem is None and not isinstance(doc, dict):
                problem = f"unreadable {path.name}: not a JSON object"
            family = str(doc.get("family") or path.stem) if isinstance(doc, dict) else path.stem
            if problem is not None:
                bad[(dataset, method, seed, family)] = ("unreadable", problem)
                continue
            fstatus = str(doc.get("status") or "ok")
            config_file = config_file or _provenance_config(doc)
            if fstatus == "diverged":
                status = "diverged"
            protocol = doc.get("protocol") if isinstance(doc.get("protocol"), dict) else {}
            if fstatus == "error":
                bad[(dataset, method, seed, family)] = ("error", str(doc.get("error") or "error"))
                if family == "run":  # the whole run could not be evaluated
                    status = "error"
            for name, d in (protocol.get("directions") or {}).items():
                directions.setdefault((dataset, str(name)), str(d))
            flags = protocol.get("flags") if isinstance(protocol.get("flags"), dict) else {}
            fp = doc.get("fingerprint")
            if fp is not None and isinstance(protocol.get("fingerprint"), dict):
                fingerprints[str(fp)] = protocol["fingerprint"]
            metrics = doc.get("metrics")
            metrics = metrics if isinstance(metrics, dict) else {}
            space = _feature_space(protocol)
            for name, value in metrics.items():
                if isinstance(value, (dict, list)):
                    continue  # structured extras (per-mode weights, ...) are not table cells
                note = str(doc.get("error") or "") if fstatus == "error" else str(flags.get(name) or "")
                fam_rows.append((family, str(name), as_float(value), fstatus, fp, note))
                legend.setdefault((dataset, family, str(name)), set()).add(space)
        for family, name, value, fstatus, fp, note in fam_rows:
            rows.append(
                {"dataset": dataset, "method": method, "seed": seed, "family": family,
                 "metric": name, "value": value, "status": fstatus,
                 "fingerprint": "" if fp is None else str(fp), "note": note}
            )
        bench = {stage: _read_benchmark(results_dir / "benchmarks" / stage / dataset / method / f"seed{seed}.tsv")
                 for stage in ("train", "sample", "evaluate", "run")}
        if not bench["train"]:  # combine_stages: one job ran all three
            bench["train"] = bench["run"]
        wall = as_float(train.get("wall_time_s"))
        if math.isnan(wall):
            wall = bench["train"].get("s", math.nan)
        run_rows.append(
            {"dataset": dataset, "method": method, "seed": seed, "status": status, "config": config_file,
             "train_time_s": wall,
             "sampler_steps": as_float(train.get("sampler_steps")),
             "grad_evals_train": as_float(train.get("grad_evals_train")),
             "n_params": as_float(train.get("n_params")),
             # the benchmark's max_rss covers the whole job; the trainer's own number
             # (train_status.json peak_rss_mb) stands in where no benchmark file is
             "peak_mem_mb": bench["train"].get("max_rss", as_float(train.get("peak_rss_mb"))),
             "sample_time_s": bench["sample"].get("s", math.nan),
             "evaluate_time_s": bench["evaluate"].get("s", math.nan)}
        )
    runs = pd.DataFrame(run_rows, columns=["dataset", "method", "seed", "status", "config", *COST_COLUMNS,
                                           "sample_time_s", "evaluate_time_s"])
    tidy = pd.DataFrame(rows, columns=["dataset", "method", "seed", "family", "metric", "value", "status",
                                       "fingerprint", "note"])
    if not tidy.empty or bad:
        tidy = _complete(tidy, runs, bad)
    # the config file each run was made for (provenance; "" for files written before it)
    made_by = {(r.dataset, r.method, r.seed): r.config for r in runs.itertuples()}
    tidy["config"] = [made_by.get((d, m, int(sd)), "") for d, m, sd in
                      zip(tidy["dataset"], tidy["method"], tidy["seed"])] if not tidy.empty else []
    leg = pd.DataFrame(
        [{"dataset": d, "family": f, "metric": m, "features": ", ".join(sorted(s - {""})),
          "direction": directions.get((d, m), metric_direction(m))}
         for (d, f, m), s in legend.items()],
        columns=["dataset", "family", "metric", "features", "direction"],
    )
    tidy, leg = _qualify_duplicate_names(tidy, leg)
    order = {"dataset": datasets, "method": methods}
    order["family"] = FAMILY_ORDER + sorted(set(tidy["family"]) - set(FAMILY_ORDER)) if not tidy.empty else None
    tidy = _sort(tidy, order, ["dataset", "method", "seed", "family", "metric"])
    runs = _sort(runs, order, ["dataset", "method", "seed"])
    tidy.attrs["fingerprints"] = fingerprints
    return tidy, runs, leg

def _complete(tidy: pd.DataFrame, runs: pd.DataFrame, bad: dict | None = None) -> pd.DataFrame:
    """Give every run of a dataset a row for every (family, metric) seen on that dataset,
    and mark the rows without a value: a diverged run keeps its rows (value NaN,
    ``diverged``); a family that raised or whose file cannot be read gives its rows
    ``error`` / ``unreadable`` with the message in ``note``; anything else absent is
    ``missing``. Only ``ok`` rows keep their value."""
    bad = bad or {}
    run_status = {(r.dataset, r.method, r.seed): r.status for r in runs.itertuples()}
    known = tidy.drop_duplicates(["dataset", "family", "metric"])[["dataset", "family", "metric"]]
    keys = pd.DataFrame(list(run_status), columns=["dataset", "method", "seed"])
    full = keys.merge(known, on="dataset")
    full = full.merge(tidy, on=["dataset", "method", "seed", "family", "metric"], how="left")
    missing = full["status"].isna()
    full["fingerprint"] = full["fingerprint"].fillna("")
    full["note"] = full["note"].fillna("")
    for i in np.flatnonzero(missing.to_numpy()):
        r = full.iloc[i]
        key = (r["dataset"], r["method"], int(r["seed"]))
        hit = bad.get((*key, r["family"])) or bad.get((*key, "run"))
        st, note = hit if hit else ("missing", "")
        full.iat[i, full.columns.get_loc("status")] = st
        full.iat[i, full.columns.get_loc("note")] = note
    # a family without values on any run of its dataset still shows, as one `family.*` row
    seen = set(zip(full["dataset"], full["method"], full["seed"], full["family"]))
    extra = [{"dataset": d, "method": m, "seed": sd, "family": f, "metric": f"{f}.*", "value": np.nan,
              "status": st, "fingerprint": "", "note": note}
             for (d, m, sd, f), (st, note) in bad.items()
             if (d, m, sd, f) not in seen and (d, m, sd) in run_status
             and not (f == "run" and any(k[:3] == (d, m, sd) for k in seen))]
    if extra:
        full = pd.concat([full, pd.DataFrame(extra)], ignore_index=True)
    rstat = [run_status[k] for k in zip(full["dataset"], full["method"], full["seed"])]
    diverged = np.array([s == "diverged" for s in rstat])
    full.loc[diverged & (full["status"] == "ok").to_numpy(dtype=bool), "status"] = "diverged"
    full.loc[diverged & (full["status"] == "missing").to_numpy(dtype=bool), "status"] = "diverged"
    full.loc[full["status"] != "ok", "value"] = np.nan
    full["value"] = full["value"].astype(float)
    return full

def _qualify_duplicate_names(tidy: pd.DataFrame, leg: pd.DataFrame):
    """A metric name used by two families of one dataset becomes 'family.name'."""
    if leg.empty:
        return tidy, leg
    counts = leg.groupby(["dataset", "metric"])["family"].transform("nunique")
    dup = set(map(tuple, leg.loc[counts > 1, ["dataset", "metric"]].to_numpy()))
    if not dup:
        return tidy, leg

    def rename(df):
        df = df.copy()
        mask = [(d, m) in dup for d, m in zip(df["dataset"], df["metric"])]
        df.loc[mask, "metric"] = df.loc[mask, "family"] + "." + df.loc[mask, "metric"]
        return df

    return rename(tidy), rename(leg)

def _sort(df: pd.DataFrame, order: dict[str, list | None], by: list[str]) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    keys = {}
    for col in by:
        pref = order.get(col)
        if pref:
            rank = {v: i for i, v in enumerate(pref)}
            keys[col] = df[col].map(lambda v, r=rank: (r.get(v, len(r)), str(v)))
        else:
            keys[col] = df[col]
    tmp = pd.DataFrame(keys)
    idx = sorted(range(len(df)), key=lambda i: tuple(tmp.iloc[i]))
    return df.iloc[idx].reset_index(drop=True)

def load_reported(path: str | Path) -> list[dict[str, Any]]:
    """Entries {dataset, method, metric, value, source} of a reported.yaml: a list, or a
    mapping whose 'reported' key holds the list."""
    import yaml  # pyyaml; safe_load builds plain data only

    doc = yaml.safe_load(Path(path).read_text())
    entries = doc.get("reported", []) if isinstance(doc, dict) else (doc or [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries (or a 'reported:' list)")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"{path}: entry {i} is not a mapping")
        missing = [k for k in ("dataset", "method", "metric", "value", "source") if k not in e]
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {', '.join(missing)}")
        out.append(e)
    return out
