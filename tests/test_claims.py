"""ebm_bench.claims: claims with designs, gates, the verdict rule and the cross-scale report.

Run folders are fabricated (train_status.json + metrics/*.json with their provenance, the
files the evaluate stage writes) with values chosen so that each verdict must come out.
The gate tests use the repository's own gate sets (config/claims.yaml), so a change of
a real gate's metric, operator or side is caught here. The statistics themselves are
pinned to independent computations in tests/test_claim_stats.py.

Mutations of ebm_bench/claims/judge.py, each caught (the test that fails first):
pairing rule off -> fabricated_runs_reach_every_verdict; "less" orientation swapped ->
same; min_effect dropped from the decision -> same; within decision on the wrong
interval ends -> within_verdicts_at_the_band_edges; gate comparison skipped ->
each_gate_reaches_regime_not_reached; design's config not filtered ->
a_design_is_judged_only_from_its_own_configs_runs; unreliable flags ignored ->
fabricated_runs_reach_every_verdict; degenerate spread not checked ->
zero_variance_is_degenerate_never_a_zero_width_interval; BH returns raw p ->
adjusted_p_is_benjamini_hochberg_over_the_judged_designs; relative orientation swapped
-> relative_effects_use_log_ratios; diverged runs read as ok ->
fabricated_runs_reach_every_verdict; gate over the mean instead of the worst seed ->
one_runaway_seed_fails_the_gate; failed gates not turned into the verdict ->
fabricated_runs_reach_every_verdict; dropped seeds not named ->
one_diverged_seed_keeps_the_pairing_and_is_named.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from ebm_bench import claims as C

FP = "fp-domain-1000"
EMB = "config/config.yaml"
CPU = "config/claims_cpu.yaml"
REPO_CLAIMS = Path(__file__).resolve().parents[1] / "config" / "claims.yaml"


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _run(res: Path, ds: str, variant: str, seed: int, metrics: dict, *, family: str = "fid", config: str = EMB,
         status: str = "ok", fp: str = FP, flags: dict | None = None, fstatus: str | None = None,
         error: str | None = None) -> None:
    """One run's train_status.json and one metric family file, made for ``config``."""
    run = res / "runs" / ds / variant / f"seed{seed}"
    _write(run / "train_status.json", {"status": status, "wall_time_s": 1.0, "steps": 10})
    _write(run / "metrics" / f"{family}.json", {
        "family": family, "status": fstatus or ("diverged" if status == "diverged" else "ok"),
        "metrics": metrics, "fingerprint": fp, "error": error, "provenance": {"config": config},
        "protocol": {"feature_kind": "domain", "flags": flags or {}}})


def _claims_doc(claims: list[dict], gate_sets: dict | None = None, papers: list | None = None) -> dict:
    doc = {"papers": papers or [{"id": "t", "title": "A test paper", "citation": "Doe 2024"}],
           "scales": [{"id": "paper", "title": "paper"}, {"id": "cpu_claims", "title": "cpu"},
                      {"id": "embedded", "title": "embedded"}],
           "claims": claims}
    if gate_sets:
        doc["gate_sets"] = gate_sets
    return doc


def _claims(tmp: Path, claims: list[dict], **kw) -> Path:
    path = tmp / "claims.yaml"
    path.write_text(yaml.safe_dump(_claims_doc(claims, **kw)))
    return path


def _cmp(cid: str, a: str, b: str, *, direction: str = "less", metric: str = "fid_domain", min_effect: float = 1.0,
         config: str = EMB, scale: str = "embedded", gates: list | None = None, **kw) -> dict:
    design = {"scale": scale, "config": config, "dataset": "d"}
    if gates:
        design["gates"] = gates
    return {"id": cid, "paper": "t", "source": "s", "statement": f"statement {cid}", "kind": "compare",
            "direction": direction, "min_effect": min_effect, "a": {"variant": a, "metric": metric},
            "b": {"variant": b, "metric": metric}, "designs": [design], **kw}


def _verdicts(tmp: Path, claims: list[dict], res: Path | None = None, **kw) -> pd.DataFrame:
    out = C.build_claims(res or tmp / "results", tmp / "tables", _claims(tmp, claims, **kw))
    return pd.read_csv(out["claims.csv"], keep_default_na=False, na_values=[""]).set_index("id")


GOOD = [10.0, 12.0, 11.0, 10.5]
BAD = [20.0, 23.0, 21.0, 22.0]


def test_fabricated_runs_reach_every_verdict(tmp_path: Path) -> None:
    res = tmp_path / "results"
    noisy = [5.0, 30.0, 14.0, 16.0]
    for s in range(4):
        _run(res, "d", "good", s, {"fid_domain": GOOD[s]})
        _run(res, "d", "bad", s, {"fid_domain": BAD[s]})
        _run(res, "d", "noisy", s, {"fid_domain": noisy[s]})
        _run(res, "d", "null", s, {"fid_domain": GOOD[s] + 0.01 * (s % 2)})  # = good, to 0.01
        _run(res, "d", "other_protocol", s, {"fid_domain": GOOD[s]}, fp="fp-domain-500")
        _run(res, "d", "exploded", s, {"fid_domain": None}, status="diverged")
        _run(res, "d", "broken", s, {}, fstatus="error", error="RuntimeError: boom")
        _run(res, "d", "gated", s, {"fid_domain": GOOD[s]}, flags={"fid_domain": "unreliable: a test flag"})
    for s in range(2):
        _run(res, "d", "two_seeds", s, {"fid_domain": GOOD[s]})
    v = _verdicts(tmp_path, [
        _cmp("holds", "good", "bad"),
        _cmp("contradicted", "bad", "good"),
        _cmp("precise_null", "null", "good"),  # |effect| << min_effect: the effect that counts is absent
        _cmp("inconclusive", "noisy", "good"),
        _cmp("too_few", "two_seeds", "bad"),
        _cmp("not_run", "good", "absent"),
        _cmp("mismatch", "other_protocol", "bad"),
        _cmp("diverged", "exploded", "bad"),
        _cmp("error", "broken", "bad"),
        _cmp("gated", "gated", "bad"),
    ])
    expected = {"holds": "holds", "contradicted": "contradicted", "precise_null": "contradicted",
                "inconclusive": "inconclusive", "too_few": "too few seeds", "not_run": "not run",
                "mismatch": "protocol mismatch", "diverged": "diverged", "error": "error",
                "gated": "regime not reached"}
    assert v["verdict"].to_dict() == expected
    assert set(expected.values()) == set(C.VERDICTS)
    h = v.loc["holds"]
    diffs = np.array(BAD) - np.array(GOOD)  # oriented: b - a for "less"
    assert h["paired"] == "yes" and h["n"] == 4 and h["seeds"] == "0 1 2 3"
    assert h["effect"] == pytest.approx(diffs.mean())
    assert h["ci_low"] > 1.0 and h["ci_level"] == "95%"
    assert "boom" in v.loc["error", "note"]
    assert "a test flag" in v.loc["gated", "gates_failed"]
    # a gated design still shows its numbers
    assert math.isfinite(v.loc["gated", "effect"])


def test_one_diverged_seed_keeps_the_pairing_and_is_named(tmp_path: Path) -> None:
    res = tmp_path / "results"
    a = [10.0, 12.0, 11.0, 10.5, 9.0]
    b = [20.0, 23.0, 21.0, 22.0, 18.0]
    for s in range(5):
        if s == 3:
            _run(res, "d", "a", s, {"fid_domain": None}, status="diverged")
        else:
            _run(res, "d", "a", s, {"fid_domain": a[s]})
        _run(res, "d", "b", s, {"fid_domain": b[s]})
    row = _verdicts(tmp_path, [_cmp("c", "a", "b")]).loc["c"]
    shared = [0, 1, 2, 4]
    d = np.array([b[s] - a[s] for s in shared])
    assert row["paired"] == "yes" and row["n"] == 4 and row["seeds"] == "0 1 2 4"
    assert row["dropped_seeds"] == "b: 3"
    assert row["diverged_seeds"] == "a: 3" and "diverged seeds" in row["note"]
    assert row["effect"] == pytest.approx(d.mean())
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2.0
    assert row["ci_low"] == pytest.approx(d.mean() - half, rel=1e-12)


def test_zero_variance_is_degenerate_never_a_zero_width_interval(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for s in range(3):  # identical differences of one test image (quantised accuracy)
        _run(res, "d", "a", s, {"probe_acc": 0.9 + 1 / 360 + 0.01 * s}, family="probe")
        _run(res, "d", "b", s, {"probe_acc": 0.9 + 0.01 * s}, family="probe")
    row = _verdicts(tmp_path, [_cmp("c", "a", "b", direction="greater", metric="probe_acc",
                                    min_effect=0.001)]).loc["c"]
    assert row["verdict"] == "inconclusive" and "degenerate spread" in row["note"]
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])


def test_saturated_seeds_are_judged_by_the_sign_test(tmp_path: Path) -> None:
    """A threshold claim whose seeds all saturate (paper 003 Fig. 8: max mass exactly 1.0)
    has no t interval; from 6 seeds the exact sign test decides it (interval of the
    median, note naming the test); with 3 it stays inconclusive and says why."""
    res = tmp_path / "results"
    for s in range(6):
        _run(res, "d", "pcd", s, {"max_mass_a": 1.0}, family="diagnostics")
    thr = {"id": "t6", "paper": "t", "source": "s", "statement": "collapses onto a", "kind": "threshold",
           "direction": "greater", "min_effect": 0.0, "a": {"variant": "pcd", "metric": "max_mass_a"},
           "target": 0.95, "designs": [{"scale": "embedded", "config": EMB, "dataset": "d"}]}
    row = _verdicts(tmp_path, [thr]).loc["t6"]
    assert row["verdict"] == "holds" and row["test"] == "sign test" and "sign test" in row["note"]
    assert row["ci_low"] == pytest.approx(0.05) and row["p_value"] == pytest.approx(2.0 ** -6)
    res3 = tmp_path / "res3"
    for s in range(3):
        _run(res3, "d", "pcd", s, {"max_mass_a": 1.0}, family="diagnostics")
    row = _verdicts(tmp_path, [thr], res=res3).loc["t6"]
    assert row["verdict"] == "inconclusive" and "needs 6 seeds" in row["note"]


def test_min_effect_shifts_the_decision(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for s in range(4):
        _run(res, "d", "good", s, {"fid_domain": GOOD[s]})
        _run(res, "d", "bad", s, {"fid_domain": BAD[s]})
    d = np.array(BAD) - np.array(GOOD)  # effect ~10.4, interval about [8.9, 11.9]
    v = _verdicts(tmp_path, [_cmp("small", "good", "bad", min_effect=1.0),
                             _cmp("large", "good", "bad", min_effect=50.0),
                             _cmp("inside", "good", "bad", min_effect=10.0)])
    assert v.loc["small", "verdict"] == "holds"
    assert v.loc["large", "verdict"] == "contradicted"
    assert v.loc["inside", "verdict"] == "inconclusive"
    se = d.std(ddof=1) / 2.0
    assert v.loc["inside", "p_value"] == pytest.approx(sps.t.sf((d.mean() - 10.0) / se, 3), rel=1e-10)


def test_within_claims_use_tost(tmp_path: Path) -> None:
    res = tmp_path / "results"
    vals = [0.24, 0.26, 0.25, 0.255]
    for s in range(4):
        _run(res, "d", "j", s, {"mass_a": vals[s]}, family="exact")
    claim = {"id": "w", "paper": "t", "source": "s", "statement": "s", "kind": "within", "tolerance": 0.03,
             "target": 0.25, "a": {"variant": "j", "metric": "mass_a"},
             "designs": [{"scale": "embedded", "config": EMB, "dataset": "d"}]}
    row = _verdicts(tmp_path, [claim]).loc["w"]
    d = np.array(vals) - 0.25
    se = d.std(ddof=1) / 2.0
    p_tost = max(sps.t.sf((d.mean() + 0.03) / se, 3), sps.t.cdf((d.mean() - 0.03) / se, 3))
    assert row["verdict"] == "holds" and row["p_value"] == pytest.approx(p_tost, rel=1e-10)
    assert row["effect"] == pytest.approx(d.mean())


def test_relative_effects_use_log_ratios(tmp_path: Path) -> None:
    res = tmp_path / "results"
    a = [40.0, 42.0, 45.0, 41.0]   # jarzynski
    b = [30.0, 33.0, 31.0, 32.0]   # pcd
    for s in range(4):
        _run(res, "d", "j", s, {"time_per_update_ms": a[s]}, family="cost")
        _run(res, "d", "p", s, {"time_per_update_ms": b[s]}, family="cost")
    claim = {"id": "r", "paper": "t", "source": "s", "statement": "s", "kind": "compare", "direction": "greater",
             "relative": True, "min_effect": 0.1, "a": {"variant": "j", "metric": "time_per_update_ms"},
             "b": {"variant": "p", "metric": "time_per_update_ms"},
             "designs": [{"scale": "embedded", "config": EMB, "dataset": "d"}]}
    row = _verdicts(tmp_path, [claim]).loc["r"]
    lr = np.log(np.array(a) / np.array(b))
    half = sps.t.ppf(0.975, 3) * lr.std(ddof=1) / 2.0
    assert row["ci_low"] == pytest.approx(math.exp(lr.mean() - half) - 1, rel=1e-10)
    assert row["ci_high"] == pytest.approx(math.exp(lr.mean() + half) - 1, rel=1e-10)
    assert row["effect"] == pytest.approx(math.exp(lr.mean()) - 1, rel=1e-10)


def test_adjusted_p_is_benjamini_hochberg_over_the_judged_designs(tmp_path: Path) -> None:
    res = tmp_path / "results"
    rng = np.random.default_rng(0)
    for s in range(4):
        _run(res, "d", "base", s, {"fid_domain": 10.0 + s})
        for k, shift in enumerate([0.5, 1.0, 2.0, 4.0]):
            _run(res, "d", f"m{k}", s, {"fid_domain": 10.0 + s + shift + float(rng.normal(0, 0.5))})
    claims = [_cmp(f"c{k}", "base", f"m{k}", min_effect=0.01) for k in range(4)] + [_cmp("absent", "base", "x")]
    v = _verdicts(tmp_path, claims)
    p = v.loc[[f"c{k}" for k in range(4)], "p_value"].to_numpy()
    order = np.argsort(p)
    m = len(p)
    bh = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):  # step-up: min over the larger ranks of p * m / rank
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        bh[i] = running
    assert v.loc[[f"c{k}" for k in range(4)], "p_adj_bh"].to_numpy() == pytest.approx(bh, rel=1e-12)
    assert math.isnan(v.loc["absent", "p_adj_bh"])


# --- gates --------------------------------------------------------------------------------

# gate set of config/claims.yaml -> the values that pass it, and one value that fails it:
# (variant or None for side a / "b" for side b, metric, passing value, failing value)
GATE_CASES = {
    "jarzynski_weights_digits": [(None, "ess_min_before_resampling", 0.3, 0.01),
                                 (None, "ancestors_frac_final", 0.2, 0.01),
                                 (None, "n_resamples_final", 2.0, 100.0)],
    "jarzynski_weights_gmm": [(None, "ancestors_frac_final", 0.2, 0.001)],
    "mass_converged": [(None, "slope_mass_a", 1e-6, -1e-4)],
    "cost_structure": [(None, "timed_quietly", 1.0, 0.0), (None, "sampler_steps_per_update", 60.0, 3.0),
                       (None, "walkers_per_moved", 16.0, 64.0)],
    "domain_classifier": [("data", "domain_classifier_acc", 0.99, 0.5)],
    "ais_floor": [(None, "model_mode_ess_chains", 100.0, 3.0), ("b", "model_mode_ess_chains", 100.0, 3.0)],
    "no_runaway": [(None, "energy_scale", 50.0, 5000.0), ("b", "energy_scale", 50.0, 5000.0)],
    "no_runaway_a": [(None, "energy_scale", 50.0, 5000.0)],
    "probe_ceiling": [("data", "probe_acc_pixels", 0.8, 0.99)],
    "probe_ceiling_raw": [("data", "probe_raw_acc_pixels", 0.8, 0.99)],
    "sample_control": [("gaussian", "score", 100.0, 10.5)],
    "sample_control_fid": [("gaussian", "fid_domain", 100.0, 10.5)],
    "sample_control_mmd": [("gaussian", "mmd_samples", 100.0, 10.5)],
    "sample_control_mmd_multiscale": [("gaussian", "mmd_samples_multiscale", 100.0, 10.5)],
    "above_untrained": [(None, "score_untrained", 1.0, 30.0), ("b", "score_untrained", 1.0, 30.0)],
}


def _gate_sets() -> dict:
    return yaml.safe_load(REPO_CLAIMS.read_text())["gate_sets"]


def test_every_repository_gate_set_has_a_case() -> None:
    assert set(GATE_CASES) == set(_gate_sets())


@pytest.mark.parametrize("gate_set", sorted(GATE_CASES))
def test_each_gate_reaches_regime_not_reached(tmp_path: Path, gate_set: str) -> None:
    """The claim holds with every gate value passing; each failing value alone turns it
    into "regime not reached" naming that gate."""
    claim = _cmp("g", "m1", "m2", direction="greater", metric="score", min_effect=1.0, gates=[gate_set])
    cases = GATE_CASES[gate_set]

    def fabricate(res: Path, failing: int | None) -> None:
        for s in range(3):
            _run(res, "d", "m1", s, {"score": [20.0, 21.5, 22.2][s]}, family="x")
            _run(res, "d", "m2", s, {"score": [10.0, 11.0, 12.7][s]}, family="x")
            _run(res, "d", "data", s, {"score": 10.0, "fid_domain": 10.0, "mmd_samples": 10.0,
                                              "mmd_samples_multiscale": 10.0}, family="x")
            per_variant: dict[str, dict] = {}
            for k, (who, metric, good, bad) in enumerate(cases):
                variant = {"None": "m1", "b": "m2"}.get(str(who), who)
                per_variant.setdefault(variant, {})[metric] = bad if k == failing else good
            for variant, metrics in per_variant.items():  # the control scored by the claim's family
                _run(res, "d", variant, s, metrics, family="x" if variant == "gaussian" else "diag")

    fabricate(tmp_path / "ok", None)
    row = _verdicts(tmp_path, [claim], res=tmp_path / "ok", gate_sets=_gate_sets()).loc["g"]
    assert row["verdict"] == "holds", row["gates_failed"]
    assert not isinstance(row["gates_failed"], str) or row["gates_failed"] == ""
    names = {g["name"] for g in _gate_sets()[gate_set]}
    for k, (_, metric, _, bad) in enumerate(cases):
        res = tmp_path / f"fail{k}"
        fabricate(res, k)
        row = _verdicts(tmp_path, [claim], res=res, gate_sets=_gate_sets()).loc["g"]
        assert row["verdict"] == "regime not reached", (gate_set, metric)
        assert row["gates_failed"].count(";") == 0  # exactly the one gate
        assert row["gates_failed"].split()[0].split(".")[0] in names


def test_missing_gate_value_is_not_reached(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "m1", s, {"score": [20.0, 21.5, 22.2][s]})
        _run(res, "d", "m2", s, {"score": [10.0, 11.0, 12.7][s]})
    row = _verdicts(tmp_path, [_cmp("g", "m1", "m2", direction="greater", metric="score", gates=["no_runaway_a"])],
                    gate_sets=_gate_sets()).loc["g"]
    assert row["verdict"] == "regime not reached" and "energy_scale missing <= 1000" in row["gates_failed"]


# --- designs, provenance and scales ----------------------------------------------------------


def test_a_design_is_judged_only_from_its_own_configs_runs(tmp_path: Path) -> None:
    """Two configs in one results folder with the same dataset and variant names (the
    embedded suite and paper.yaml share results/): each design reads its own runs."""
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "a", s, {"fid_domain": GOOD[s]}, config=EMB)
        _run(res, "d", "b", s, {"fid_domain": BAD[s]}, config=EMB)
        _run(res, "d", "a", s + 10, {"fid_domain": BAD[s]}, config=CPU)
        _run(res, "d", "b", s + 10, {"fid_domain": GOOD[s]}, config=CPU)
    claim = _cmp("c", "a", "b")
    claim["designs"] = [{"scale": "cpu_claims", "config": CPU, "dataset": "d"},
                        {"scale": "embedded", "config": "./config/config.yaml", "dataset": "d"},
                        {"scale": "paper", "config": "config/paper.yaml", "dataset": "d"}]
    out = C.build_claims(res, tmp_path / "t", _claims(tmp_path, [claim]))
    v = pd.read_csv(out["claims.csv"], keep_default_na=False, na_values=[""])
    assert list(v["scale"]) == ["paper", "cpu_claims", "embedded"]  # most faithful first
    assert list(v["verdict"]) == ["not run", "contradicted", "holds"]
    assert v.loc[1, "seeds"] == "10 11 12" and v.loc[2, "seeds"] == "0 1 2"
    md = out["claims.md"].read_text()
    assert md.count("`c`") == 1
    line = next(x for x in md.splitlines() if "`c`" in x)
    assert "**contradicted**" in line and "**holds**" in line and "not run" in line


def test_runs_without_provenance_are_not_used(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for s in range(3):
        for variant, val in (("a", GOOD[s]), ("b", BAD[s])):
            run = res / "runs" / "d" / variant / f"seed{s}"
            _write(run / "train_status.json", {"status": "ok"})
            _write(run / "metrics" / "fid.json", {"family": "fid", "status": "ok", "metrics": {"fid_domain": val},
                                                   "fingerprint": FP, "protocol": {}})
    v = _verdicts(tmp_path, [_cmp("c", "a", "b")])
    assert v.loc["c", "verdict"] == "not run" and "made by config/config.yaml" in v.loc["c", "note"]


def test_every_configs_results_folder_is_read(tmp_path: Path, monkeypatch) -> None:
    """The report reads the results folder of each design's config, whatever folder the
    tables are regenerated from."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("results_dir: results\n")
    (tmp_path / "config" / "claims_cpu.yaml").write_text("results_dir: results/claims_cpu\n")
    for s in range(3):
        _run(tmp_path / "results", "d", "a", s, {"fid_domain": GOOD[s]}, config=EMB)
        _run(tmp_path / "results", "d", "b", s, {"fid_domain": BAD[s]}, config=EMB)
        _run(tmp_path / "results" / "claims_cpu", "d", "a", s, {"fid_domain": GOOD[s]}, config=CPU)
        _run(tmp_path / "results" / "claims_cpu", "d", "b", s, {"fid_domain": BAD[s]}, config=CPU)
    claim = _cmp("c", "a", "b")
    claim["designs"] = [{"scale": "cpu_claims", "config": CPU, "dataset": "d"},
                        {"scale": "embedded", "config": EMB, "dataset": "d"}]
    path = _claims(tmp_path, [claim])
    first = C.build_claims("results", "results/tables", path)
    second = C.build_claims("results/claims_cpu", "results/claims_cpu/tables", path)
    v = pd.read_csv(first["claims.csv"])
    assert list(v["verdict"]) == ["holds", "holds"]
    assert first["claims.csv"].read_text() == second["claims.csv"].read_text()


def test_a_new_paper_is_data(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "dsm", s, {"fid_domain": GOOD[s]})
        _run(res, "d", "pcd", s, {"fid_domain": BAD[s]})
    claim = {**_cmp("dsm_beats_pcd", "dsm", "pcd"), "paper": "dsm"}
    papers = [{"id": "dsm", "title": "Denoising score matching for EBMs", "citation": "Vincent 2011"}]
    out = C.build_claims(res, tmp_path / "t", _claims(tmp_path, [claim], papers=papers))
    md = out["claims.md"].read_text()
    assert "## dsm: Denoising score matching for EBMs (Vincent 2011)" in md
    assert "**holds**" in md


# --- the claims file -------------------------------------------------------------------------

BAD_ENTRIES = [
    ({"designs": [{"scale": "huge", "config": EMB, "dataset": "d"}]}, r"claim x.designs\[0\].scale = 'huge': unknown scale"),
    ({"paper": "999"}, r"claim x.paper = '999': not in papers"),
    ({"min_effect": 0.0}, r"claim x.min_effect = 0.0: a compare claim needs a smallest effect"),
    ({"direction": "lower"}, r"claim x.direction: 'lower' is not one of"),
    ({"b": None}, r"claim x.b: None is not of type 'object'"),
    ({"designs": [{"scale": "embedded", "config": EMB, "dataset": "d", "gates": ["nope"]}]},
     r"claim x.designs\[0\].gates: unknown gate set 'nope'"),
    ({"designs": [{"scale": "embedded", "config": EMB, "dataset": "d",
                   "gates": [{"name": "g", "metric": "m", "op": "=~", "threshold": 1}]}]},
     r"claim x.designs\[0\].gates\[0\]: expected a gate-set name or a gate"),
    ({"colour": "red"}, r"claim x: Additional properties are not allowed \('colour' was unexpected\)"),
    ({"designs": []}, r"claim x.designs: \[\] should be non-empty"),
]


@pytest.mark.parametrize("change,message", BAD_ENTRIES, ids=[m[:30] for _, m in BAD_ENTRIES])
def test_a_bad_claims_entry_is_refused_naming_the_claim(tmp_path: Path, change: dict, message: str) -> None:
    """The claims file is read against workflow/schemas/claims.schema.yaml, then the rules a
    schema cannot say; either way one line naming the claim and the key. (Mutation: the
    schema check in load_claims removed -> 5 of these rows fail: direction 'lower', b: null,
    an unknown op in a gate, the unknown key 'colour', designs: [].)"""
    entry = {**_cmp("x", "a", "b"), **change}
    with pytest.raises(C.ClaimError, match=message) as e:
        C.load_claims(_claims(tmp_path, [entry]))
    assert "\n" not in str(e.value)


def test_duplicate_ids_and_missing_min_effect_are_refused(tmp_path: Path) -> None:
    with pytest.raises(C.ClaimError, match="claim x: duplicate id"):
        C.load_claims(_claims(tmp_path, [_cmp("x", "a", "b"), _cmp("x", "a", "c")]))
    entry = _cmp("y", "a", "b")
    del entry["min_effect"]
    with pytest.raises(C.ClaimError, match="claim y.min_effect: missing"):
        C.load_claims(_claims(tmp_path, [entry]))


def test_repository_claims_carry_their_gates() -> None:
    spec = C.load_claims(REPO_CLAIMS)
    assert len({c["id"] for c in spec.claims}) == len(spec.claims)
    assert {d.claim["paper"] for d in spec.designs} <= set(spec.papers)
    for d in spec.designs:
        names = {g.name.split(".")[0] for g in d.gates}
        variants = {d.a["variant"]} | ({d.b["variant"]} if d.b else set())
        if any(v.startswith("jarzynski") for v in variants) and "mass_samples" not in d.id \
                and "cifar" not in d.id and d.id != "p003_cost":
            assert "ancestors" in names, d.id
        metrics = {d.a["metric"]} | ({d.b["metric"]} if d.b else set())
        if any(m.startswith(("fid", "kid")) for m in metrics) and d.claim["paper"] == "004":
            assert "energy_scale" in names, d.id
            if d.scale != "paper":
                assert {"tells_data_from_gaussian", "classifier_accuracy"} <= names, d.id
        if any("probe" in m for m in metrics):
            assert {"energy_scale", "probe_below_ceiling"} <= names, d.id
    cost = [d for d in spec.designs if d.id == "p003_cost"]
    assert cost and all({"quiet_timing", "steps_per_update", "walkers_per_moved"} <= {g.name for g in d.gates}
                        for d in cost)


def test_claims_md_holds_each_claim_once_and_is_small(tmp_path: Path) -> None:
    out = C.build_claims(tmp_path / "results", tmp_path / "t", REPO_CLAIMS)
    md = out["claims.md"].read_text()
    spec = C.load_claims(REPO_CLAIMS)
    for c in spec.claims:
        assert md.count(f"`{c['id']}`") == 1, c["id"]
    assert len(md.encode()) < 20_000
    csv = pd.read_csv(out["claims.csv"])
    assert {"scale", "gates", "gates_failed", "p_adj_bh"} <= set(csv.columns)


def test_one_runaway_seed_fails_the_gate(tmp_path: Path) -> None:
    """Gates take the worst seed by default: one runaway seed of three is enough."""
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "m1", s, {"score": [20.0, 21.5, 22.2][s]})
        _run(res, "d", "m2", s, {"score": [10.0, 11.0, 12.7][s]})
        _run(res, "d", "m1", s, {"energy_scale": 5000.0 if s == 1 else 40.0}, family="diag")
    row = _verdicts(tmp_path, [_cmp("g", "m1", "m2", direction="greater", metric="score", gates=["no_runaway_a"])],
                    gate_sets=_gate_sets()).loc["g"]
    assert row["verdict"] == "regime not reached" and row["gates_failed"] == "energy_scale 5000 <= 1000"


def test_within_verdicts_at_the_band_edges(tmp_path: Path) -> None:
    """holds only with the whole interval inside the band, contradicted only with it all
    outside; an interval across an edge is inconclusive."""
    res = tmp_path / "results"
    cases = {"inside": [0.25, 0.26, 0.24, 0.25], "across": [0.27, 0.30, 0.26, 0.29], "outside": [0.40, 0.42, 0.41, 0.43]}
    claims = []
    for name, vals in cases.items():
        for s in range(4):
            _run(res, "d", name, s, {"mass_a": vals[s]}, family="exact")
        claims.append({"id": name, "paper": "t", "source": "s", "statement": "s", "kind": "within", "tolerance": 0.03,
                       "target": 0.25, "a": {"variant": name, "metric": "mass_a"},
                       "designs": [{"scale": "embedded", "config": EMB, "dataset": "d"}]})
    v = _verdicts(tmp_path, claims)
    assert v.loc["across", "ci_low"] < 0.03 < v.loc["across", "ci_high"]
    assert v["verdict"].to_dict() == {"inside": "holds", "across": "inconclusive", "outside": "contradicted"}


def test_an_abs_gate_takes_the_largest_magnitude(tmp_path: Path) -> None:
    """abs<= takes the worst seed's magnitude by default; mass_converged asks for the
    run-averaged slope (agg: mean), so seeds drifting both ways cancel."""
    res = tmp_path / "results"
    for s in range(3):
        _run(res, "d", "m1", s, {"score": [20.0, 21.5, 22.2][s]})
        _run(res, "d", "m2", s, {"score": [10.0, 11.0, 12.7][s]})
        _run(res, "d", "m1", s, {"change_mass_a": [-0.025, 0.002, -0.012][s],
                                 "slope_mass_a": [-3e-5, 3e-5, 1e-6][s]}, family="diag")
    worst = {"own": [{"name": "settled", "metric": "change_mass_a", "op": "abs<=", "threshold": 0.01}]}
    v = _verdicts(tmp_path, [_cmp("w", "m1", "m2", direction="greater", metric="score", gates=["own"]),
                             _cmp("m", "m1", "m2", direction="greater", metric="score", gates=["mass_converged"])],
                  gate_sets={**_gate_sets(), **worst})
    assert v.loc["w", "verdict"] == "regime not reached" and v.loc["w", "gates_failed"] == "settled 0.025 abs<= 0.01"
    assert v.loc["m", "verdict"] == "holds" and v.loc["m", "gates"] == "mass_converged 3.333e-07 abs<= 1e-05"
