"""The unadjusted Langevin algorithm (ULA), the one Langevin sampler of the suite.

x' = x - h * gamma(grad) * grad U(x) + sqrt(2 h gamma(grad) T) * xi,   xi ~ N(0, I)

With gamma = 1 this is ULA with step h targeting exp(-U/T) (METHODS.md notation: a chain
with noise std sigma and step h targets T = sigma^2 / (2h)). Nijkamp et al.'s short-run
setting "x <- x + grad f + 0.01 xi" is h = 1, T = 5e-5. The temperature is explicit so
that anything reweighting the chain (Jarzynski weights) uses U/T, the law actually run.

``step_rule`` maps the gradient to a per-element factor gamma in (0, 1] on the step: this
is how STANLEY's anisotropic step (paper 002, Eq. 5-6) reuses this sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .counting import count_grad_evals

Energy = Callable[[torch.Tensor], torch.Tensor]
StepRule = Callable[[torch.Tensor], torch.Tensor]


def energy_and_grad(energy: Energy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U(x) per sample and grad_x U(x), without touching parameter gradients."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = energy(x)
        (g,) = torch.autograd.grad(u.sum(), x)
    count_grad_evals(x.shape[0] if x.dim() else 1)
    return u.detach(), g.detach()


@dataclass
class ULA:
    step_size: float
    temperature: float = 1.0
    grad_clip: float | None = None  # clamp each gradient element to [-c, c] (optional)
    clamp: tuple[float, float] | None = None  # project onto a box after each step (images)
    step_rule: StepRule | None = None

    @property
    def noise_std(self) -> float:
        return math.sqrt(2.0 * self.step_size * self.temperature)

    def step(
        self, energy: Energy, x: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One move; returns (x', U(x), grad U(x)) so callers can reuse U and grad at x."""
        u, g = energy_and_grad(energy, x)
        return self.move(x, g, gen), u, g

    def drift(self, g: torch.Tensor) -> torch.Tensor:
        """The drift actually applied for gradient ``g`` (clamped when ``grad_clip`` is set)."""
        return g if self.grad_clip is None else g.clamp(-self.grad_clip, self.grad_clip)

    def move(self, x: torch.Tensor, g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The transition from ``x`` given ``g = grad U(x)`` already computed.

        ``step`` is ``energy_and_grad`` followed by ``move``; callers that need U and grad U
        at ``x`` before deciding to move (SMC resampling, paper 003 Alg. 1 line 10) compute
        them once and call ``move`` without a second gradient pass.
        """
        drift = self.drift(g)
        h = self.step_size if self.step_rule is None else self.step_size * self.step_rule(g)
        xi = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        if self.step_rule is None:  # x - h d + s xi, evaluated in that order, without temporaries
            with torch.no_grad():
                x_new = torch.mul(drift, h)
                torch.sub(x, x_new, out=x_new)
                x_new.add_(xi.mul_(self.noise_std))
        else:
            x_new = x - h * drift + torch.sqrt(2.0 * h * self.temperature) * xi
        if self.clamp is not None:
            x_new = x_new.clamp(*self.clamp)
        return x_new.detach()

    def run(self, energy: Energy, x: torch.Tensor, n_steps: int, gen: torch.Generator) -> torch.Tensor:
        for _ in range(n_steps):
            x, _, _ = self.step(energy, x, gen)
        return x
