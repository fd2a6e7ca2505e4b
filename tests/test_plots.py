"""ebm_bench.reports.plots writes non-empty PNGs for every kind of sample and log it meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ebm_bench.reports import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("shape", [(64, 1, 8, 8), (10, 3, 16, 16), (7, 8, 8)])
def test_image_grid(tmp_path: Path, shape) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = plots.sample_grid(x, tmp_path / "g.png", is_image=True)
    assert _is_png(Path(out))


def test_float_images_are_rescaled(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, size=(16, 1, 8, 8)).astype(np.float32)
    assert _is_png(plots.sample_grid(x, tmp_path / "f.png", is_image=True))


def test_scatter_2d_with_real(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    out = plots.sample_grid(rng.normal(size=(500, 2)), tmp_path / "s.png", is_image=False,
                            real=rng.normal(size=(800, 2)))
    assert _is_png(out)


def test_scatter_high_dim_and_1d(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    assert _is_png(plots.sample_grid(rng.normal(size=(300, 10)), tmp_path / "d10.png", is_image=False,
                                     real=rng.normal(size=(300, 10))))
    assert _is_png(plots.sample_grid(rng.normal(size=(300, 1)), tmp_path / "d1.png", is_image=False))


def test_no_samples_diverged(tmp_path: Path) -> None:
    assert _is_png(plots.sample_grid(np.zeros((0, 1, 8, 8), np.uint8), tmp_path / "e.png", is_image=True))
    assert _is_png(plots.sample_grid(np.zeros((0, 2), np.float32), tmp_path / "e2.png", is_image=False,
                                     real=np.ones((5, 2))))
    nan = np.full((10, 2), np.nan)
    assert _is_png(plots.sample_grid(nan, tmp_path / "e3.png", is_image=False))


def _log(path: Path, rows: int = 30) -> Path:
    lines = ["step,wall_time_s,loss,energy_pos,energy_neg,ess"]
    for i in range(1, rows + 1):
        ess = "" if i % 7 == 0 else f"{0.5 + 0.01 * i}"
        lines.append(f"{10 * i},{0.1 * i},{1.0 / i},{-i},{i * 0.5},{ess}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_curves(tmp_path: Path) -> None:
    out = plots.training_curves(_log(tmp_path / "train_log.csv"), tmp_path / "curves.png")
    assert _is_png(out)


def test_training_curves_degenerate_logs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("step,loss\n")
    assert _is_png(plots.training_curves(empty, tmp_path / "c1.png"))
    one = tmp_path / "one.csv"
    one.write_text("step,loss,status\n10,nan,diverged\n")
    assert _is_png(plots.training_curves(one, tmp_path / "c2.png"))


def test_plot_cli(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "rings" / "pcd" / "seed0"
    run.mkdir(parents=True)
    log = _log(run / "train_log.csv")
    np.savez(run / "samples.npz", samples=np.random.default_rng(0).normal(size=(100, 2)))
    from ebm_bench.cli import main

    assert main(["plot", "curves", "--logs", str(log), "--out", str(run / "train_curves.png")]) == 0
    assert main(["plot", "grid", str(run / "samples.npz"), str(run / "samples.png")]) == 0
    assert main(["plot", "curves", "--logs", str(log)]) == 2  # one --out per log, said in one line
    assert _is_png(run / "train_curves.png") and _is_png(run / "samples.png")


def test_plots_do_not_import_torch() -> None:
    import subprocess
    import sys

    # the CLI and what its tables / claims / plot subcommands import
    code = ("import ebm_bench.cli, ebm_bench.reports.plots, ebm_bench.reports.tables, ebm_bench.claims, sys; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
