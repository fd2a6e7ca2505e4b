"""The small SiLU CNN of paper 003's MNIST experiment (Carbone et al. 2023, Sec. 4.2).

The paper describes it only as a simple convolutional network; the layout is that of the
authors' public code (github.com/submissionx12/EBMs_Jarzynski ``MNIST_code/CNNModel.py``):
conv5x5 stride 2 pad 4 (c -> h/2), then three conv3x3 stride 2 pad 1 (h/2 -> h -> 2h -> 2h),
SiLU after each, flatten, linear -> 2h, SiLU, linear -> 1. With ``hidden_features``
h = 32 on 28 px images the flattened map is 64 x 2 x 2 = 256 and the network has 76,993
parameters (the paper's "~77K"). The flattened size is computed for any input size.
"""

from __future__ import annotations

import torch
from torch import nn

from ebm_bench.core import validation as V
from ebm_bench.nets.base import EnergyNet, register_net


@register_net("cnn_silu")
class CNNSiLU(EnergyNet):
    """Small SiLU CNN of paper 003's MNIST experiment (any image size)."""

    checks = {"hidden_features": V.count()}

    def __init__(self, shape: tuple[int, ...], hidden_features: int = 32):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"cnn_silu needs (channels, height, width) images, got {shape}")
        c, h = shape[0], int(hidden_features)
        self.body = nn.Sequential(
            nn.Conv2d(c, h // 2, 5, 2, 4), nn.SiLU(),
            nn.Conv2d(h // 2, h, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(h, 2 * h, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * h, 2 * h, 3, 2, 1), nn.SiLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.body(torch.zeros(1, *shape)).shape[1]
        self.hidden = nn.Sequential(nn.Linear(n_flat, 2 * h), nn.SiLU())
        self.head = nn.Linear(2 * h, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()
