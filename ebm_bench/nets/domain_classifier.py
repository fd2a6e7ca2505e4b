"""The small domain classifier: its network, and its checkpoint format.

One per labelled dataset, trained on the training split
(:func:`ebm_bench.training.classifier.train_domain_classifier`); its penultimate activations
are the FID features and its logits give IS and the mode weights where Inception is not used
(:class:`ebm_bench.metrics.extractors.DomainExtractor`).

Checkpoints are plain dicts of tensors / numbers / strings, saved atomically and loaded with
``torch.load(weights_only=True)`` so a checkpoint from someone else never runs code.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ebm_bench.core.errors import WeightsMissing
from ebm_bench.core.io import atomic_write_bytes, file_sha256
from ebm_bench.data.base import from_uint8

CLASSIFIER_FORMAT = "ebm-bench/domain-classifier"
CLASSIFIER_FORMAT_VERSION = 1


class DomainClassifier(nn.Module):
    """Small classifier on model-space data. ``arch`` (plain dict) fully determines it.

    kind 'cnn' (images (C, H, W) in [-1, 1]): conv3x3 C->w, conv3x3/2 w->2w, conv3x3 2w->2w
    (stride 2 when H, W >= 16), adaptive avg-pool to 4x4, linear -> hidden (the "pool"
    features), linear -> classes. kind 'mlp' (vectors (D,)): D -> hidden -> hidden -> classes.
    Inputs are standardised with training-set statistics stored as buffers.
    """

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        self.arch = dict(arch)
        shape = tuple(int(s) for s in arch["input_shape"])
        k, hidden = int(arch["num_classes"]), int(arch["hidden"])
        if arch["kind"] == "cnn":
            c, h, w = shape
            width = int(arch["width"])
            s3 = 2 if min(h, w) >= 16 else 1
            self.body = nn.Sequential(
                nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(2 * width, 2 * width, 3, stride=s3, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                nn.Linear(2 * width * 16, hidden), nn.ReLU(),
            )  # fmt: skip
            stat_shape: tuple[int, ...] = (c, 1, 1)
        elif arch["kind"] == "mlp":
            (d,) = shape
            self.body = nn.Sequential(
                nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            stat_shape = (d,)
        else:
            raise ValueError(f"unknown classifier kind {arch['kind']!r}")
        self.head = nn.Linear(hidden, k)
        self.register_buffer("in_mean", torch.zeros(stat_shape))
        self.register_buffer("in_std", torch.ones(stat_shape))

    @property
    def is_image(self) -> bool:
        return self.arch["kind"] == "cnn"

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> [-1, 1]; anything else -> float32 as is."""
        if x.dtype == torch.uint8:
            x = from_uint8(x)
        return x.float()

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate activations, logits) for a prepared batch."""
        h = self.body((x - self.in_mean) / self.in_std)
        return h, self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]


def default_arch(x: torch.Tensor, num_classes: int, width: int, hidden: int) -> dict[str, Any]:
    shape = list(x.shape[1:])
    if len(shape) == 3:
        kind = "cnn"
    elif len(shape) == 1:
        kind = "mlp"
    else:
        raise ValueError(f"domain classifier needs images (N,C,H,W) or vectors (N,D), got {tuple(x.shape)}")
    return {"kind": kind, "input_shape": shape, "num_classes": int(num_classes), "width": int(width), "hidden": int(hidden)}


def save_classifier(path: str | os.PathLike, checkpoint: dict[str, Any]) -> str:
    """Save a checkpoint from :func:`ebm_bench.training.classifier.train_domain_classifier` atomically; return its sha256.

    Serialised to memory first: ``torch.save`` to a file name embeds that name in the zip,
    which would make the bytes (and the hash) depend on the temp file name.
    """
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    data = buf.getvalue()
    atomic_write_bytes(Path(path), lambda f: f.write(data))
    return hashlib.sha256(data).hexdigest()


def load_classifier(path: str | os.PathLike) -> DomainClassifier:
    """Load a saved classifier with ``torch.load(weights_only=True)`` (never runs code).

    The returned module is in eval mode with attributes ``info`` (training record incl.
    test accuracy), ``path`` and ``sha256`` (of the file).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(
            f"domain classifier {path} not found; it is trained from the dataset's training "
            f"split by the evaluation workflow (ebm_bench.training.classifier)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"{path} is not an ebm-bench domain classifier checkpoint")
    if int(ckpt.get("format_version", -1)) != CLASSIFIER_FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported classifier format version {ckpt.get('format_version')}")
    model = DomainClassifier(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval().requires_grad_(False)
    model.info = dict(ckpt.get("info", {}))  # type: ignore[assignment]
    model.path = str(path)  # type: ignore[assignment]
    model.sha256 = file_sha256(path)  # type: ignore[assignment]
    return model
