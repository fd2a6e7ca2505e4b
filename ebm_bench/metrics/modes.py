"""Mode weights of generated samples (paper 003, Sec. 4.2 and Fig. 3).

A classifier trained on the data labels the generated samples; the fraction per class is
compared with the data's class weights (biased MNIST: 4/7, 2/7, 1/7).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def mode_weights(pred_labels: Any, num_classes: int, data_weights: Any) -> dict[str, Any]:
    """Generated class fractions and their relative error per class (paper 003, Fig. 3).

    w_gen[c] = #{pred == c} / N; rel_error[c] = |w_gen[c] - w_data[c]| / w_data[c].
    Classes with w_data = 0 have no relative error (None) and are left out of the mean;
    their generated mass is reported in "mass_on_absent_classes".

    Returns {"weights_gen", "weights_data", "counts", "rel_error", "mean_rel_error",
    "max_rel_error", "tv_distance" (1/2 sum |w_gen - w_data|), "mass_on_absent_classes",
    "n", "num_classes"}.
    """
    if torch.is_tensor(pred_labels):
        pred_labels = pred_labels.detach().cpu().numpy()
    if torch.is_tensor(data_weights):
        data_weights = data_weights.detach().cpu().numpy()
    pred = np.asarray(pred_labels).astype(np.int64).ravel()
    w_data = np.asarray(data_weights, dtype=np.float64).ravel()
    if w_data.size != num_classes:
        raise ValueError(f"data_weights has {w_data.size} entries, expected num_classes={num_classes}")
    if pred.size == 0:
        raise ValueError("no predicted labels")
    if pred.min() < 0 or pred.max() >= num_classes:
        raise ValueError(f"predicted labels outside 0..{num_classes - 1}")
    if np.any(w_data < 0) or not math.isclose(w_data.sum(), 1.0, rel_tol=1e-6):
        raise ValueError(f"data_weights must be non-negative and sum to 1, got {w_data.tolist()}")
    counts = np.bincount(pred, minlength=num_classes)
    w_gen = counts / pred.size
    present = w_data > 0
    rel = np.full(num_classes, np.nan)
    rel[present] = np.abs(w_gen[present] - w_data[present]) / w_data[present]
    return {
        "weights_gen": w_gen.tolist(),
        "weights_data": w_data.tolist(),
        "counts": counts.tolist(),
        "rel_error": [None if np.isnan(r) else float(r) for r in rel],
        "mean_rel_error": float(rel[present].mean()),
        "max_rel_error": float(rel[present].max()),
        "tv_distance": float(0.5 * np.abs(w_gen - w_data).sum()),
        "mass_on_absent_classes": float(w_gen[~present].sum()),
        "n": int(pred.size),
        "num_classes": int(num_classes),
    }
