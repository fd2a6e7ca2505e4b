"""The diagnostics family (ebm_bench/evaluation/diagnostics.py) on fabricated train_log.csv
files; every expected number is worked out by hand here."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ebm_bench.evaluation.diagnostics import diagnostics


def _log(path: Path, cols: dict[str, list[float]]) -> None:
    names = list(cols)
    lines = [",".join(names)] + [",".join(repr(float(cols[c][i])) for c in names) for i in range(len(cols[names[0]]))]
    path.write_text("\n".join(lines) + "\n")


def _run(tmp_path: Path, cols, params=None, ok=True):
    _log(tmp_path / "train_log.csv", cols)
    ctx = SimpleNamespace(run_dir=tmp_path, spec={"method_params": params or {}}, ok=ok)
    return diagnostics(ctx)


STEPS = [10.0 * k for k in range(1, 21)]  # 20 rows, steps 10..200: the window is steps 150..200 (6 rows)


def test_drift_is_the_fitted_change_over_the_last_quarter(tmp_path: Path) -> None:
    # loss = 3 + 0.01 step exactly: over 150..200 the line rises 0.5, mean 4.75
    loss = [3.0 + 0.01 * s for s in STEPS]
    # flat with alternating noise in the window: slope 0 of a symmetric pattern -> 0
    flat = [5.0 + (0.1 if i % 2 else -0.1) for i in range(20)]
    flat[-6:] = [5.1, 4.9, 5.0, 5.0, 4.9, 5.1]  # a palindrome about the window's middle: slope 0
    neg = [-v for v in loss]  # falls 0.5 about a mean of -4.75: the same relative change, negative
    m, proto = _run(tmp_path, {"step": STEPS, "wall_time_s": STEPS, "loss": loss, "flat": flat, "neg": neg})
    assert m["change_loss"] == pytest.approx(0.5) and m["change_neg"] == pytest.approx(-0.5)
    assert m["slope_loss"] == pytest.approx(0.01) and m["slope_neg"] == pytest.approx(-0.01)  # per update
    assert m["drift_loss"] == pytest.approx(0.5 / 4.75)
    assert m["drift_neg"] == pytest.approx(-0.5 / 4.75)
    assert m["drift_flat"] == pytest.approx(0.0, abs=1e-12)
    assert "drift_step" not in m and "drift_wall_time_s" not in m
    assert set(proto["directions"].values()) == {""}


def test_drift_of_a_zero_mean_scalar_uses_the_floor(tmp_path: Path) -> None:
    x = [0.0] * 14 + [-0.5, -0.3, -0.1, 0.1, 0.3, 0.5]  # mean 0 in the window, slope 0.02 per step
    m, _ = _run(tmp_path, {"step": STEPS, "x": x})
    assert m["drift_x"] == pytest.approx(0.02 * 50 / 1e-12)
    assert m["change_x"] == pytest.approx(1.0)


def test_drift_needs_four_rows(tmp_path: Path) -> None:
    steps = [100.0, 200.0, 300.0, 400.0, 500.0]  # window: steps >= 375 -> 2 rows
    m, _ = _run(tmp_path, {"step": steps, "loss": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert m["drift_loss"] is None and m["change_loss"] is None


def test_energy_scale_is_the_largest_energy_of_the_last_quarter(tmp_path: Path) -> None:
    ed = [-1.0] * 20
    em = [0.0] * 20
    ed[2] = -900.0        # early: outside the window
    em[16] = -37.0        # in the window (step 170)
    ed[19] = 12.0
    m, _ = _run(tmp_path, {"step": STEPS, "energy_data": ed, "energy_model": em})
    assert m["energy_scale"] == pytest.approx(37.0)


def _jarzynski(ess, n_res, resampled, anc):
    return {"step": STEPS, "ess": ess, "n_resamples": n_res, "resampled": resampled, "n_ancestors": anc}


def test_jarzynski_ess_before_resampling_from_step(tmp_path: Path) -> None:
    ess = list(np.linspace(1.0, 0.05, 20))          # falls steadily
    ess[9] = 0.3                                     # step 100
    ess[10] = 0.2                                    # step 110: resampling could act (r = 100) ...
    n_res = [0] * 10 + [1] * 5 + [2] * 5
    resampled = [0] * 20
    resampled[10] = 1                                # ... and did; its ESS is logged before it
    anc = [256] * 10 + [40] * 10
    m, _ = _run(tmp_path, _jarzynski(ess, n_res, resampled, anc),
                {"resample_from_step": 109, "n_walkers": 256})
    # rows with step <= 110: min over ess[0..10] = 0.2
    assert m["ess_min_before_resampling"] == pytest.approx(0.2)
    assert m["ancestors_frac_final"] == pytest.approx(40 / 256)
    assert m["n_resamples_final"] == 2.0
    m, _ = _run(tmp_path, _jarzynski(ess, n_res, resampled, anc),
                {"resample_from_step": 100, "n_walkers": 256})
    assert m["ess_min_before_resampling"] == pytest.approx(0.3)  # rows with step <= 101


def test_jarzynski_ess_before_the_first_resampling_when_allowed_from_step_0(tmp_path: Path) -> None:
    ess = [0.9, 0.7, 0.6, 0.45] + [0.1] * 16
    n_res = [0, 0, 0, 1] + [3] * 16
    resampled = [0, 0, 0, 1] + [0] * 16  # the first resampling at step 40 (ESS 0.45 before it)
    m, _ = _run(tmp_path, _jarzynski(ess, n_res, resampled, [10] * 20), {"resample_from_step": 0, "n_walkers": 100})
    assert m["ess_min_before_resampling"] == pytest.approx(0.45)
    # never resampled: every row
    m, _ = _run(tmp_path, _jarzynski(ess, [0] * 20, [0] * 20, [10] * 20), {"n_walkers": 100})
    assert m["ess_min_before_resampling"] == pytest.approx(0.1)
    # the first resampling not logged at its own update: only the rows before it count
    m, _ = _run(tmp_path, _jarzynski(ess, n_res, [0] * 20, [10] * 20), {"n_walkers": 100})
    assert m["ess_min_before_resampling"] == pytest.approx(0.6)


def test_diverged_run_gives_nulls_and_no_log_gives_nothing(tmp_path: Path) -> None:
    m, _ = _run(tmp_path, {"step": STEPS, "energy_data": [1.0] * 20, "loss": [1.0] * 20}, ok=False)
    assert m == {"energy_scale": None, "drift_energy_data": None, "drift_loss": None,
                 "change_energy_data": None, "change_loss": None, "slope_energy_data": None, "slope_loss": None,
                 "tail_mean_energy_data": None, "tail_mean_loss": None,
                 "min_energy_data": None, "min_loss": None, "max_energy_data": None, "max_loss": None}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert diagnostics(SimpleNamespace(run_dir=empty, spec={}, ok=True)) is None
    assert _run(empty, {"step": STEPS, "wall_time_s": STEPS}) is None  # the data row logs nothing


def test_tail_mean_is_the_mean_over_the_last_1000_updates(tmp_path: Path) -> None:
    steps = [100.0 * k for k in range(1, 31)]  # 100..3000: the last 1,000 updates are steps 2100..3000
    mass = [0.5 if s <= 2000 else (0.2 if int(s) % 200 else 0.3) for s in steps]
    m, _ = _run(tmp_path, {"step": steps, "mass_a": mass})
    tail = [0.2 if int(s) % 200 else 0.3 for s in steps if s > 2000]  # 10 rows: 5 x 0.2, 5 x 0.3
    assert m["tail_mean_mass_a"] == pytest.approx(sum(tail) / len(tail)) == pytest.approx(0.25)
    short, _ = _run(tmp_path, {"step": STEPS, "x": [float(i) for i in range(20)]})  # 200 updates: all rows
    assert short["tail_mean_x"] == pytest.approx(9.5)


def test_min_and_max_cover_the_whole_run(tmp_path: Path) -> None:
    """min_<x> / max_<x> (paper 003 Fig. 8: PCD's mass swings to 0 and back towards 1):
    the extremes of the whole log, early rows included, not of the last quarter only."""
    steps = [100.0 * k for k in range(1, 21)]
    mass = [0.5, 0.02, 0.3, 0.97] + [0.4] * 16  # both extremes early, then settled
    m, _ = _run(tmp_path, {"step": steps, "mass_a": mass})
    assert m["min_mass_a"] == pytest.approx(0.02) and m["max_mass_a"] == pytest.approx(0.97)
    bad, _ = _run(tmp_path, {"step": steps, "mass_a": mass[:-1] + [float("nan")]})
    assert bad["min_mass_a"] is None and bad["max_mass_a"] is None
