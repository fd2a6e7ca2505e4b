"""The analytic two-mode student of paper 003 (Carbone et al. 2023), Eq. 15.

U_theta(x) = -log( exp(-|x - a|^2 / 2) + exp(-|x - b|^2 / 2 - z) ),  theta = (a, b, z),
with the exact partition function Z_theta = (2 pi)^{d/2} (1 + e^{-z}), so the exact KL
to the teacher (Eq. 14) is available. Initialisation follows App. B.1:
a0 = -0.1 e1 + 0.01 N(0, I), b0 = 0.1 e1 + 0.01 N(0, I), z0 = 0 (draws from torch's
global RNG, which the training entry point seeds).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import validation as V
from .base import EnergyNet, register_net


@register_net("gmm_energy")
class GMMEnergy(EnergyNet):
    """Analytic two-mode Gaussian student of paper 003 (Eq. 15), exact log Z."""

    checks = {"init_noise": V.nonnegative()}

    def __init__(self, shape: tuple[int, ...], init_offset: float = 0.1, init_noise: float = 0.01):
        super().__init__()
        (d,) = shape
        e1 = torch.zeros(d)
        e1[0] = 1.0
        self.a = nn.Parameter(-init_offset * e1 + init_noise * torch.randn(d))
        self.b = nn.Parameter(init_offset * e1 + init_noise * torch.randn(d))
        self.z = nn.Parameter(torch.zeros(()))

    def _log_terms(self, x: torch.Tensor) -> torch.Tensor:
        la = -0.5 * ((x - self.a) ** 2).sum(-1)
        lb = -0.5 * ((x - self.b) ** 2).sum(-1) - self.z
        return torch.stack([la, lb], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self._log_terms(x), -1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # posterior responsibilities of the two modes: the model's own representation
        return torch.softmax(self._log_terms(x), -1)

    def log_partition(self) -> torch.Tensor:
        d = self.a.numel()
        return 0.5 * d * math.log(2 * math.pi) + torch.nn.functional.softplus(-self.z)

    def mass_a(self) -> float:
        """Mass of the mode at a: p = 1 / (1 + e^{-z}) (paper 003, Sec. 4.1)."""
        return float(torch.sigmoid(self.z))

    def student(self) -> dict:
        return {"a": self.a.detach().double().tolist(), "b": self.b.detach().double().tolist(), "z": float(self.z.detach())}
