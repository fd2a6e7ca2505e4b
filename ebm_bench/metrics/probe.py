"""Linear-probe accuracy of learned features (paper 004, Table 3) with one fixed protocol.

The protocol is deliberately not configurable per call: every method's features go through
the same sklearn Pipeline (StandardScaler + L2 LogisticRegression, lbfgs, C = 1.0,
max_iter = 1000), so table rows are comparable; the one switch, ``standardise``, gives
the unstandardised probe (paper 004 states no protocol; its Table 3 numbers look like
one without standardisation), recorded under its own metric names. sklearn is imported inside the function
(~2 s).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ebm_bench.core.progress import Task

PROBE_C = 1.0
PROBE_MAX_ITER = 1000
PROBE_TOL = 1e-4


def _as_2d(x: Any) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(a.shape[0], -1)  # e.g. conv feature maps -> flat vectors


def _as_labels(y: Any) -> np.ndarray:
    if torch.is_tensor(y):
        y = y.detach().cpu().numpy()
    return np.asarray(y).astype(np.int64).ravel()


def probe_subset(n: int, max_train: int | None, seed: int = 0) -> np.ndarray:
    """The training rows :func:`linear_probe` fits on: all ``n`` (``max_train`` None or
    >= n), else ``max_train`` drawn without replacement by ``np.random.default_rng(seed)``,
    sorted. Public so that a caller can compute features of these rows only (the probe
    family: features of 50,000 training images for a fit on 5,000 would cost ten times
    the network passes) and get the same fit."""
    if max_train is None or n <= int(max_train):
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=int(max_train), replace=False))


def linear_probe(
    f_train: Any,
    y_train: Any,
    f_test: Any,
    y_test: Any,
    seed: int = 0,
    max_train: int | None = None,
    standardise: bool = True,
) -> dict[str, Any]:
    """Test accuracy of a linear classifier fitted on frozen features.

    Fixed protocol: StandardScaler (``standardise``; False: the raw features), then
    multinomial LogisticRegression (L2, C = 1.0, lbfgs, max_iter = 1000, tol = 1e-4). With ``max_train`` the training set is
    subsampled without replacement by ``np.random.default_rng(seed)`` (sorted indices,
    deterministic). Features with NaN/inf (a diverged model) give accuracy NaN and status
    'nonfinite_features' instead of an exception, so the workflow goes on.

    Returns {"accuracy", "status", "protocol": {pipeline, solver, C, penalty, max_iter, tol,
    n_iter, converged, sklearn_version, n_train, n_test, feature_dim, num_classes, seed,
    max_train}}.
    """
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, xte = _as_2d(f_train), _as_2d(f_test)
    ytr, yte = _as_labels(y_train), _as_labels(y_test)
    if xtr.shape[0] != ytr.shape[0] or xte.shape[0] != yte.shape[0]:
        raise ValueError("features and labels differ in length")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train/test feature dims differ: {xtr.shape[1]} vs {xte.shape[1]}")
    if max_train is not None and xtr.shape[0] > max_train:
        idx = probe_subset(xtr.shape[0], max_train, seed)
        xtr, ytr = xtr[idx], ytr[idx]

    # sklearn >= 1.8 deprecates `penalty`; l1_ratio = 0 is the same L2 penalty
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8):
        reg = {"l1_ratio": 0.0}
    else:
        reg = {"penalty": "l2"}
    proto: dict[str, Any] = {
        "pipeline": "StandardScaler + LogisticRegression" if standardise else "LogisticRegression",
        "standardise": bool(standardise),
        "solver": "lbfgs",
        "C": PROBE_C,
        "penalty": "l2",
        "max_iter": PROBE_MAX_ITER,
        "tol": PROBE_TOL,
        "sklearn_version": sklearn.__version__,
        "n_train": int(xtr.shape[0]),
        "n_test": int(xte.shape[0]),
        "feature_dim": int(xtr.shape[1]),
        "num_classes": int(np.unique(ytr).size),
        "seed": int(seed),
        "max_train": None if max_train is None else int(max_train),
    }
    if not (np.isfinite(xtr).all() and np.isfinite(xte).all()):
        return {"accuracy": float("nan"), "status": "nonfinite_features", "protocol": proto}

    clf = make_pipeline(
        *([StandardScaler()] if standardise else []),
        LogisticRegression(C=PROBE_C, solver="lbfgs", max_iter=PROBE_MAX_ITER, tol=PROBE_TOL, random_state=seed, **reg),
    )
    # lbfgs on 60,000 rows can run past a minute and cannot tick: a heartbeat thread
    # prints the line ("probe fit 0/1 ...") while it runs
    with warnings.catch_warnings(), Task("probe fit", 1, heartbeat=True) as task:
        # convergence is recorded in the protocol instead of printed
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(xtr, ytr)
        task.tick(1)
    n_iter = int(np.max(clf[-1].n_iter_))
    proto["n_iter"] = n_iter
    proto["converged"] = bool(n_iter < PROBE_MAX_ITER)
    acc = float(np.mean(clf.predict(xte) == yte))
    return {"accuracy": acc, "status": "ok", "protocol": proto}
