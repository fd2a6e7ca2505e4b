"""2D toy densities with exact normalised log densities and exact samplers.

``density: rings`` is the concentric-rings toy used to illustrate STANLEY (paper 002,
Sec. 5.1, Fig. 1; the paper gives no radii or widths, the defaults here are our choice);
``density: gmm`` is the usual circle of Gaussians (paper 002 Sec. 5.1 is titled "Gaussian
Mixture Model"). Both come with their normalised density, so KL divergences can be
computed exactly on a grid.

Rings: component k has density p_k(x) = exp(-(|x| - R_k)^2 / (2 s^2)) / Z_k over the plane
with Z_k = 2 pi [s^2 exp(-R_k^2 / (2 s^2)) + R_k s sqrt(2 pi) Phi(R_k / s)] (polar
coordinates; the radial law is r exp(-(r - R)^2 / (2 s^2)) on r >= 0, sampled by
inverting its CDF). GMM: ``n_modes`` isotropic Gaussians of std ``mode_std`` evenly
spaced on the circle of radius ``radius``.
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

_LOG_2PI = math.log(2 * math.pi)
# box half-width = (outermost radius + this many stds): the mass outside is < 1e-14
_GRID_STDS = 8.0


def _ndtr(z: np.ndarray | float) -> np.ndarray:
    """Standard normal CDF in float64 (torch's, to avoid importing scipy)."""
    return torch.special.ndtr(torch.as_tensor(z, dtype=torch.float64)).numpy()


def ring_log_normaliser(radius: float, std: float) -> float:
    """log of int_{R^2} exp(-(|x| - R)^2 / (2 s^2)) dx."""
    r, s = float(radius), float(std)
    z = s * s * math.exp(-r * r / (2 * s * s)) + r * s * math.sqrt(2 * math.pi) * float(_ndtr(r / s))
    return math.log(2 * math.pi * z)


def _ring_radial_cdf(r: np.ndarray, radius: float, std: float) -> np.ndarray:
    """CDF of |x| under one ring (unnormalised integral divided by the normaliser / 2 pi)."""
    R, s = radius, std
    num = s * s * (np.exp(-R * R / (2 * s * s)) - np.exp(-((r - R) ** 2) / (2 * s * s))) + R * s * math.sqrt(
        2 * math.pi
    ) * (_ndtr((r - R) / s) - _ndtr(-R / s))
    return num / (math.exp(ring_log_normaliser(R, s)) / (2 * math.pi))


def sample_ring_radius(u: np.ndarray, radius: float, std: float) -> np.ndarray:
    """Inverse-CDF radii for uniforms ``u`` (bisection to float64 precision)."""
    lo = np.zeros_like(u)
    hi = np.full_like(u, radius + 40.0 * std)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = _ring_radial_cdf(mid, radius, std) < u
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


@register_dataset("toy2d")
class Toy2D(DatasetSpec):
    """2D toy data: ``density`` in {"rings", "gmm"} with exact ``log_density``.

    Params: ``n_train``, ``n_test``; rings: ``radii`` and ``ring_std``; gmm: ``n_modes``,
    ``radius``, ``mode_std``; ``weights`` (None = equal) are the mixture weights of the
    rings or modes; samples are drawn with ``split_seed`` (train and test from independent
    streams), never with the run seed. Labels are the component index.
    ``truth = {"mode_weights", "grid": {"low", "high"}, "centres"}``: the square
    [low, high]^2 holds all but < 1e-14 of the mass (for exact KL on a grid).
    """

    defaults = {
        "density": "rings",
        "n_train": 5000,
        "n_test": 2000,
        "radii": [1.0, 2.0, 3.0],
        "ring_std": 0.1,
        "n_modes": 8,
        "radius": 2.0,
        "mode_std": 0.15,
        "weights": None,
        "split_seed": 0,
    }
    checks = {
        "density": V.choice("rings", "gmm"),
        "n_train": V.count(),
        "n_test": V.count(),
        "radii": V.list_of(V.nonnegative(), min_len=1),
        "ring_std": V.positive(),
        "n_modes": V.count(),
        "radius": V.nonnegative(),
        "mode_std": V.positive(),
        "weights": V.list_of(V.nonnegative(), min_len=1, nullable=True),
        "split_seed": V.count(0),
    }
    default_net = "mlp"
    default_net_params = {"hidden": 128, "depth": 3}
    embedded = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        cls._components({**cls.defaults, **params})

    @classmethod
    def _components(cls, p: dict[str, Any]) -> tuple[str, np.ndarray, float, np.ndarray]:
        """(density, centres or radii, std, normalised weights) of params whose keys
        passed ``checks``; the one rule relating keys (one weight per component) is checked here."""
        density = p["density"]
        if density == "rings":
            locs = np.asarray([float(r) for r in p["radii"]], dtype=np.float64)
            std = float(p["ring_std"])
        else:  # gmm
            k = int(p["n_modes"])
            std = float(p["mode_std"])
            ang = 2 * math.pi * np.arange(k) / k
            locs = float(p["radius"]) * np.stack([np.cos(ang), np.sin(ang)], 1)
        n = len(locs)
        if p["weights"] is None:
            w = np.full(n, 1.0 / n)
        else:
            w = np.asarray([float(v) for v in p["weights"]], dtype=np.float64)
            if w.shape != (n,) or np.any(w < 0) or not w.sum() > 0:
                raise ConfigError(
                    f"dataset param 'weights' must be {n} non-negative numbers (one per "
                    f"{'ring' if density == 'rings' else 'mode'}), got {p['weights']}"
                )
            w = w / w.sum()
        return density, locs, std, w

    @staticmethod
    def _sample(density: str, locs: np.ndarray, std: float, w: np.ndarray, n: int, rng: np.random.Generator):
        comp = rng.choice(len(w), size=n, p=w)
        if density == "rings":
            r = np.empty(n)
            u = rng.random(n)
            for k, radius in enumerate(locs):
                m = comp == k
                r[m] = sample_ring_radius(u[m], float(radius), std)
            theta = rng.random(n) * 2 * math.pi
            x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
        else:
            x = locs[comp] + std * rng.standard_normal((n, 2))
        return x, comp

    @staticmethod
    def make_log_density(density: str, locs: np.ndarray, std: float, w: np.ndarray):
        """Vectorised exact log density (computed in float64, returned in x's dtype)."""
        with np.errstate(divide="ignore"):
            logw = np.log(w)
        if density == "rings":
            log_z = np.array([ring_log_normaliser(r, std) for r in locs])
        else:
            log_z = np.full(len(w), _LOG_2PI + 2 * math.log(std))
        const = torch.as_tensor(logw - log_z, dtype=torch.float64)
        locs_t = torch.as_tensor(locs, dtype=torch.float64)

        def log_density(x: torch.Tensor) -> torch.Tensor:
            xd = x.to(torch.float64)
            if density == "rings":
                d2 = (xd.norm(dim=-1, keepdim=True) - locs_t.to(xd.device)) ** 2
            else:
                d2 = ((xd[:, None, :] - locs_t.to(xd.device)) ** 2).sum(-1)
            lp = torch.logsumexp(const.to(xd.device) - d2 / (2 * std * std), dim=-1)
            return lp.to(x.dtype) if x.is_floating_point() else lp

        return log_density

    @classmethod
    def load(cls, params: dict[str, Any], data_root: Path, seed: int = 0) -> Dataset:
        p = {**cls.defaults, **params}
        density, locs, std, w = cls._components(p)
        split_seed = int(p["split_seed"])
        # independent streams, so n_train does not change the test set
        x_tr, y_tr = cls._sample(density, locs, std, w, int(p["n_train"]), np.random.default_rng([split_seed, 0]))
        x_te, y_te = cls._sample(density, locs, std, w, int(p["n_test"]), np.random.default_rng([split_seed, 1]))
        outer = float(np.max(locs) if density == "rings" else p["radius"])
        half = math.ceil(2 * (outer + _GRID_STDS * std)) / 2  # round up to 0.5
        names = [f"ring r={r:g}" for r in locs] if density == "rings" else [f"mode {k}" for k in range(len(w))]
        return Dataset(
            name=cls.name,
            x_train=torch.from_numpy(x_tr).float(),
            x_test=torch.from_numpy(x_te).float(),
            y_train=torch.from_numpy(y_tr).long(),
            y_test=torch.from_numpy(y_te).long(),
            is_image=False,
            num_classes=len(w),
            class_names=names,
            log_density=cls.make_log_density(density, locs, std, w),
            truth={
                "mode_weights": w.tolist(),
                "grid": {"low": -half, "high": half},
                "density": density,
                "centres": locs.tolist(),
                "std": std,
            },
        )
