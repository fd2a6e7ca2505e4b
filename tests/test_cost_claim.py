"""``ebm-bench bench cost_claim`` (ebm_bench/bench/cost_claim.py): the --quick benchmark writes run
records that the tables read as runs of config/paper_cpu.yaml and that a p003_cost-like
claim judges as a paired comparison with its cost gates passing. No timing is asserted
(timings never live in tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ebm_bench import claims as C
from ebm_bench.bench.suite import BENCHMARKS, run_benchmarks
from ebm_bench.bench import cost_claim
from ebm_bench.bench.cost_claim import DATASET, PROVENANCE, QUICK, QUICK_SIZES
from ebm_bench.reports.collect import collect

REPO_CLAIMS = Path(__file__).resolve().parents[1] / "config" / "claims.yaml"


def _claim(gates: dict) -> dict:
    """A one-design copy of p003_cost pointing at the benchmark's records."""
    return {"papers": [{"id": "003", "title": "paper 003", "citation": "Carbone et al. 2023"}],
            "scales": [{"id": "paper", "title": "paper"}],
            "min_seeds": 2,
            "gate_sets": {"cost_structure": gates},
            "claims": [{"id": "cost", "paper": "003", "source": "Sec. 4.3", "statement": "+6% per update",
                        "kind": "within", "relative": True, "tolerance": 0.06, "target": 0.06,
                        "a": {"variant": "jarzynski", "metric": "time_per_update_ms"},
                        "b": {"variant": "pcd", "metric": "time_per_update_ms"},
                        "designs": [{"scale": "paper", "config": PROVENANCE, "dataset": DATASET,
                                     "gates": ["cost_structure"]}]}]}


def test_quick_cost_claim_records_are_read_and_judged(tmp_path: Path, monkeypatch) -> None:
    assert "cost_claim" in BENCHMARKS
    monkeypatch.chdir(tmp_path)  # no results folder of the repository's configs is read
    # the test suite shares the machine (xdist workers, anything else running): both readings
    # are set to a quiet machine's here (no other load, the process served a full core per
    # thread); test_a_busy_machine_is_recorded_as_such reads a busy one
    monkeypatch.setattr(cost_claim, "other_load", lambda threads: 0.0)
    rule = cost_claim.timed_quietly
    monkeypatch.setattr(cost_claim, "timed_quietly",
                        lambda loads, cpu_s, wall_s, threads: rule(loads, wall_s * threads, wall_s, threads))
    res = tmp_path / "res"
    first = 1  # --first-seed: repeats added to earlier records take the next seeds
    run_benchmarks(quick=True, only=["cost_claim"], out=str(res), first_seed=first)
    n = QUICK["repeats"]
    seeds = list(range(first, first + n))
    assert QUICK_SIZES["n_walkers"] / QUICK_SIZES["n_moved"] <= 16

    tidy, runs, _ = collect(res)
    assert set(runs["dataset"]) == {DATASET} and set(runs["method"]) == {"jarzynski", "pcd"}
    assert len(runs) == 2 * n and set(runs["status"]) == {"ok"} and set(runs["config"]) == {PROVENANCE}
    cost = tidy[tidy["family"] == "cost"]
    assert set(cost["config"]) == {PROVENANCE} and set(cost["status"]) == {"ok"}
    wide = cost.pivot_table(index=["method", "seed"], columns="metric", values="value")
    assert sorted(wide.index) == [(m, s) for m in ("jarzynski", "pcd") for s in seeds]
    assert (wide["timed_quietly"] == 1.0).all() and (wide["time_per_update_ms"] > 0).all()
    assert (wide.loc["jarzynski", "walkers_per_moved"] == QUICK_SIZES["n_walkers"] / QUICK_SIZES["n_moved"]).all()
    assert (wide["sampler_steps_per_update"] == QUICK_SIZES["n_steps"]).all()
    assert len(set(cost["fingerprint"])) == 1 and next(iter(set(cost["fingerprint"])))

    # the repository's own cost_structure gates, on a one-design copy of p003_cost
    gates = yaml.safe_load(REPO_CLAIMS.read_text())["gate_sets"]["cost_structure"]
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(_claim(gates)))
    out = C.build_claims(res, tmp_path / "tables", path)
    row = pd.read_csv(out["claims.csv"], keep_default_na=False, na_values=[""]).set_index("id").loc["cost"]
    assert row["n"] == n and row["a_n"] == n and row["b_n"] == n
    assert row["paired"] == "yes" and row["seeds"] == " ".join(map(str, seeds))
    failed = row["gates_failed"] if isinstance(row["gates_failed"], str) else ""
    passed = {t.split(" ")[0] for t in str(row["gates"]).split("; ")} - {t.split(" ")[0] for t in failed.split("; ")}
    assert {"quiet_timing", "walkers_per_moved", "steps_per_update"} <= passed, row["gates"]
    assert "quiet_timing 1 >= 1" in row["gates"] and "walkers_per_moved 8 <= 16" in row["gates"]
    assert not failed
    assert row["verdict"] in ("holds", "contradicted", "inconclusive")  # judged, whatever the quick timings say


def test_repository_p003_cost_has_the_benchmark_design_first() -> None:
    spec = C.load_claims(REPO_CLAIMS)
    cost = [d for d in spec.designs if d.id == "p003_cost"]
    first = cost[0]
    assert (first.scale, first.config, first.dataset) == ("paper", PROVENANCE, DATASET)
    assert first.a["variant"] == "jarzynski" and first.b["variant"] == "pcd"
    assert {"quiet_timing", "steps_per_update", "walkers_per_moved"} <= {g.name for g in first.gates}


def test_the_timed_updates_carry_no_burn_in():
    """Burn-in is before training, not part of an update: both rows of config/paper.yaml
    have one (Jarzynski's, and PCD's 2,000 steps), and the benchmark must time neither.
    Mutation: PCD's burn-in left at the config's 2,000 -> fails."""
    from ebm_bench.bench.cost_claim import method_specs
    from ebm_bench.bench.gpu_check import load_config
    from ebm_bench.pipeline.config import run_spec

    specs, _ = method_specs(quick=False)
    assert {v: s["method_params"].get("burn_in_steps") for v, s in specs.items()} == {"jarzynski": 0, "pcd": 0}
    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "paper.yaml")
    assert run_spec(cfg, "cifar10", "pcd_minibatch", 0)["method_params"]["burn_in_steps"] > 0  # the config has one


def test_a_busy_machine_is_recorded_as_such(tmp_path: Path, monkeypatch) -> None:
    """timed_quietly is measured: a second job beside the timed thread (load average 1 above
    it) makes the records say 0, their readings are kept, and p003_cost's quiet gate fails."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cost_claim, "other_load", lambda threads: 1.0)
    res = tmp_path / "res"
    rows = cost_claim.run(res, quick=True, repeats=2, say=lambda *a: None)
    assert [r["timed_quietly"] for r in rows] == [0.0, 0.0] and all(r["load_other"] == 1.0 for r in rows)
    tidy, _, _ = collect(res)
    wide = tidy[tidy["family"] == "cost"].pivot_table(index=["method", "seed"], columns="metric", values="value")
    assert (wide["timed_quietly"] == 0.0).all() and (wide["load_other"] == 1.0).all()
    assert ((wide["cpu_share"] > 0) & (wide["cpu_share"] <= 1.5)).all()
    gates = yaml.safe_load(REPO_CLAIMS.read_text())["gate_sets"]["cost_structure"]
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(_claim(gates)))
    out = C.build_claims(res, tmp_path / "tables", path)
    row = pd.read_csv(out["claims.csv"], keep_default_na=False, na_values=[""]).set_index("id").loc["cost"]
    assert "quiet_timing" in str(row["gates_failed"]) and row["verdict"] == "regime not reached"


def test_quietness_reading() -> None:
    """The rule of the module docstring: at most half a core of other load on average and at
    least 90% of a core per timed thread."""
    q = cost_claim.timed_quietly
    assert q([0.0, 0.4], cpu_s=9.5, wall_s=10.0, threads=1)["timed_quietly"] == 1.0
    assert q([0.0, 1.2], cpu_s=9.5, wall_s=10.0, threads=1)["timed_quietly"] == 0.0  # mean 0.6 > 0.5
    assert q([0.0], cpu_s=8.0, wall_s=10.0, threads=1)["timed_quietly"] == 0.0  # waited for a core
    assert q([0.0], cpu_s=19.0, wall_s=10.0, threads=2)["cpu_share"] == 0.95
    assert q([], cpu_s=1.0, wall_s=1.0, threads=1)["timed_quietly"] == 0.0  # nothing read: not quiet
