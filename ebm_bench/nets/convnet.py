"""The short-run ConvNet of Nijkamp et al. (2019), generalised to any power-of-two size.

Reference layout (github.com/enijkamp/short_run ``train_cifar10_minimal.py``, class ``F``):
conv3x3(c -> nf), then 4x4 stride-2 convolutions doubling the channels (nf -> 2nf -> 4nf
-> 8nf on 32 px), then a 4x4 valid convolution to one output, LeakyReLU(0.2) between
layers. Here the number of stride-2 layers is
log2(size / 4): 32 px gives the reference layout (three stride-2 layers) and 8 px
(scikit-learn digits) gives conv3x3 -> one stride-2 layer -> 4x4 valid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ebm_bench.core import validation as V
from ebm_bench.nets.base import EnergyNet, register_net


@register_net("convnet")
class ShortRunConvNet(EnergyNet):
    """Nijkamp et al. (2019) short-run ConvNet, any power-of-two image size."""

    checks = {"nf": V.count(), "leak": V.nonnegative()}

    def __init__(self, shape: tuple[int, ...], nf: int = 64, leak: float = 0.2):
        super().__init__()
        c, h, w = shape
        if h != w or h < 4 or 2 ** round(math.log2(h)) != h:
            raise ValueError(f"convnet needs square power-of-two images >= 4 px, got {shape}")
        n_down = int(math.log2(h // 4))
        layers: list[nn.Module] = [nn.Conv2d(c, nf, 3, 1, 1), nn.LeakyReLU(leak)]
        ch = nf
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(leak)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, 1, 4, 1, 0)  # 4x4 valid -> 1x1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).flatten()
