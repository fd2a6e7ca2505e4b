"""Metrics that fail their own diagnostic are flagged, and every flag text begins with
"unreliable: " (ebm_bench.evaluation.unreliable): FID/KID in a narrow logits layer (fid),
the model's mode weights on too few effective AIS chains (model_modes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebm_bench.evaluation import UNRELIABLE, unreliable


def _spec(name: str, **ev) -> dict:
    return {"dataset": {"name": name, "type": name, "params": {}}, "data_root": "data", "seed": 0,
            "variant": "data", "method": "data", "device": "cpu",
            "evaluate": {"real_split": "train", "n_real": None, "min_real_per_dim": 2.0,
                         "min_classifier_accuracy": 0.9, "use_inception": False, **ev}}


def test_unreliable_prefix() -> None:
    assert unreliable("x") == "unreliable: x" and unreliable("unreliable: x") == "unreliable: x"


def test_fid_kid_on_three_logits_are_flagged(untrained_classifier, tmp_path: Path) -> None:
    from ebm_bench.data import load_dataset, to_uint8
    from ebm_bench.evaluation import EvalContext
    from ebm_bench.evaluation.fid import fid
    from ebm_bench.metrics.extractors import DomainExtractor
    from ebm_bench.pipeline.stages import reference_stage

    flags = {}
    for name in ("digits", "digits_236"):
        ref = tmp_path / f"{name}.npz"
        reference_stage(_spec(name), untrained_classifier[name], ref)
        d = load_dataset(name, {}, "data")
        ctx = EvalContext(spec=_spec(name), label=name, run_dir=tmp_path, data=d, method=None,
                          samples=to_uint8(d.x_test).numpy(), status="ok", domain=DomainExtractor(untrained_classifier[name]),
                          reference=ref)
        _, protocol = fid(ctx)
        flags[name] = protocol["flags"]
        assert all(v.startswith(UNRELIABLE) for v in protocol["flags"].values()), protocol["flags"]
    logits = "unreliable: FID/KID on 3 logits: a layer that cannot carry them"
    assert flags["digits_236"]["fid_domain"].startswith(logits)
    assert flags["digits_236"]["kid_domain"].startswith(logits)
    assert "logits" not in flags["digits_236"].get("is_domain", "")  # IS reads logits by definition
    # digits: the penultimate layer; only the (untrained) classifier's accuracy flag
    assert "logits" not in flags["digits"]["fid_domain"]
    assert flags["digits"]["fid_domain"].startswith("unreliable: domain classifier test accuracy")


def test_model_modes_flagged_below_30_effective_chains(untrained_classifier, tmp_path: Path) -> None:
    from ebm_bench.data import load_dataset
    from ebm_bench.evaluation import EvalContext
    from ebm_bench.evaluation.model_modes import MIN_EFFECTIVE_CHAINS, ess_flags, model_modes
    from ebm_bench.methods.base import DataInfo
    from ebm_bench.metrics.extractors import DomainExtractor
    from ebm_bench.core.registry import METHODS

    assert ess_flags(float(MIN_EFFECTIVE_CHAINS), ["a"]) == {}
    low = ess_flags(MIN_EFFECTIVE_CHAINS - 0.1, ["a", "b"])
    assert set(low) == {"a", "b"} and low["a"].startswith("unreliable: AIS effective chains 29.9 < 30")

    d = load_dataset("digits_236", {}, "data")
    cls = METHODS.get("pcd")
    info = DataInfo.of(d)
    method = cls(cls.tiny_params(info), info, "cpu", 0)
    spec = _spec("digits_236", model_modes={"n_chains": 16, "n_steps": 3})
    ctx = EvalContext(spec=spec, label="t", run_dir=tmp_path, data=d, method=method, samples=None,
                      status="ok", domain=DomainExtractor(untrained_classifier["digits_236"]))
    metrics, protocol = model_modes(ctx)
    assert metrics["model_mode_ess_chains"] == pytest.approx(metrics["model_mode_ess"] * 16)
    assert metrics["model_mode_ess_chains"] <= 16 < MIN_EFFECTIVE_CHAINS
    flagged = set(protocol["flags"])
    assert {"model_mode_rel_error_mean", "model_mode_rel_error_max"} <= flagged
    assert {f"model_mode_weight_{c}" for c in d.class_names} <= flagged
    assert not flagged & {"chains_mode_rel_error_mean", "model_mode_ess", "model_mode_ess_chains", "model_mode_accept"}
