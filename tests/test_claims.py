"""ebm_bench.claims and the metric protocol behind it.

The verdict tests fabricate run folders (train_status.json + metrics/*.json, the files
the evaluate stage writes) with values chosen so each verdict of the rule must come out;
the reference/IS tests run the real reference stage and ``fid`` family on digits with an
untrained domain classifier (its weights only need to be fixed, not good).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ebm_bench import claims as C
from ebm_bench.tables import build_tables, collect

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


def _claims(tmp: Path, entries: list[dict]) -> Path:
    base = {"paper": "003", "source": "test", "statement": "s", "setting": "cpu_analogue",
            "config": "config/config.yaml", "dataset": "d"}
    path = tmp / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [{**base, **e} for e in entries]}))
    return path


def _verdicts(tmp: Path, entries: list[dict]) -> pd.DataFrame:
    out = C.build_claims(tmp / "results", tmp / "tables", _claims(tmp, entries))
    return pd.read_csv(out["claims.csv"]).set_index("id")


def _cmp(cid: str, a: str, b: str, direction: str = "less", **kw) -> dict:
    return {"id": cid, "kind": "compare", "a": {"variant": a, "metric": "fid_domain"},
            "b": {"variant": b, "metric": "fid_domain"}, "direction": direction, **kw}


def test_fabricated_runs_reach_every_verdict(tmp_path: Path) -> None:
    res = tmp_path / "results"
    good = {0: 10.0, 1: 12.0, 2: 11.0, 3: 10.5}
    bad = {0: 20.0, 1: 23.0, 2: 21.0, 3: 22.0}
    noisy = {0: 5.0, 1: 30.0, 2: 14.0, 3: 16.0}
    for s in range(4):
        _run(res, "d", "good", s, good[s])
        _run(res, "d", "bad", s, bad[s])
        _run(res, "d", "noisy", s, noisy[s])
        _run(res, "d", "other_protocol", s, good[s], fp="fp-domain-500")
        _run(res, "d", "exploded", s, None, status="diverged")
        _run(res, "d", "broken", s, None, fstatus="error", error="RuntimeError: boom")
    for s in range(2):
        _run(res, "d", "two_seeds", s, good[s])
    v = _verdicts(tmp_path, [
        _cmp("holds", "good", "bad"),
        _cmp("contradicted", "bad", "good"),
        _cmp("inconclusive", "noisy", "good"),
        _cmp("inconclusive_positive", "good", "noisy"),  # effect > 0, but its interval holds 0
        _cmp("too_few", "two_seeds", "bad"),
        _cmp("not_run", "good", "never_trained"),
        _cmp("mismatch", "other_protocol", "bad"),
        _cmp("diverged", "exploded", "bad"),
        _cmp("error", "broken", "bad"),
        {"id": "within_holds", "kind": "within", "a": {"variant": "good", "metric": "fid_domain"},
         "target": 11.0, "tolerance": 3.0},
        {"id": "within_contradicted", "kind": "within", "a": {"variant": "bad", "metric": "fid_domain"},
         "target": 11.0, "tolerance": 3.0},
        {"id": "threshold_holds", "kind": "threshold", "a": {"variant": "good", "metric": "fid_domain"},
         "direction": "less", "target": 15.0},
        {"id": "min_effect_not_met", **{k: w for k, w in _cmp("x", "good", "bad").items() if k != "id"},
         "min_effect": 50.0},
    ])
    expected = {"holds": "holds", "contradicted": "contradicted", "inconclusive": "inconclusive",
                "inconclusive_positive": "inconclusive",
                "too_few": "too few seeds", "not_run": "not run", "mismatch": "protocol mismatch",
                "diverged": "diverged", "error": "error", "within_holds": "holds",
                "within_contradicted": "contradicted", "threshold_holds": "holds",
                "min_effect_not_met": "contradicted"}
    assert v["verdict"].to_dict() == expected
    # every verdict of the rule is reachable from fabricated runs
    assert set(expected.values()) == set(C.VERDICTS)
    h = v.loc["holds"]
    diffs = np.array([bad[s] - good[s] for s in range(4)])  # oriented: b - a for "less"
    assert h["paired"] == "yes" and h["n"] == 4
    assert h["effect"] == pytest.approx(diffs.mean())
    assert h["ci_low"] < diffs.mean() < h["ci_high"] and h["ci_low"] > 0
    assert h["a_mean"] == pytest.approx(np.mean(list(good.values())))
    assert "boom" in v.loc["error", "note"]
    assert "config/config.yaml" in v.loc["not_run", "note"]


def test_unpaired_seeds_use_a_permutation_test(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "a", s, 1.0 + 0.1 * s)
        _run(res, "d", "b", s + 10, 5.0 + 0.1 * s)
    v = _verdicts(tmp_path, [_cmp("c", "a", "b")])
    row = v.loc["c"]
    assert row["paired"] == "no" and "permutation" in row["test"] and row["verdict"] == "holds"
    # the smallest one-sided p of an exact 3-vs-3 permutation test is 1 / C(6, 3)
    assert row["p_value"] == pytest.approx(1 / 20)


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


def test_claims_file_errors_name_the_entry(tmp_path: Path) -> None:
    with pytest.raises(C.ClaimError, match="claim x: kind compare needs a side 'b'"):
        C.load_claims(_claims(tmp_path, [{"id": "x", "kind": "compare", "direction": "less",
                                          "a": {"variant": "v", "metric": "m"}}]))
    with pytest.raises(C.ClaimError, match=r"claim y.direction = 'lower'"):
        C.load_claims(_claims(tmp_path, [_cmp("y", "a", "b", direction="lower")]))


def test_repository_claims_file_is_valid() -> None:
    entries = C.load_claims(Path(__file__).resolve().parents[1] / "config" / "claims.yaml")
    papers = {e["paper"] for e in entries}
    assert papers == {"000", "002", "003", "004"}


# --- the metric protocol on real parts ---------------------------------------------------


@pytest.fixture(scope="module")
def untrained_classifier(tmp_path_factory) -> dict[str, Path]:
    """An untrained (fixed random weights) domain classifier per digits dataset."""
    from ebm_bench.data import load_dataset
    from ebm_bench.metrics.extractors import save_classifier, train_domain_classifier

    out = {}
    for name in ("digits", "digits_236"):
        d = load_dataset(name, {}, "data")
        ckpt, _ = train_domain_classifier(d.x_train[:32], d.y_train[:32], d.x_test[:32], d.y_test[:32],
                                          epochs=0, num_classes=d.num_classes)
        path = tmp_path_factory.mktemp(name) / "clf.pt"
        save_classifier(path, ckpt)
        out[name] = path
    return out


def _spec(name: str, **ev) -> dict:
    return {"dataset": {"name": name, "type": name, "params": {}}, "data_root": "data", "seed": 0,
            "variant": "data", "method": "data", "device": "cpu",
            "evaluate": {"real_split": "train", "n_real": None, "min_real_per_dim": 2.0,
                         "min_classifier_accuracy": 0.9, "use_inception": False, **ev}}


def test_reference_is_the_configured_split(untrained_classifier, tmp_path: Path) -> None:
    from ebm_bench.data import load_dataset, to_uint8
    from ebm_bench.errors import ConfigError
    from ebm_bench.metrics.extractors import DomainExtractor
    from ebm_bench.stages import load_reference, reference_stage

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
    from ebm_bench.stages import reference_stage

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
        assert "unreliable" in protocol["flags"]["fid_domain"]
        # digits_236 has 245 training images for 128 features: FID uses the logits layer
        assert protocol["layer"] == ("pool" if name == "digits" else "logits")
    assert dirs == {"digits": "higher", "digits_236": ""}


def test_reproduction_row_checks_the_stated_protocol(tmp_path: Path) -> None:
    from ebm_bench.tables import reproduction_table

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


def test_claims_of_another_config_read_not_run(tmp_path: Path) -> None:
    """Two configs may share dataset and variant names at different sizes: a claim is
    judged only on the results of the config it names."""
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "good", s, 10.0 + s)
        _run(res, "d", "bad", s, 20.0 + s)
    entries = [_cmp("here", "good", "bad"), {**_cmp("there", "good", "bad"), "config": "config/claims_cpu.yaml"}]
    out = C.build_claims(res, tmp_path / "t", _claims(tmp_path, entries), configs=["config/config.yaml"])
    v = pd.read_csv(out["claims.csv"]).set_index("id")
    assert v.loc["here", "verdict"] == "holds" and v.loc["there", "verdict"] == "not run"
    assert "decided by config/claims_cpu.yaml" in v.loc["there", "note"]
