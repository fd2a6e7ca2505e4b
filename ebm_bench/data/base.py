"""The dataset contract: every registered dataset returns a :class:`Dataset`.

Model space: images are float32 tensors ``(N, C, H, W)`` scaled to [-1, 1]; vector data
(2D toys, the GMM teacher) are float32 ``(N, D)``. Labels are int64 or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ebm_bench.core import validation as V
from ebm_bench.core.registry import DATASETS

register_dataset = DATASETS.register


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    x_test: torch.Tensor
    y_train: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    is_image: bool = False
    num_classes: int | None = None
    class_names: list[str] | None = None
    # exact normalised log density of the data distribution, vectorised over rows
    # (toys and the GMM teacher); None for real data
    log_density: Callable[[torch.Tensor], torch.Tensor] | None = None
    # facts the exact metrics need: e.g. {"mode_weights": [...], "teacher": {...}}
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def dim(self) -> int:
        return int(torch.tensor(self.shape).prod())

    def class_weights(self) -> torch.Tensor | None:
        """Empirical class frequencies of the training split."""
        if self.y_train is None or self.num_classes is None:
            return None
        counts = torch.bincount(self.y_train, minlength=self.num_classes).double()
        return counts / counts.sum()


class DatasetSpec:
    """Base class of a registered dataset.

    ``defaults`` lists every parameter a config may set (unknown keys are rejected);
    ``default_net`` and ``default_net_params`` pick the energy network a method uses
    when its variant does not name one; ``embedded`` datasets need no download;
    ``labelled`` datasets have class labels; ``images`` datasets are images (Inception
    features apply). ``checks`` (key -> :class:`ebm_bench.core.validation.Check`) says how a
    value of ``defaults`` is checked before any job (keys without one are checked by the
    default's type); ``check_params(params)`` checks rules that relate several keys;
    ``path_params`` names the params that are paths read under ``data_root`` (refused
    when they resolve outside it).
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    default_net: ClassVar[str] = "mlp"
    default_net_params: ClassVar[dict[str, Any]] = {}
    embedded: ClassVar[bool] = True
    labelled: ClassVar[bool] = True  # labels exist: domain classifier, probe, mode weights
    images: ClassVar[bool] = False  # image data (N, C, H, W): Inception features apply
    checks: ClassVar[dict[str, Any]] = {}
    path_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Rules relating several params (merged over ``defaults``); raise ConfigError."""

    @classmethod
    def load(cls, params: dict[str, Any], data_root: Path, seed: int = 0) -> Dataset:
        raise NotImplementedError

    @classmethod
    def download(cls, params: dict[str, Any], data_root: Path) -> None:
        """Fetch files to ``data_root`` (local rule only); embedded datasets do nothing."""

    @classmethod
    def check_available(cls, params: dict[str, Any], data_root: Path) -> None:
        """Raise :class:`~ebm_bench.core.errors.DatasetMissing` naming what to download."""


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model-space images in [-1, 1] -> uint8 in [0, 255] (the samples.npz format)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 model space in [-1, 1]."""
    return x.float() / 127.5 - 1.0


def as_tensor(x: Any) -> torch.Tensor:
    """A tensor on the CPU, detached (arrays are wrapped without a copy where possible)."""
    if torch.is_tensor(x):
        return x.detach().cpu()
    return torch.from_numpy(np.ascontiguousarray(x))


def load_dataset(name: str, params: dict[str, Any], data_root: Path | str, seed: int = 0) -> Dataset:
    """Load a registered dataset type with params merged over its defaults.

    The params are checked first, by the dataset's declared ``checks`` and
    ``check_params`` (the config check's rules, for a load that did not come through a
    checked config), so a dataset's ``load`` receives valid params and re-checks nothing."""
    spec = DATASETS.get(name)
    merged = V.checked(spec, params, f"dataset {name!r} params")
    return spec.load(merged, Path(data_root), seed)
