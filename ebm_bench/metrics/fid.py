"""FID (Heusel et al. 2017) and Inception Score (Salimans et al. 2016) from features.

Every number comes from torch-fidelity's own functions (``fid_features_to_statistics``,
``fid_statistics_to_metric``, ``isc_features_to_metric`` in torch-fidelity 0.4.0); FID is
cross-checked with pytorch-fid's ``calculate_frechet_distance`` on the same mean and
covariance (torch-fidelity takes the trace of sqrt(S1 S2) from eigenvalues, pytorch-fid from
``scipy.linalg.sqrtm``), so a disagreement between the two backends shows up in the
metrics file instead of going unnoticed.

Both libraries are imported inside the functions: ``import torch_fidelity`` costs ~6 s.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import sys
import warnings
from typing import Any

import numpy as np
import torch

from ebm_bench.core.progress import Task


def _features_2d(x: Any, what: str) -> np.ndarray:
    """Features as a float64 (N, d) array; float64 so both backends see the same statistics."""
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{what} features must be 2-D (N, d), got shape {a.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"{what} features need at least 2 rows for a covariance, got {a.shape[0]}")
    return a


def fid_statistics(features: Any) -> dict[str, np.ndarray]:
    """Mean and covariance of features via torch-fidelity's ``fid_features_to_statistics``.

    Returns {"mu": (d,), "sigma": (d, d)} in float64 (np.cov with rowvar=False, ddof 1).
    Cache this for the real data; pass it to :func:`fid_from_statistics`.
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(torch.from_numpy(_features_2d(features, "input")))


def fid_from_statistics(stats_real: dict, stats_fake: dict) -> dict[str, float]:
    """FID between two {"mu", "sigma"} statistics (Heusel et al. 2017, Eq. in Sec. 3):
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}).

    Returns {"fid": torch-fidelity's value, "fid_pytorch_fid": pytorch-fid's value on the same
    statistics (NaN if pytorch-fid refuses, e.g. a large imaginary part), "fid_rel_diff":
    |difference| / max(|fid|, 1e-12), "fid_abs_diff"}.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
    from pytorch_fid.fid_score import calculate_frechet_distance

    # two matrix square roots of 2048 x 2048 (Inception) can take a minute on a CPU and
    # cannot tick: a heartbeat thread prints the line while they run
    with Task("FID backend", 2, heartbeat=True) as task:
        fid = float(fid_statistics_to_metric(stats_real, stats_fake, verbose=False)[KEY_METRIC_FID])
        task.tick(1, "pytorch-fid")
        try:
            # pytorch-fid prints its singular-product warning to stdout; keep stdout clean
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                # pytorch-fid 0.3.0 passes scipy's deprecated `disp` argument; not our concern
                warnings.filterwarnings("ignore", message=".*`disp` argument", category=DeprecationWarning)
                fid_pf = float(
                    calculate_frechet_distance(
                        stats_real["mu"], stats_real["sigma"], stats_fake["mu"], stats_fake["sigma"]
                    )
                )
        except ValueError:
            fid_pf = math.nan
    abs_diff = abs(fid - fid_pf)
    return {
        "fid": fid,
        "fid_pytorch_fid": fid_pf,
        "fid_abs_diff": abs_diff,
        "fid_rel_diff": abs_diff / max(abs(fid), 1e-12),
    }


def fid_from_features(real: Any, fake: Any) -> dict[str, Any]:
    """FID between two feature sets (rows are samples), Heusel et al. 2017.

    Statistics and metric are torch-fidelity's; the cross-check is pytorch-fid's
    ``calculate_frechet_distance`` on the same mean/covariance. Returns {"fid",
    "fid_pytorch_fid", "fid_abs_diff", "fid_rel_diff", "n_real", "n_fake", "feature_dim"}.
    With fewer samples than feature dimensions the covariances are singular and FID is
    biased upwards (both backends then still agree only approximately).
    """
    r = _features_2d(real, "real")
    f = _features_2d(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dims differ: real {r.shape[1]} vs fake {f.shape[1]}")
    out: dict[str, Any] = fid_from_statistics(fid_statistics(r), fid_statistics(f))
    out.update(n_real=int(r.shape[0]), n_fake=int(f.shape[0]), feature_dim=int(r.shape[1]))
    return out


def inception_score_from_logits(
    logits: Any, splits: int = 10, seed: int = 2020, shuffle: bool = True
) -> dict[str, Any]:
    """Inception Score (Salimans et al. 2016) via torch-fidelity's ``isc_features_to_metric``.

    ``logits`` are pre-softmax class scores (N, K): torch-fidelity applies softmax itself
    (for Inception it uses the 'logits_unbiased' layer, i.e. the fc layer without bias).
    The samples are permuted with ``np.random.RandomState(seed)`` when ``shuffle`` and cut
    into ``splits`` chunks; IS = exp(mean KL(p(y|x) || p(y))) per chunk.
    Returns {"is_mean", "is_std" (over splits), "splits", "n", "num_classes", "seed"}.
    """
    from torch_fidelity.metric_isc import (
        KEY_METRIC_ISC_MEAN,
        KEY_METRIC_ISC_STD,
        isc_features_to_metric,
    )

    t = torch.from_numpy(_features_2d(logits, "logits"))
    if splits < 1 or splits > t.shape[0]:
        raise ValueError(f"splits must be in 1..{t.shape[0]} (number of samples), got {splits}")
    m = isc_features_to_metric(t, splits=splits, shuffle=shuffle, rng_seed=seed)
    return {
        "is_mean": float(m[KEY_METRIC_ISC_MEAN]),
        "is_std": float(m[KEY_METRIC_ISC_STD]),
        "splits": int(splits),
        "n": int(t.shape[0]),
        "num_classes": int(t.shape[1]),
        "seed": int(seed),
    }


def protocol() -> dict[str, Any]:
    """Backends and versions used by this module (recorded in every metrics file)."""
    import torch_fidelity

    return {
        "fid_backend": "torch-fidelity",
        "fid_functions": "fid_features_to_statistics + fid_statistics_to_metric",
        "fid_crosscheck_backend": "pytorch-fid",
        "fid_crosscheck_function": "calculate_frechet_distance",
        "is_backend": "torch-fidelity",
        "is_function": "isc_features_to_metric",
        "torch_fidelity_version": str(torch_fidelity.__version__),
        "pytorch_fid_version": importlib.metadata.version("pytorch-fid"),
        "torch_version": str(torch.__version__),
        "numpy_version": str(np.__version__),
        "feature_dtype": "float64",
    }


def kid_from_features(real: Any, fake: Any, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 2020) -> dict[str, Any]:
    """Kernel Inception Distance (Binkowski et al. 2018) via torch-fidelity's
    ``kid_features_to_metric``: the unbiased MMD^2 estimate with the cubic polynomial
    kernel k(x, y) = (x.y / d + 1)^3, averaged over ``subsets`` random subsets of
    ``min(subset_size, n_real, n_fake)`` rows of each side (torch-fidelity's defaults: 100
    subsets of 1000). Unbiased at any n, unlike FID, so small real sets can be compared.

    Returns {"kid", "kid_std" (over subsets), "subsets", "subset_size", "seed"}.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    r = torch.from_numpy(_features_2d(real, "real"))
    f = torch.from_numpy(_features_2d(fake, "fake"))
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dims differ: real {r.shape[1]} vs fake {f.shape[1]}")
    size = int(min(subset_size, r.shape[0], f.shape[0]))
    m = kid_features_to_metric(r, f, kid_subsets=int(subsets), kid_subset_size=size, verbose=False,
                               rng_seed=int(seed))
    return {"kid": float(m[KEY_METRIC_KID_MEAN]), "kid_std": float(m[KEY_METRIC_KID_STD]),
            "subsets": int(subsets), "subset_size": size, "seed": int(seed)}
