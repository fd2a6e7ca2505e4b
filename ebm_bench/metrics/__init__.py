"""Metrics: pure functions over arrays, tensors and callables.

- :mod:`.fid`        FID (Heusel et al. 2017) and Inception Score (Salimans et al. 2016)
                     through torch-fidelity's own functions, cross-checked with pytorch-fid.
- :mod:`.extractors` feature extractors behind one interface: torch-fidelity's
                     Inception-v3 and a small domain classifier trained on the data.
- :mod:`.probe`      linear-probe accuracy with one fixed protocol for every method.
- :mod:`.exact`      exact density metrics: grid KL for 2D toys, the GMM teacher/student
                     KL of paper 003 (Eq. 14-15).
- :mod:`.modes`      generated mode weights and their relative error (paper 003, Fig. 3).

Importing this package is cheap on purpose (torch-fidelity costs ~6 s, sklearn ~2 s on
the 2-core machine): the submodules import heavy packages inside the functions that need
them, and the names below resolve lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "fid_from_features": "fid",
    "fid_statistics": "fid",
    "fid_from_statistics": "fid",
    "inception_score_from_logits": "fid",
    "protocol": "fid",
    "FeatureExtractor": "extractors",
    "InceptionExtractor": "extractors",
    "DomainExtractor": "extractors",
    "DomainClassifier": "extractors",
    "train_domain_classifier": "extractors",
    "save_classifier": "extractors",
    "load_classifier": "extractors",
    "fetch_inception_weights": "extractors",
    "resolve_inception_weights": "extractors",
    "register_torch_fidelity_domain_extractor": "extractors",
    "linear_probe": "probe",
    "grid_kl": "exact",
    "gmm_log_density": "exact",
    "gmm_exact_kl": "exact",
    "mode_weights": "modes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
