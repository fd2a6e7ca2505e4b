"""Common base of the energy networks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ebm_bench.core.registry import NETWORKS

register_net = NETWORKS.register


class EnergyNet(nn.Module):
    """``forward(x) -> U(x)`` of shape (batch,); ``features(x)`` -> penultimate layer."""

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def build_net(name: str, shape: tuple[int, ...], params: dict[str, Any] | None = None) -> EnergyNet:
    cls = NETWORKS.get(name, key="net")
    return cls(tuple(shape), **(params or {}))
