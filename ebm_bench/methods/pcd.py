"""Persistent contrastive divergence with a replay buffer.

Tieleman (2008); paper 003 Alg. 4; IGEBM-style buffer (Du & Mordatch 2019, reference
code): ``buffer_size`` persistent chains; each update draws ``n_chains`` of them (a chain
restarts from the initial law with probability ``reinit_prob``), runs K ULA steps and
writes them back. With ``buffer_size == n_chains``, ``reinit_prob = 0`` and K = 1 this
is exactly Alg. 4 of paper 003 (every walker moves one step per parameter update).
Generation draws chains from the buffer and runs ``sample_steps`` more steps.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import register_method
from .langevin import LANGEVIN_DEFAULTS, LangevinEBM


@register_method("pcd")
class PCD(LangevinEBM):
    """Persistent contrastive divergence with a replay buffer (Tieleman 2008; paper 003 Alg. 4)."""

    defaults = {
        **LANGEVIN_DEFAULTS,
        "n_steps": 60,
        "buffer_size": 10000,
        "n_chains": 0,  # chains updated per iteration; 0 = the batch size
        "reinit_prob": 0.05,
        "energy_reg": 1.0,
        "sample_steps": 100,
    }
    tiny = {**LangevinEBM.tiny, "buffer_size": 16, "sample_steps": 3}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        self.buffer = self.init_chains(int(self.params["buffer_size"]))

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Hook for pcd_da: transform chains drawn from the buffer (identity here)."""
        return x

    def negatives(self, batch: torch.Tensor) -> torch.Tensor:
        n = self.params["n_chains"] or batch.shape[0]
        idx = self.draw_indices(n)
        x0 = self.augment(self.buffer[idx])
        restart = torch.rand(n, generator=self.gen, device=self.device) < self.params["reinit_prob"]
        x0 = torch.where(restart.view(-1, *[1] * len(self.data.shape)), self.init_chains(n), x0)
        x = self.sampler.run(self.energy, x0, self.params["n_steps"], self.gen)
        self.buffer[idx] = x
        return x

    def draw_indices(self, n: int) -> torch.Tensor:
        """Distinct buffer slots when the buffer is large enough (no write collisions)."""
        size = len(self.buffer)
        if n <= size:
            return torch.randperm(size, generator=self.gen, device=self.device)[:n]
        return torch.randint(size, (n,), generator=self.gen, device=self.device)

    def sample_chains(self, n: int) -> torch.Tensor:
        idx = self.draw_indices(n)
        return self.sampler.run(self.energy, self.buffer[idx], self.params["sample_steps"], self.gen)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer = state["buffer"].to(self.device).clone()
