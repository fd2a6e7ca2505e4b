"""The two-mode Gaussian teacher of paper 003 (Carbone et al. 2023, Sec. 4.1, Eq. 14; App. B.1).

rho*(x) = Z*^-1 (exp(-|x - a*|^2 / 2) + exp(-|x - b*|^2 / 2 - z*)),
Z* = (2 pi)^{d/2} (1 + e^{-z*}), so mode a* carries mass p* = 1 / (1 + e^{-z*}).
App. B.1 settings are the defaults: d = 50, a* = -10 e1, b* = 6 e1, z* = -log 3 (p* = 1/4),
n = 1e4 data points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.data.base import Dataset, DatasetSpec, register_dataset


def teacher_log_density(a: torch.Tensor, b: torch.Tensor, z: float):
    """Exact normalised log rho*(x) of Eq. 14, vectorised over rows of x.

    Computed in float64 (|x - a|^2 is ~100 here) and returned in x's dtype.
    """
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    d = a64.numel()
    # log Z* = d/2 log 2 pi + log(1 + e^{-z}), softplus form is stable for any z
    log_z = 0.5 * d * math.log(2 * math.pi) + float(np.logaddexp(0.0, -z))

    def log_density(x: torch.Tensor) -> torch.Tensor:
        xd = x.to(torch.float64)
        la = -0.5 * ((xd - a64.to(xd.device)) ** 2).sum(-1)
        lb = -0.5 * ((xd - b64.to(xd.device)) ** 2).sum(-1) - z
        return (torch.logaddexp(la, lb) - log_z).to(x.dtype)

    return log_density


@register_dataset("gmm_teacher")
class GMMTeacher(DatasetSpec):
    """Teacher of paper 003 Eq. 14 with identity covariances.

    ``a`` / ``b``: a number (the first coordinate of the centre, the others 0, as in
    App. B.1) or a full list of length ``dim``. ``mass_a`` = p* sets z* = log(p / (1 - p)).
    Labels are the mode (0 = a*, 1 = b*). Data are drawn with ``split_seed`` (train and
    test from independent streams), never with the run seed.
    """

    defaults = {
        "dim": 50,
        "a": -10.0,
        "b": 6.0,
        "mass_a": 0.25,
        "n_train": 10000,
        "n_test": 10000,
        "split_seed": 0,
    }
    checks = {
        "dim": V.count(),
        "a": V.either(V.number(), V.list_of(V.number(), min_len=1)),
        "b": V.either(V.number(), V.list_of(V.number(), min_len=1)),
        "mass_a": V.fraction(),
        "n_train": V.count(),
        "n_test": V.count(),
        "split_seed": V.count(0),
    }
    default_net = "gmm_energy"
    default_net_params: dict[str, Any] = {}
    embedded = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        cls.teacher(params)

    @classmethod
    def _centre(cls, value: Any, dim: int, key: str) -> np.ndarray:
        if isinstance(value, (list, tuple)):
            if len(value) != dim:
                raise ConfigError(f"dataset param {key!r} must be a number or a list of length dim={dim}, "
                                  f"got a list of length {len(value)}")
            return np.asarray([float(v) for v in value], dtype=np.float64)
        c = np.zeros(dim)
        c[0] = float(value)
        return c

    @classmethod
    def teacher(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Teacher parameters {"a", "b" (lists), "z", "mass_a", "dim"} of params whose
        keys passed ``checks``; a centre's length against ``dim`` is checked here."""
        p = {**cls.defaults, **params}
        dim = int(p["dim"])
        mass = float(p["mass_a"])
        a = cls._centre(p["a"], dim, "a")
        b = cls._centre(p["b"], dim, "b")
        return {"a": a.tolist(), "b": b.tolist(), "z": math.log(mass / (1.0 - mass)), "mass_a": mass, "dim": dim}

    @staticmethod
    def _sample(a: np.ndarray, b: np.ndarray, mass: float, n: int, rng: np.random.Generator):
        y = (rng.random(n) >= mass).astype(np.int64)  # 0 = a* with probability mass_a
        x = np.where(y[:, None] == 0, a, b) + rng.standard_normal((n, a.size))
        return x, y

    @classmethod
    def load(cls, params: dict[str, Any], data_root: Path, seed: int = 0) -> Dataset:
        p = {**cls.defaults, **params}
        t = cls.teacher(p)
        a, b = np.asarray(t["a"]), np.asarray(t["b"])
        s = int(p["split_seed"])
        x_tr, y_tr = cls._sample(a, b, t["mass_a"], int(p["n_train"]), np.random.default_rng([s, 0]))
        x_te, y_te = cls._sample(a, b, t["mass_a"], int(p["n_test"]), np.random.default_rng([s, 1]))
        return Dataset(
            name=cls.name,
            x_train=torch.from_numpy(x_tr).float(),
            x_test=torch.from_numpy(x_te).float(),
            y_train=torch.from_numpy(y_tr),
            y_test=torch.from_numpy(y_te),
            is_image=False,
            num_classes=2,
            class_names=["a", "b"],
            log_density=teacher_log_density(torch.from_numpy(a), torch.from_numpy(b), t["z"]),
            truth={"mode_weights": [t["mass_a"], 1.0 - t["mass_a"]], "teacher": t},
        )
