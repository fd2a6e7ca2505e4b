"""``ebm-bench bench first_epochs`` (ebm_bench/bench/first_epochs.py) on a tiny MNIST in
torchvision's raw format: paper 003's MNIST 2/3/6 Jarzynski row of config/paper.yaml at
--quick sizes trains through the one loop; the records are what the method reported, the
row's own counts are kept for the projection, and bad input is refused before compute.
No timing is asserted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ebm_bench.bench import first_epochs as fe
from ebm_bench.core.errors import ConfigError
from ebm_bench.data.idx import write_raw


def _mnist(root: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (120, 28, 28), dtype=np.uint8), "y_train": np.arange(120) % 10,
              "x_test": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), "y_test": np.arange(30) % 10}
    np.savez(root / "mnist.npz", **{k: v.astype(np.uint8) for k, v in arrays.items()})
    write_raw(root / "mnist.npz", "mnist", root / "data")
    return root / "data"


def test_quick_first_epochs_records_the_weights_the_method_reported(tmp_path: Path) -> None:
    out = tmp_path / "out"
    said: list[str] = []
    summary = fe.run(out, _mnist(tmp_path), quick=True, say=said.append)
    n_train = sum(fe.QUICK["counts"])
    per_epoch = -(-n_train // fe.QUICK["batch_size"])  # ceil: 14 images in batches of 4 -> 4 updates
    assert summary["updates_per_epoch"] == per_epoch and summary["updates"] == fe.EPOCHS * per_epoch
    # the row's own counts (config/paper.yaml mnist_236 / jarzynski_multinomial), for the projection
    assert summary["row_updates"] == 46200 and summary["row_burn_in_steps"] == 20000
    assert summary["burn_in_steps"] == fe.QUICK["burn_in"] and summary["status"] == "ok"

    with open(out / "first_epochs.csv") as f:
        rows = list(csv.DictReader(f))
    with open(out / "run" / "train_log.csv") as f:
        log = list(csv.DictReader(f))
    assert [int(r["update"]) for r in rows] == list(range(1, summary["updates"] + 1))
    assert [int(r["epoch"]) for r in rows] == [1 + i // per_epoch for i in range(summary["updates"])]
    # every update's weights are the loop's own log row of that update (the method's scalars)
    for k in fe.WEIGHT_KEYS:
        assert [float(r[k]) for r in rows] == [float(r[k]) for r in log], k
    # the row resamples only after epoch 240 (c_k = 0 before, Fig. 4): none here, every
    # walker its own ancestor, and the unresampled weights' ESS below 1 after some updates
    assert summary["n_resamples"] == 0 and summary["n_ancestors_final"] == fe.QUICK["n_walkers"]
    assert 0 < summary["ess_min"] < 1 and summary["ess_min"] == min(float(r["ess"]) for r in rows)
    assert json.loads((out / "first_epochs.json").read_text())["epochs"]["2"]["updates"] == per_epoch
    # progress shows the weights as training goes: the last update's line carries its ESS
    last = rows[-1]
    assert f"  update {summary['updates']}/{summary['updates']}: ESS {float(last['ess']):.3f}, resamplings 0, " \
           f"ancestors {fe.QUICK['n_walkers']}" in said


def test_first_epochs_refuses_bad_input_before_compute(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--data-root"):
        fe.run(tmp_path / "out", tmp_path / "missing", quick=True, say=lambda *a: None)
    with pytest.raises(ConfigError, match="--datasets 'nope'"):
        fe.run(tmp_path / "out", tmp_path, dataset="nope", quick=True, say=lambda *a: None)
    with pytest.raises(ConfigError, match="--warmup"):
        fe.run(tmp_path / "out", tmp_path, burn_in=-1, quick=True, say=lambda *a: None)
    assert not (tmp_path / "out").exists()
