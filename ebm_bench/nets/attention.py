"""Convolutions with self-attention: the sufficient-statistics network U(x; phi) of paper 004.

Paper 004 (Methods): "three convolutional layers interspersed with self-attention layers",
after Nijkamp et al.; the penultimate layer has 1024 units (MNIST, CIFAR-10) or 4096
(CelebA) and is U(x) for the NN-EFH, while the EBM baseline reads its energy out of the
same layer with a learned vector ("EBM base"). The paper gives no widths or attention
placement; our layout follows the suite's short-run ConvNet (``convnet``) so the two are
comparable:

    conv3x3(c -> nf), then log2(size/4) conv4x4/2 layers doubling the channels, LeakyReLU(0.2)
    after each; a SAGAN-style self-attention block (Zhang et al. 2019: 1x1 query/key of
    C/8 channels, 1x1 value, residual with a learned gain initialised at 0) after every
    convolution whose output is at most ``attn_max_res`` pixels wide; then a 4x4 valid
    convolution to ``n_features`` channels and LeakyReLU: that vector is U(x);
    energy = w^T U(x) + c (the linear read-out, ``head``).

On 8 px (scikit-learn digits) this is exactly three convolutions (3x3, 4x4/2, 4x4 valid)
with self-attention after the first two; at 32 px it has five convolutions (3x3, three
4x4/2, 4x4 valid) and three attention blocks, deeper than the paper states.

``layout: three_conv`` (the paper's "three convolutional layers interspersed with
self-attention layers", our reading of it at any size): conv3x3(c -> nf), conv4x4/2
(nf -> 2nf), conv4x4/2 (2nf -> 4nf), LeakyReLU(0.2) after each, a self-attention block
after each of them whose map is at most ``attn_max_res`` wide, then one
fully connected layer from the flattened (4nf, H/4, W/4) map to ``n_features`` units and
LeakyReLU: U(x). The paper names no widths and no read-out of the last map; a fully
connected layer is the one that gives "the final layer contains 1024 units" with exactly
three convolutions. ``layout: suite`` (default) is the layout above. Which layout a table
row uses is stated in the config that runs it (config/paper.yaml).

``features(x)`` = U(x), the penultimate layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ebm_bench.core import validation as V
from ebm_bench.nets.base import EnergyNet, register_net


LAYOUTS = ("suite", "three_conv")


class SelfAttention(nn.Module):
    """x + gamma * softmax(q k^T / sqrt(d)) v over the spatial positions (SAGAN).

    q, k (d = C/8 channels) and v (C channels) are 1x1 convolutions of x, computed as one
    linear map over the channels of every position.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.d = max(ch // 8, 1)
        self.qkv = nn.Linear(ch, 2 * self.d + ch)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).split([self.d, self.d, c], dim=-1)  # (b, n, .)
        if x.is_cuda:  # fused kernel; on CPU the plain product is faster at these sizes (same result)
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.d), dim=-1) @ v
        return x + self.gamma * out.transpose(1, 2).reshape(b, c, h, w)


@register_net("attention")
class AttentionConvNet(EnergyNet):
    """Convolutions with self-attention to n_features: paper 004's sufficient statistics U(x; phi)."""

    checks = {"nf": V.count(), "n_features": V.count(), "attn_max_res": V.count(0), "leak": V.nonnegative()}

    def __init__(self, shape: tuple[int, ...], nf: int = 64, n_features: int = 1024,
                 attn_max_res: int = 16, leak: float = 0.2, layout: str = "suite"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"attention layout must be one of {LAYOUTS}, got {layout!r}")
        if len(shape) != 3:
            raise ValueError(f"attention needs images (C, H, W), got shape {shape}; use 'mlp' for vectors")
        c, h, w = shape
        if h != w or h < 4 or 2 ** round(math.log2(h)) != h:
            raise ValueError(f"attention needs square power-of-two images >= 4 px, got {shape}")
        layers: list[nn.Module] = [nn.Conv2d(c, nf, 3, 1, 1), nn.LeakyReLU(leak)]
        res, ch = h, nf
        if res <= attn_max_res:
            layers.append(SelfAttention(ch))
        if layout == "three_conv":
            for _ in range(2):
                layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(leak)]
                ch, res = ch * 2, res // 2
                if res <= attn_max_res:
                    layers.append(SelfAttention(ch))
            layers += [nn.Flatten(), nn.Linear(ch * res * res, n_features), nn.LeakyReLU(leak)]
        else:
            for _ in range(int(math.log2(h // 4))):
                layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(leak)]
                ch, res = ch * 2, res // 2
                if res <= attn_max_res:
                    layers.append(SelfAttention(ch))
            layers += [nn.Conv2d(ch, n_features, 4, 1, 0), nn.LeakyReLU(leak), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(n_features, 1)  # built last: the body's initialisation does not depend on it

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """U(x; phi), shape (batch, n_features)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)
