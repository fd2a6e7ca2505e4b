"""STANLEY's anisotropic step size (Karimi, Xie & Li, paper 002, Algorithm 1, Eq. 5-6), as a
``step_rule`` of the shared :class:`~ebm_bench.samplers.ULA` sampler (no second sampler).

Eq. 5:  gamma = th / max(th, |grad f(z)|)        (f = -U, so |grad f| = |grad U|)
Eq. 6:  z' = z + gamma/2 grad f(z) + sqrt(gamma) B,   B ~ N(0, I)
          = z - (gamma/2) grad U(z) + sqrt(2 (gamma/2)) B,

i.e. one ULA step with step h = gamma/2 at temperature T = 1. The ULA sampler applies a
step rule as  x' = x - h0 gamma(g) d + sqrt(2 h0 gamma(g) T) xi  (h0 = ``step_size``,
g = grad U(x), d = g or its clamp), so **step_size = 0.5 and temperature = 1 reproduce
Eq. 6 exactly**; other (step_size, temperature) are the same rule on the suite's
Langevin scale (e.g. Nijkamp's h0 = 1, T = 5e-5). Where every |g| <= th, gamma = 1 and the
step is plain ULA at its base step h0.

``mode``:
- ``coordinate`` (default, the paper's "anisotropic" step): gamma per element of x, from
  |dU/dx_j| (Eq. 5 read element-wise);
- ``sample``: one gamma per sample from the Euclidean norm |grad U(x)| over all its
  coordinates (an isotropic, per-chain step), returned with shape (n, 1, ..., 1).
The threshold acts on grad U, the network's own energy (paper 002 has T = 1, f = -U).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("coordinate", "sample")


@dataclass(frozen=True)
class StanleyStep:
    threshold: float
    mode: str = "coordinate"

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"STANLEY threshold must be > 0, got {self.threshold}")
        if self.mode not in MODES:
            raise ValueError(f"STANLEY mode {self.mode!r}; expected one of {', '.join(MODES)}")

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        """gamma(g) in (0, 1] of Eq. 5: th / max(th, |g|) per coordinate or per sample."""
        th = self.threshold
        if self.mode == "coordinate":
            return th / g.abs().clamp(min=th)
        norm = g.flatten(1).norm(dim=1).view(-1, *[1] * (g.dim() - 1))
        return th / norm.clamp(min=th)
