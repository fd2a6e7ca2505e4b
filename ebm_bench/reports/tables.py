"""Tidy results -> comparison tables (CSV, Markdown, LaTeX).

A pure reduction of the files the runs leave behind; nothing here trains, samples or
imports torch, so tables can be rebuilt at any time (``snakemake --forcerun tables``,
``ebm-bench tables`` or ``python -m ebm_bench.reports.tables``). Inputs, all parsed as data
only (JSON / TSV / YAML text, never pickles), under ``results_dir``:

    runs/{dataset}/{variant}/seed{seed}/metrics/*.json   one file per metric family:
        {"family", "dataset", "variant", "seed", "status": "ok"|"diverged"|"error",
         "metrics": {name: float or null}, "protocol": {...}}
    runs/{dataset}/{variant}/seed{seed}/train_status.json  status, wall_time_s, sampler_steps
    benchmarks/{stage}/{dataset}/{variant}/seed{seed}.tsv  Snakemake benchmark (max_rss, MB)

Outputs in ``out_dir``:

    runs.csv               tidy: dataset, method, seed, metric, value, status
    {dataset}.csv|md|tex   one row per method: mean and std over the seeds that did not
                           diverge, their number, and the cost columns
    summary.md             every dataset's table, run counts and the metrics legend
    reproduction.md        ours beside the numbers the papers report (only when a
                           reported.yaml is given and exists)

``method`` is the variant name of the config (a method with a named set of
hyperparameters), as in the results folders.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

TIDY_COLUMNS = ["dataset", "method", "seed", "metric", "value", "status", "fingerprint", "note"]
# status of one metric value: ok | diverged (the run diverged) | error (its family raised;
# note = the message) | unreadable (its metrics file cannot be parsed) | missing (the run
# has no value for a metric other runs of the dataset have)
BAD_STATUSES = ("error", "unreadable", "missing")
COST_COLUMNS = ["n_params", "train_time_s", "sampler_steps", "grad_evals_train", "peak_mem_mb"]
COST_LABELS = {
    "n_params": "params",
    "train_time_s": "train time (s)",
    "sampler_steps": "sampler steps",
    "grad_evals_train": "grad evals (train)",
    "peak_mem_mb": "peak mem (MB)",
}
DEFAULT_REPORTED = Path("config/reported.yaml")
DIVERGED = "diverged"
_SEED_DIR = re.compile(r"^seed(\d+)$")

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
# the Markdown tables are split by kind so that each stays readable: scores, then the
# diagnostics the claims' gates read, then costs; at most MAX_COLUMNS metrics per table
DIAGNOSTIC_FAMILIES = {"diagnostics", "train_final", "chain_trace", "hee_mixing"}
COST_FAMILIES = {"cost"}
MAX_COLUMNS = 7
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


# --- reading ---------------------------------------------------------------------------


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


def _as_float(value: Any) -> float:
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
                fam_rows.append((family, str(name), _as_float(value), fstatus, fp, note))
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
        wall = _as_float(train.get("wall_time_s"))
        if math.isnan(wall):
            wall = bench["train"].get("s", math.nan)
        run_rows.append(
            {"dataset": dataset, "method": method, "seed": seed, "status": status, "config": config_file,
             "train_time_s": wall,
             "sampler_steps": _as_float(train.get("sampler_steps")),
             "grad_evals_train": _as_float(train.get("grad_evals_train")),
             "n_params": _as_float(train.get("n_params")),
             # the benchmark's max_rss covers the whole job; the trainer's own number
             # (train_status.json peak_rss_mb) stands in where no benchmark file is
             "peak_mem_mb": bench["train"].get("max_rss", _as_float(train.get("peak_rss_mb"))),
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


# --- reducing ---------------------------------------------------------------------------


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


def _num(v: Any, digits: int = 4) -> str:
    if isinstance(v, str):
        return v
    if v is None or not np.isfinite(v):
        return ""
    if float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.{digits}g}"


def _display(table: pd.DataFrame, metrics: list[str], tex: bool, directions: dict[str, str] | None = None
             ) -> pd.DataFrame:
    """mean ± std cells, arrow headers; for Markdown or (escaped) LaTeX. A cell that
    stands on fewer values than the method's ok runs says so ("[2/3]"); a flagged value
    (an unreliable feature space, a backend disagreement) is marked "‡"."""
    pm = r" $\pm$ " if tex else " ± "
    arrows = TEX_ARROWS if tex else ARROWS
    esc = _tex_escape if tex else (lambda s: s)
    directions = directions or {}
    out = pd.DataFrame()
    out["method"] = [esc(str(m)) for m in table["method"]]
    out["seeds"] = [str(n) for n in table["n_seeds"]]
    out["diverged"] = [str(n) for n in table["n_diverged"]]
    for m in metrics:
        d = directions.get(m, metric_direction(m))
        head = f"{esc(m)} {arrows[d]}".strip()
        cells = []
        for mean, std, n, note, runs in zip(table[f"{m}_mean"], table[f"{m}_std"], table[f"{m}_n"],
                                            table[f"{m}_note"], table["n_seeds"]):
            if isinstance(mean, str):
                cells.append(mean)
                continue
            if isinstance(std, float) and np.isfinite(std):
                cell = f"{_num(mean)}{pm}{_num(std, 2)}"
            else:
                cell = _num(mean)
            if cell and int(n) < int(runs):
                cell += f" [{int(n)}/{int(runs)}]"
            if cell and note:
                cell += " ‡"
            cells.append(cell)
        out[head] = cells
    for c in COST_COLUMNS:
        digits = 0 if c in ("sampler_steps", "grad_evals_train", "n_params") else 3
        out[esc(COST_LABELS[c])] = [
            v if isinstance(v, str) else (_num(round(v)) if digits == 0 and np.isfinite(v) else _num(v, 3))
            for v in table[c]
        ]
    return out


def _tex_escape(s: str) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in s)


def _markdown(df: pd.DataFrame, numeric: bool = True) -> str:
    """Markdown table; ``numeric``: right-align every column but the first."""
    if df.empty:
        return "_no results_\n"
    align = ("left",) + ("right" if numeric else "left",) * (df.shape[1] - 1)
    return df.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def _latex(df: pd.DataFrame, caption: str) -> str:
    if df.empty:
        return f"% {caption}: no results\n"
    body = df.style.hide(axis="index").to_latex(
        column_format="l" + "r" * (df.shape[1] - 1), hrules=True,
    )
    return f"% {caption}\n% generated by ebm_bench.reports.tables; needs \\usepackage{{booktabs}}\n{body}"


def _shown_metrics(table: pd.DataFrame) -> list[str]:
    return [m for m in table.attrs.get("metrics", []) if not is_detail(m)]


# --- reported numbers --------------------------------------------------------------------


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
        reported = _as_float(e["value"])
        proto = ""
        if sel.empty:
            ours, n, diff = "not run", "0", ""
        elif ok.empty:
            ours, n, diff = DIVERGED if (sel["status"] == "diverged").all() else "n/a", "0", ""
        else:
            mean = float(ok.mean())
            ours = _num(mean) + (f" ± {_num(float(ok.std(ddof=1)), 2)}" if len(ok) > 1 else "")
            n = str(len(ok))
            proto = _protocol_check(e, okrows, fingerprints)
            diff = _num(mean - reported) if np.isfinite(reported) else ""
            if proto.startswith("protocol mismatch"):
                diff = "protocol mismatch"
        arrow = ARROWS[metric_direction(str(e["metric"]))]
        rows.append({
            "dataset": str(e["dataset"]), "method": str(e["method"]),
            "metric": f"{e['metric']} {arrow}".strip(),
            "reported": _num(reported) if np.isfinite(reported) else str(e["value"]),
            "source": str(e["source"]),
            "ours (mean ± std)": ours, "seeds": n, "ours − reported": diff, "protocol": proto,
        })
    return pd.DataFrame(rows, columns=["dataset", "method", "metric", "reported", "source",
                                       "ours (mean ± std)", "seeds", "ours − reported", "protocol"])


# --- writing ------------------------------------------------------------------------------


def build_tables(
    results_dir: str | Path,
    out_dir: str | Path,
    reported: str | Path | None = DEFAULT_REPORTED,
    datasets: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    claims_md: str | Path | None = None,
) -> dict[str, Path]:
    """Write every table; returns {file name: path} of what was written.

    ``claims_md``: the verdict table (``ebm_bench.claims``), put at the top of summary.md.

    ``datasets``/``methods``/``seeds`` restrict the tables to those runs (the workflow
    passes the config's, so runs an older config left behind do not show); a dataset
    listed there gets its files even without results. ``reported``: a reported.yaml
    (default ``config/reported.yaml``); skipped when None or absent.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = None if datasets is None else list(datasets)
    methods = None if methods is None else list(methods)
    tidy, runs, legend = collect(results_dir, datasets, methods, seeds)
    written: dict[str, Path] = {}

    def write(name: str, text: str) -> None:
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written[name] = path

    tidy_out = tidy[TIDY_COLUMNS].copy() if not tidy.empty else pd.DataFrame(columns=TIDY_COLUMNS)
    write("runs.csv", tidy_out.to_csv(index=False, na_rep=""))

    names = datasets if datasets is not None else list(dict.fromkeys(runs["dataset"]))
    sections = []
    for ds in names:
        table = dataset_table(tidy, runs, ds)
        metrics = _shown_metrics(table)
        dirs = dataset_directions(legend, ds)
        write(f"{ds}.csv", table.to_csv(index=False, na_rep=""))
        md = _display(table, metrics, tex=False, directions=dirs)
        notes = _notes(table, metrics)
        parts = split_display(md, metrics, _families(legend, ds))
        write(f"{ds}.md", f"## {ds}\n\n" + parts + notes)
        write(f"{ds}.tex", _latex(_display(table, metrics, tex=True, directions=dirs), f"ebm-bench results on {ds}"))
        sections.append((ds, parts, runs[runs["dataset"] == ds], notes))

    verdicts = Path(claims_md).read_text(encoding="utf-8") if claims_md and Path(claims_md).is_file() else ""
    write("summary.md", _summary(sections, runs, legend, verdicts))

    if reported is not None and Path(reported).is_file():
        entries = load_reported(reported)
        rep = reproduction_table(tidy, entries)
        text = (
            "# Reproduction: reported numbers beside ours\n\n"
            f"Reported values from `{reported}`; ours are the mean ± std over the seeds that "
            "did not diverge (`seeds`).\n\n" + _markdown(rep, numeric=False)
        )
        write("reproduction.md", text)
    return written


def _families(legend: pd.DataFrame, dataset: str) -> dict[str, str]:
    """metric -> its family on one dataset."""
    if legend.empty:
        return {}
    leg = legend[legend["dataset"] == dataset]
    return dict(zip(leg["metric"], leg["family"]))


def split_display(md: pd.DataFrame, metrics: list[str], families: dict[str, str]) -> str:
    """One dataset's display table as several Markdown tables of at most MAX_COLUMNS
    metric columns each: scores, diagnostics (what the claims' gates read), cost."""
    heads = list(md.columns)
    first = heads[:3]  # method, seeds, diverged
    metric_heads = heads[3:3 + len(metrics)]
    cost_heads = heads[3 + len(metrics):]
    kinds: dict[str, list[str]] = {"scores": [], "diagnostics": [], "cost": []}
    for m, h in zip(metrics, metric_heads):
        fam = families.get(m, "")
        kind = "cost" if fam in COST_FAMILIES else "diagnostics" if fam in DIAGNOSTIC_FAMILIES else "scores"
        kinds[kind].append(h)
    kinds["cost"] += cost_heads
    out = []
    for kind, cols in kinds.items():
        for i in range(0, len(cols), MAX_COLUMNS):
            chunk = cols[i:i + MAX_COLUMNS]
            label = kind + (f" ({i // MAX_COLUMNS + 1})" if len(cols) > MAX_COLUMNS else "")
            cols_here = (first if kind == "scores" else first[:1]) + chunk
            out.append(f"_{label}_\n\n" + _markdown(md[cols_here]))
    return "\n".join(out) if out else _markdown(md)


def dataset_directions(legend: pd.DataFrame, dataset: str) -> dict[str, str]:
    """metric -> 'lower' | 'higher' | '' on one dataset: what its metric files say
    (e.g. no direction for IS on data with unequal class weights), else the name rule."""
    if legend.empty or "direction" not in legend:
        return {}
    leg = legend[legend["dataset"] == dataset]
    return dict(zip(leg["metric"], leg["direction"]))


def _notes(table: pd.DataFrame, metrics: list[str]) -> str:
    """The messages behind ‡ and error cells, one line each."""
    lines = []
    for _, row in table.iterrows():
        for m in metrics:
            note = row.get(f"{m}_note")
            if isinstance(note, str) and note:
                lines.append(f"- `{row['method']}` {m}: {note}")
    lines = list(dict.fromkeys(lines))
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def _counts(runs: pd.DataFrame) -> str:
    n_ok = int((runs["status"] == "ok").sum())
    n_div = int((runs["status"] == "diverged").sum())
    n_err = int((runs["status"] == "error").sum())
    return f"{len(runs)} runs: {n_ok} ok, {n_div} diverged" + (f", {n_err} error" if n_err else "")


def _summary(sections, runs: pd.DataFrame, legend: pd.DataFrame, verdicts: str = "") -> str:
    lines = ["# ebm-bench results", "", _counts(runs) + ".", ""]
    if verdicts:
        lines += [verdicts.replace("\n# ", "\n## ").lstrip().replace("# Claims", "## Claims", 1), ""]
    for ds, parts, r, notes in sections:
        lines += [f"## {ds}", "", _counts(r) + ".", "", parts + notes]
    lines += [
        "## Legend",
        "",
        "Cells are mean ± standard deviation over the seeds whose run did not diverge "
        "(`seeds`; sample std, blank for one seed); `diverged` counts the runs that "
        "diverged, and a cell reads `diverged` when all of a method's runs did. A cell "
        "that stands on fewer values than `seeds` (a null value, a metric that raised, an "
        "unreadable file) says `[n/seeds]`; `error` / `unreadable` cells and values marked "
        "‡ (unreliable feature space, backend disagreement) have their message below the "
        "table. "
        "↓ lower is better, ↑ higher is better. Cost: training wall time of the "
        "training loop (s), Langevin/MCMC sampler steps spent in training, and peak "
        "resident memory of the training job (MB, Snakemake benchmark `max_rss`). "
        "Per-mode weights and relative errors, within-run spreads (`…_std`) and backend cross-checks "
        "(`…rel_diff`) are only in `{dataset}.csv` and `runs.csv`.",
        "",
    ]
    legend = legend[[not is_detail(m) for m in legend["metric"]]] if not legend.empty else legend
    if not legend.empty:
        leg = legend.copy()
        leg["better"] = [
            {"lower": "lower ↓", "higher": "higher ↑", "": ""}[d] for d in leg["direction"]
        ]
        leg["features"] = [
            {"inception": "Inception (ImageNet)", "domain": "domain classifier"}.get(f, f) for f in leg["features"]
        ]
        leg = (
            leg.groupby(["family", "metric", "better"], sort=False)
            .agg(features=("features", lambda s: ", ".join(sorted({x for x in s if x}))),
                 datasets=("dataset", lambda s: ", ".join(dict.fromkeys(s))))
            .reset_index()
        )
        lines.append(_markdown(leg[["metric", "better", "family", "features", "datasets"]], numeric=False))
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ebm_bench.reports.tables", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default="results")
    p.add_argument("--out-dir", default=None, help="default: RESULTS_DIR/tables")
    p.add_argument("--reported", default=None, help=f"reported numbers (default {DEFAULT_REPORTED} if present)")
    p.add_argument("--datasets", default=None, help="comma-separated; default: every dataset found")
    p.add_argument("--variants", default=None, help="comma-separated; default: every variant found")
    p.add_argument("--seeds", default=None, help="comma-separated; default: every seed found")
    p.add_argument("--claims-md", default=None, help="verdict table (ebm_bench.claims) to open summary.md with")
    a = p.parse_args(argv)
    seeds = _split(a.seeds)
    written = build_tables(
        a.results_dir,
        a.out_dir or Path(a.results_dir) / "tables",
        reported=a.reported or DEFAULT_REPORTED,
        datasets=_split(a.datasets),
        methods=_split(a.variants),
        seeds=None if seeds is None else [int(s) for s in seeds],
        claims_md=a.claims_md,
    )
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
