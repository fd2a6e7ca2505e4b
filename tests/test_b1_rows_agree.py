"""App. B.1 of paper 003 is written in three configs: config/gmm.yaml (the experiment's
source), config/claims_cpu.yaml (5 seeds) and config/paper_cpu.yaml (20 seeds, and Fig. 6's
thresholds). Their shared rows must be the same training run: the resolved run specs
(method, every method parameter after defaults, teacher, training settings) agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ebm_bench.pipeline.config import run_spec

CONFIG = Path(__file__).resolve().parents[1] / "config"
SHARED = ("jarzynski", "pcd", "cd", "unweighted")


def _spec(name: str, variant: str, dataset: str = "gmm_b1") -> dict:
    cfg = yaml.safe_load((CONFIG / name).read_text())
    s = run_spec(cfg, dataset, variant, 0)
    return {"method": s["method"], "method_params": s["method_params"], "teacher": s["dataset"]["params"],
            "type": s["dataset"]["type"], "train": s["train"]}


@pytest.mark.parametrize("variant", SHARED)
@pytest.mark.parametrize("other", ["claims_cpu.yaml", "paper_cpu.yaml"])
def test_b1_rows_are_one_training_run(variant: str, other: str) -> None:
    assert _spec(other, variant) == _spec("gmm.yaml", variant)


def test_fig6_thresholds_change_only_the_threshold() -> None:
    """Fig. 6's rows are App. B.1's Jarzynski row at ESS_thresh = N / (1 + c)."""
    base = _spec("paper_cpu.yaml", "jarzynski")
    for c, name in ((0.1, "c01"), (0.2, "c02"), (0.4, "c04"), (0.8, "c08"), (1.0, "c1")):
        row = _spec("paper_cpu.yaml", f"jarzynski_{name}", "gmm_b1" if name == "c1" else "gmm_fig6")
        assert row["method_params"].pop("resample_threshold") == pytest.approx(1 / (1 + c), rel=1e-15)
        assert row == {**base, "method_params": {k: v for k, v in base["method_params"].items()
                                                 if k != "resample_threshold"}}
