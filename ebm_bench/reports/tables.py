"""Tidy results -> comparison tables (CSV, Markdown, LaTeX): the entry point.

Three steps, one module each: :mod:`.collect` (files -> tidy table), :mod:`.reduce` (tidy
table -> one row per method), :mod:`.render` (rows -> Markdown / LaTeX / summary page);
:mod:`.schema` holds what they share. A pure reduction of the files the runs leave behind; nothing here trains, samples or
imports torch, so tables can be rebuilt at any time (``snakemake --forcerun tables``,
``ebm-bench tables``). Inputs, all parsed as data
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

from pathlib import Path
from typing import Iterable

import pandas as pd

from ebm_bench.reports.collect import collect, load_reported
from ebm_bench.reports.reduce import dataset_table, reproduction_table
from ebm_bench.reports.render import (dataset_directions, display_table, latex_table, markdown_table, metric_families,
                                      shown_metrics, split_display, summary_page, table_notes)
from ebm_bench.reports.schema import TIDY_COLUMNS

DEFAULT_REPORTED = Path("config/reported.yaml")


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
        metrics = shown_metrics(table)
        dirs = dataset_directions(legend, ds)
        write(f"{ds}.csv", table.to_csv(index=False, na_rep=""))
        md = display_table(table, metrics, tex=False, directions=dirs)
        notes = table_notes(table, metrics)
        parts = split_display(md, metrics, metric_families(legend, ds))
        write(f"{ds}.md", f"## {ds}\n\n" + parts + notes)
        write(f"{ds}.tex", latex_table(display_table(table, metrics, tex=True, directions=dirs), f"ebm-bench results on {ds}"))
        sections.append((ds, parts, runs[runs["dataset"] == ds], notes))

    verdicts = Path(claims_md).read_text(encoding="utf-8") if claims_md and Path(claims_md).is_file() else ""
    write("summary.md", summary_page(sections, runs, legend, verdicts))

    if reported is not None and Path(reported).is_file():
        entries = load_reported(reported)
        rep = reproduction_table(tidy, entries)
        text = (
            "# Reproduction: reported numbers beside ours\n\n"
            f"Reported values from `{reported}`; ours are the mean ± std over the seeds that "
            "did not diverge (`seeds`).\n\n" + markdown_table(rep, numeric=False)
        )
        write("reproduction.md", text)
    return written
