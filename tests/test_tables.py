"""ebm_bench.reports.tables on fabricated run files: 2 datasets x 2 methods x 2 seeds, one
diverged run; every expected number is computed by hand here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebm_bench.reports.schema import TIDY_COLUMNS, metric_direction
from ebm_bench.reports.tables import build_tables

# (dataset, method, seed) -> metric values; None marks the diverged run
VALUES = {
    ("digits", "short_run", 0): {"fid": 10.0, "is": 2.0, "probe_accuracy": 0.90},
    ("digits", "short_run", 1): {"fid": 14.0, "is": 3.0, "probe_accuracy": 0.80},
    ("digits", "pcd", 0): {"fid": 20.0, "is": 1.5, "probe_accuracy": 0.70},
    ("digits", "pcd", 1): None,  # diverged
    ("rings", "short_run", 0): {"kl": 0.5},
    ("rings", "short_run", 1): {"kl": 0.7},
    ("rings", "pcd", 0): {"kl": 0.2},
    ("rings", "pcd", 1): {"kl": 0.4},
}
WALL = {0: 100.0, 1: 140.0}  # train wall time by seed
SAMPLER_STEPS = {"short_run": 3000, "pcd": 1500}
MAX_RSS = {0: 500.0, 1: 700.0}  # MB by seed


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _bench(path: Path, s: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        f"{s + 3}\t0:01:00\t{rss}\t900.0\t400.0\t450.0\t0.1\t0.2\t95.0\t{s}\n"
    )


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    for (ds, method, seed), vals in VALUES.items():
        run = res / "runs" / ds / method / f"seed{seed}"
        diverged = vals is None
        _write(run / "train_status.json", {
            "status": "diverged" if diverged else "ok", "diverged_step": 40 if diverged else None,
            "steps": 40 if diverged else 300, "wall_time_s": WALL[seed] / (5 if diverged else 1),
            "sampler_steps": SAMPLER_STEPS[method], "resumed_from": None,
        })
        if ds == "digits":
            families = {"fid": ["fid", "is"], "probe": ["probe_accuracy"]}
            protocol = {"fid": {"features": {"name": "domain_classifier"}}, "probe": {"features": "model"}}
        else:
            families = {"exact": ["kl"]}
            protocol = {"exact": {"grid": 64}}
        for fam, names in families.items():
            _write(run / "metrics" / f"{fam}.json", {
                "family": fam, "dataset": ds, "variant": method, "seed": seed,
                "status": "diverged" if diverged else "ok",
                # a diverged run's evaluation records its metrics as null
                "metrics": {n: (None if diverged else vals[n]) for n in names},
                "protocol": protocol[fam],
            })
        for stage in ("train", "sample", "evaluate"):
            _bench(res / "benchmarks" / stage / ds / method / f"seed{seed}.tsv", WALL[seed], MAX_RSS[seed])
    return res


def test_runs_csv_is_tidy(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    written = build_tables(results, out, reported=None)
    runs = pd.read_csv(written["runs.csv"])
    assert list(runs.columns) == TIDY_COLUMNS
    # digits: 4 runs x 3 metrics; rings: 4 runs x 1 metric
    assert len(runs) == 4 * 3 + 4 * 1
    assert not runs.duplicated(["dataset", "method", "seed", "metric"]).any()
    # the diverged run keeps its rows, value NaN, status "diverged"
    div = runs[(runs.dataset == "digits") & (runs.method == "pcd") & (runs.seed == 1)]
    assert sorted(div.metric) == ["fid", "is", "probe_accuracy"]
    assert (div.status == "diverged").all() and div.value.isna().all()
    ok = runs[runs.status == "ok"]
    assert len(ok) == len(runs) - 3
    row = ok[(ok.dataset == "digits") & (ok.method == "short_run") & (ok.seed == 1) & (ok.metric == "fid")]
    assert row.value.item() == 14.0


def test_dataset_table_numbers(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    build_tables(results, out, reported=None)
    t = pd.read_csv(out / "digits.csv").set_index("method")
    sr = t.loc["short_run"]
    assert sr.n_seeds == 2 and sr.n_diverged == 0
    assert float(sr.fid_mean) == pytest.approx(12.0)
    assert float(sr.fid_std) == pytest.approx(np.std([10.0, 14.0], ddof=1))  # 2.828...
    assert float(sr.is_mean) == pytest.approx(2.5)
    assert float(sr.probe_accuracy_mean) == pytest.approx(0.85)
    assert float(sr.probe_accuracy_std) == pytest.approx(math.sqrt(0.005))
    # cost columns: mean over ok runs
    assert float(sr.train_time_s) == pytest.approx(120.0)
    assert float(sr.sampler_steps) == pytest.approx(3000)
    assert float(sr.peak_mem_mb) == pytest.approx(600.0)
    # pcd: one ok seed (mean = the value, std blank), one diverged
    pcd = t.loc["pcd"]
    assert pcd.n_seeds == 1 and pcd.n_diverged == 1
    assert float(pcd.fid_mean) == pytest.approx(20.0)
    assert pd.isna(pcd.fid_std)
    assert float(pcd.train_time_s) == pytest.approx(100.0)  # the diverged run is not averaged in
    assert float(pcd.peak_mem_mb) == pytest.approx(500.0)

    r = pd.read_csv(out / "rings.csv").set_index("method")
    assert float(r.loc["pcd", "kl_mean"]) == pytest.approx(0.3)
    assert float(r.loc["pcd", "kl_std"]) == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert float(r.loc["short_run", "kl_mean"]) == pytest.approx(0.6)


def test_all_diverged_cells_say_diverged(results: Path, tmp_path: Path) -> None:
    # make the remaining pcd seed on digits diverge too
    run = results / "runs" / "digits" / "pcd" / "seed0"
    st = json.loads((run / "train_status.json").read_text())
    st["status"] = "diverged"
    (run / "train_status.json").write_text(json.dumps(st))
    out = tmp_path / "tables"
    build_tables(results, out, reported=None)
    t = pd.read_csv(out / "digits.csv", dtype=str).set_index("method")
    assert t.loc["pcd", "n_seeds"] == "0" and t.loc["pcd", "n_diverged"] == "2"
    for col in ("fid_mean", "fid_std", "is_mean", "probe_accuracy_mean", "train_time_s", "peak_mem_mb"):
        assert t.loc["pcd", col] == "diverged"
    assert t.loc["short_run", "fid_mean"] != "diverged"
    md = (out / "digits.md").read_text()
    pcd_line = next(line for line in md.splitlines() if line.startswith("| pcd"))
    assert "diverged" in pcd_line
    assert "diverged" in (out / "digits.tex").read_text()
    runs = pd.read_csv(out / "runs.csv")
    assert (runs[(runs.dataset == "digits") & (runs.method == "pcd")].status == "diverged").all()


def test_markdown_latex_summary(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    written = build_tables(results, out, reported=None)
    expected = {"runs.csv", "summary.md"} | {f"{d}.{e}" for d in ("digits", "rings") for e in ("csv", "md", "tex")}
    assert expected <= set(written)
    assert "reproduction.md" not in written
    for name in expected:
        assert (out / name).stat().st_size > 0
    md = (out / "digits.md").read_text()
    assert "fid ↓" in md and "is ↑" in md and "probe_accuracy ↑" in md
    assert "12 ± 2.8" in md  # short_run fid
    tex = (out / "digits.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\toprule" in tex
    assert r"short\_run" in tex and r"$\pm$" in tex and r"$\downarrow$" in tex
    summary = (out / "summary.md").read_text()
    assert "## digits" in summary and "## rings" in summary
    assert "8 runs: 7 ok, 1 diverged" in summary
    assert "4 runs: 3 ok, 1 diverged" in summary  # digits
    assert "## Legend" in summary
    legend = summary.split("## Legend")[1]
    assert "lower ↓" in legend and "higher ↑" in legend
    assert "domain classifier" in legend  # fid's feature space, from its protocol


def test_filters_and_missing_benchmarks(results: Path, tmp_path: Path) -> None:
    # runs of a variant no longer configured are left out; missing benchmark files -> blank cost
    for p in (results / "benchmarks").rglob("*.tsv"):
        p.unlink()
    out = tmp_path / "tables"
    written = build_tables(results, out, reported=None, datasets=["rings", "digits"],
                           methods=["short_run"], seeds=[0, 1])
    runs = pd.read_csv(written["runs.csv"])
    assert set(runs.method) == {"short_run"}
    assert list(dict.fromkeys(runs.dataset)) == ["rings", "digits"]  # config order
    t = pd.read_csv(out / "rings.csv")
    assert list(t.method) == ["short_run"]
    assert pd.isna(t.peak_mem_mb.item())
    assert float(t.train_time_s.item()) == pytest.approx(120.0)  # from train_status.json
    # the trainer's own peak_rss_mb stands in for a missing benchmark file
    for seed, rss in ((0, 300.0), (1, 500.0)):
        p = results / "runs" / "rings" / "short_run" / f"seed{seed}" / "train_status.json"
        st = json.loads(p.read_text())
        st["peak_rss_mb"] = rss
        p.write_text(json.dumps(st))
    build_tables(results, out, reported=None, datasets=["rings"], methods=["short_run"])
    assert float(pd.read_csv(out / "rings.csv").peak_mem_mb.item()) == pytest.approx(400.0)


def test_reproduction_table(results: Path, tmp_path: Path) -> None:
    reported = tmp_path / "reported.yaml"
    reported.write_text(
        "- {dataset: rings, method: pcd, metric: kl, value: 0.25, source: 'Paper 001, Table 2'}\n"
        "- {dataset: digits, method: cd, metric: fid, value: 30, source: 'Paper 002, Fig. 3'}\n"
    )
    out = tmp_path / "tables"
    written = build_tables(results, out, reported=reported)
    text = written["reproduction.md"].read_text()
    assert "Paper 001, Table 2" in text and "0.25" in text
    assert "0.3 ± 0.14" in text  # ours: mean ± std of 0.2, 0.4
    assert "0.05" in text  # ours - reported
    assert "not run" in text  # cd is not in our results
    # an absent file is skipped without error
    written = build_tables(results, tmp_path / "t2", reported=tmp_path / "nope.yaml")
    assert "reproduction.md" not in written


def test_tables_rebuild_from_metrics_only(results: Path, tmp_path: Path) -> None:
    """Pure function of the files: building twice gives identical outputs."""
    a, b = tmp_path / "a", tmp_path / "b"
    build_tables(results, a, reported=None)
    build_tables(results, b, reported=None)
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes()


def test_metric_directions() -> None:
    assert metric_direction("fid") == "lower"
    assert metric_direction("fid_domain") == "lower"
    assert metric_direction("inception_score") == "higher"
    assert metric_direction("is") == "higher"
    assert metric_direction("probe_accuracy") == "higher"
    assert metric_direction("kl") == "lower"
    assert metric_direction("mode_rel_error") == "lower"
    assert metric_direction("kl_stderr") == ""
    assert metric_direction("mass_a") == ""


def test_collect_exposes_the_config_each_run_was_made_for(results: Path) -> None:
    """provenance.config of the metrics files (else of train_status.json) becomes the
    `config` column of the tidy and the runs frames; files without one give ""."""
    from ebm_bench.reports.collect import collect

    for f in (results / "runs" / "rings" / "pcd" / "seed0" / "metrics").glob("*.json"):
        doc = json.loads(f.read_text())
        doc["provenance"] = {"config": "config/claims_cpu.yaml"}
        f.write_text(json.dumps(doc))
    status = results / "runs" / "rings" / "pcd" / "seed1" / "train_status.json"
    doc = json.loads(status.read_text())
    doc["provenance"] = {"config": "config/config.yaml"}
    status.write_text(json.dumps(doc))
    tidy, runs, _ = collect(results)
    by_run = runs.set_index(["dataset", "method", "seed"])["config"]
    assert by_run["rings", "pcd", 0] == "config/claims_cpu.yaml"
    assert by_run["rings", "pcd", 1] == "config/config.yaml"
    assert by_run["digits", "short_run", 0] == ""
    t = tidy.set_index(["dataset", "method", "seed", "metric"])["config"]
    assert t["rings", "pcd", 0, "kl"] == "config/claims_cpu.yaml"
    assert t["digits", "pcd", 1, "fid"] == ""  # the diverged run's completed rows too
    assert set(tidy["config"]) == {"", "config/claims_cpu.yaml", "config/config.yaml"}
