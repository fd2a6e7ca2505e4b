"""The metric protocol on real parts: the FID/KID/IS reference is the configured split,
IS has no direction on imbalanced data, a reproduction row checks the stated protocol,
and a table cell counts values, not runs (moved here from test_claims.py when the claims
layer became a package: these are about the metric files, not the verdicts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ebm_bench.reports.collect import collect
from ebm_bench.reports.tables import build_tables

FP = "fp-domain-1000"


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _run(res: Path, ds: str, variant: str, seed: int, value, *, status="ok", fp=FP, family="fid",
         metric="fid_domain", fstatus=None, error=None, raw=None) -> None:
    run = res / "runs" / ds / variant / f"seed{seed}"
    _write(run / "train_status.json", {"status": status, "wall_time_s": 1.0, "steps": 10})
    path = run / "metrics" / f"{family}.json"
    if raw is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(raw)
        return
    _write(path, {"family": family, "status": fstatus or ("diverged" if status == "diverged" else "ok"),
                  "metrics": {metric: value}, "fingerprint": fp, "error": error,
                  "protocol": {"feature_kind": "domain"}})


def test_cell_n_counts_values_not_runs(tmp_path: Path) -> None:
    """A null value and an unreadable file leave the cell on fewer values, and say so."""
    res = tmp_path / "results"
    _run(res, "d", "m", 0, 1.0)
    _run(res, "d", "m", 1, None)  # the family could not compute it
    _run(res, "d", "m", 2, None, raw='{"family": "fid", "metrics": {"fid_dom')  # truncated JSON
    tidy, runs, _ = collect(res)
    st = dict(zip(tidy["seed"], tidy["status"]))
    assert st == {0: "ok", 1: "ok", 2: "unreadable"}
    note = tidy.loc[tidy["seed"] == 2, "note"].iloc[0]
    assert "unreadable fid.json" in note
    build_tables(res, tmp_path / "t", reported=None)
    table = pd.read_csv(tmp_path / "t" / "d.csv").set_index("method")
    assert table.loc["m", "n_seeds"] == 3 and table.loc["m", "fid_domain_n"] == 1
    md = (tmp_path / "t" / "d.md").read_text()
    assert "[1/3]" in md and "unreadable fid.json" in md



# --- the metric protocol on real parts ---------------------------------------------------


def _spec(name: str, **ev) -> dict:
    return {"dataset": {"name": name, "type": name, "params": {}}, "data_root": "data", "seed": 0,
            "variant": "data", "method": "data", "device": "cpu",
            "evaluate": {"real_split": "train", "n_real": None, "min_real_per_dim": 2.0,
                         "min_classifier_accuracy": 0.9, "use_inception": False, **ev}}


def test_reference_is_the_configured_split(untrained_classifier, tmp_path: Path) -> None:
    from ebm_bench.data import load_dataset, to_uint8
    from ebm_bench.core.errors import ConfigError
    from ebm_bench.metrics.extractors import DomainExtractor
    from ebm_bench.core.artefacts import load_reference
    from ebm_bench.pipeline.stages import reference_stage

    clf = untrained_classifier["digits"]
    d = load_dataset("digits", {}, "data")
    feats = {split: DomainExtractor(clf).extract(to_uint8(x))["pool"] for split, x in
             (("train", d.x_train), ("test", d.x_test))}
    for split in ("train", "test"):
        out = tmp_path / f"{split}.npz"
        reference_stage(_spec("digits", real_split=split), clf, out)
        ref = load_reference(out)
        assert ref["meta"]["real_split"] == split and ref["meta"]["n_real"] == len(feats[split])
        np.testing.assert_allclose(ref["mu"], feats[split].mean(0), rtol=1e-6, atol=1e-9)
    with pytest.raises(ConfigError, match="n_real = 5000 but the train split of 'digits' has 1437"):
        reference_stage(_spec("digits", n_real=5000), clf, tmp_path / "x.npz")


def test_is_has_no_direction_on_imbalanced_data(untrained_classifier, tmp_path: Path) -> None:
    from ebm_bench.data import load_dataset, to_uint8
    from ebm_bench.evaluation import EvalContext
    from ebm_bench.evaluation.fid import fid
    from ebm_bench.metrics.extractors import DomainExtractor
    from ebm_bench.pipeline.stages import reference_stage

    dirs = {}
    for name in ("digits", "digits_236"):
        clf = untrained_classifier[name]
        ref = tmp_path / f"{name}.npz"
        reference_stage(_spec(name), clf, ref)
        d = load_dataset(name, {}, "data")
        ctx = EvalContext(spec=_spec(name), label=name, run_dir=tmp_path, data=d, method=None,
                          samples=to_uint8(d.x_test).numpy(), status="ok", domain=DomainExtractor(clf),
                          reference=ref)
        metrics, protocol = fid(ctx)
        dirs[name] = protocol["directions"]["is_domain"]
        assert metrics["is_gap_domain"] == pytest.approx(abs(metrics["is_domain"] - protocol["is_real"]))
        # an untrained classifier is below the accuracy floor: its metrics are flagged


def test_reproduction_row_checks_the_stated_protocol(tmp_path: Path) -> None:
    from ebm_bench.reports.reduce import reproduction_table

    res = tmp_path / "results"
    for s in range(2):
        run = res / "runs" / "c" / "m" / f"seed{s}"
        _write(run / "train_status.json", {"status": "ok"})
        _write(run / "metrics" / "fid.json", {
            "family": "fid", "status": "ok", "metrics": {"fid_inception": 30.0 + s}, "fingerprint": "h1",
            "protocol": {"fingerprint": {"n_generated": 1000, "real_split": "train"}}})
    tidy, _, _ = collect(res)
    entry = {"dataset": "c", "method": "m", "metric": "fid_inception", "value": 30.0, "source": "t"}
    rows = reproduction_table(tidy, [entry, {**entry, "protocol": {"n_generated": 1000}},
                                     {**entry, "protocol": {"n_generated": 50000}}])
    assert list(rows["protocol"][:2]) == ["not stated by the paper", "matches"]
    assert rows["protocol"][2].startswith("protocol mismatch: n_generated 1000 vs 50000")
    assert rows["ours − reported"][2] == "protocol mismatch" and rows["ours − reported"][1] == "0.5"

