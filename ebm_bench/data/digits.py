"""Real 8x8 handwritten digits shipped with scikit-learn (no download, CPU size).

``digits`` is the full 10-class set; ``digits_236`` is the biased-MNIST design of paper 003
(Carbone et al. 2023, Sec. 4.2: digits 2, 3, 6 with mode weights 4/7, 2/7, 1/7) scaled
down to the 1,797 scikit-learn images so that the mode-weight experiment runs on a laptop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.data.base import Dataset, DatasetSpec, register_dataset


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 8, 8) float32 in [-1, 1] and labels int64 (raw values are 0..16)."""
    from sklearn.datasets import load_digits  # sklearn import is slow: keep it local

    d = load_digits()
    x = (d.images.astype(np.float32) / 8.0 - 1.0)[:, None, :, :]
    return x, d.target.astype(np.int64)


def _dataset(name: str, x: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray,
             num_classes: int, class_names: list[str], truth: dict[str, Any]) -> Dataset:
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x[tr])),
        x_test=torch.from_numpy(np.ascontiguousarray(x[te])),
        y_train=torch.from_numpy(y[tr]),
        y_test=torch.from_numpy(y[te]),
        is_image=True,
        num_classes=num_classes,
        class_names=class_names,
        truth=truth,
    )


@register_dataset("digits")
class Digits(DatasetSpec):
    """scikit-learn ``load_digits``: 1,797 images 8x8, 10 classes, stratified split.

    The split depends only on ``split_seed`` (never on the run seed), so every seed of a
    benchmark trains and evaluates on the same images.
    """

    defaults = {"test_fraction": 0.2, "split_seed": 0}
    checks = {"test_fraction": V.fraction(), "split_seed": V.count(0)}
    default_net = "convnet"
    default_net_params = {"nf": 16}
    embedded = True
    images = True

    @classmethod
    def load(cls, params: dict[str, Any], data_root: Path, seed: int = 0) -> Dataset:
        from sklearn.model_selection import train_test_split

        p = {**cls.defaults, **params}
        x, y = _load_sklearn_digits()
        tr, te = train_test_split(
            np.arange(len(y)), test_size=float(p["test_fraction"]), stratify=y, random_state=int(p["split_seed"])
        )
        tr, te = np.sort(tr), np.sort(te)
        return _dataset(cls.name, x, y, tr, te, 10, [str(i) for i in range(10)], {})


@register_dataset("digits_236")
class Digits236(DatasetSpec):
    """Biased digits 2, 3, 6 at weights 4/7, 2/7, 1/7 (paper 003, Sec. 4.2, at CPU size).

    Classes ``digits`` kept with relative frequencies ``weights`` (default 2, 3, 6 at
    4/7, 2/7, 1/7).

    The subset is as large as the scikit-learn images allow. With integer weights both
    splits hold exactly ``weights``-proportional counts (whole "units" of
    ``sum(weights)`` images are split between train and test); with non-integer
    weights the counts are proportional up to rounding. Labels are remapped to 0..K-1 in
    the order of ``digits``; ``truth["mode_weights"]`` holds the normalised weights.
    """

    defaults = {"digits": [2, 3, 6], "weights": [4, 2, 1], "test_fraction": 0.2, "split_seed": 0}
    checks = {"digits": V.list_of(V.integer(0, 9), min_len=1), "weights": V.list_of(V.positive(), min_len=1),
              "test_fraction": V.fraction(), "split_seed": V.count(0)}
    default_net = "convnet"
    default_net_params = {"nf": 16}
    embedded = True
    images = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """What ``checks`` cannot say: distinct digits, one weight per digit."""
        p = {**cls.defaults, **params}
        if len(set(p["digits"])) != len(p["digits"]):
            raise ConfigError(f"dataset param 'digits' must be distinct digits, got {p['digits']}")
        if len(p["weights"]) != len(p["digits"]):
            raise ConfigError(
                f"dataset param 'weights' must have one entry per digit ({len(p['digits'])}), got {p['weights']}"
            )

    @classmethod
    def counts(cls, available: list[int], weights: list[float], test_fraction: float) -> tuple[list[int], list[int]]:
        """Per-class (train, test) counts as large as ``available`` allows."""
        if all(float(w).is_integer() for w in weights):
            # exact ratios: split whole units of c_k images per class
            c = [int(w) for w in weights]
            g = int(np.gcd.reduce(c))
            c = [v // g for v in c]
            units = min(a // v for a, v in zip(available, c))
            u_test = int(round(units * test_fraction))
            u_test = min(max(u_test, 1), units - 1) if units >= 2 else u_test
            return [(units - u_test) * v for v in c], [u_test * v for v in c]
        w = np.asarray(weights) / sum(weights)
        total = min(a / wk for a, wk in zip(available, w))
        n = [min(a, int(np.floor(total * wk + 1e-9))) for a, wk in zip(available, w)]
        n_test = [int(round(k * test_fraction)) for k in n]
        return [k - t for k, t in zip(n, n_test)], n_test

    @classmethod
    def load(cls, params: dict[str, Any], data_root: Path, seed: int = 0) -> Dataset:
        p = {**cls.defaults, **params}
        digits, weights = [int(d) for d in p["digits"]], [float(w) for w in p["weights"]]
        x, y = _load_sklearn_digits()
        rng = np.random.default_rng(int(p["split_seed"]))
        pools = [rng.permutation(np.flatnonzero(y == d)) for d in digits]
        n_train, n_test = cls.counts([len(q) for q in pools], weights, float(p["test_fraction"]))
        tr = np.concatenate([q[:a] for q, a in zip(pools, n_train)])
        te = np.concatenate([q[a:a + b] for q, a, b in zip(pools, n_train, n_test)])
        tr, te = np.sort(tr), np.sort(te)
        remap = np.full(10, -1, dtype=np.int64)
        remap[digits] = np.arange(len(digits))
        mode_weights = [w / sum(weights) for w in weights]
        return _dataset(
            cls.name, x, remap[y], tr, te, len(digits), [str(d) for d in digits],
            {"mode_weights": mode_weights},
        )
