"""Fully connected energy network for vector data (2D toys, low-dimensional teachers)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ebm_bench.core import validation as V
from ebm_bench.nets.base import EnergyNet, register_net


@register_net("mlp")
class MLPEnergy(EnergyNet):
    """U(x) = w^T h_L(x) + c with ``depth`` SiLU hidden layers of width ``hidden``."""

    checks = {"hidden": V.count(), "depth": V.count()}

    def __init__(self, shape: tuple[int, ...], hidden: int = 128, depth: int = 3):
        super().__init__()
        dim = math.prod(shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(dim if i == 0 else hidden, hidden), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)
