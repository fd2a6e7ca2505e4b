"""Persistent contrastive divergence with a replay buffer.

Tieleman (2008); paper 003 Alg. 4; IGEBM-style buffer (Du & Mordatch 2019, reference
code): ``buffer_size`` persistent chains; each update draws ``n_chains`` of them (a chain
restarts from the initial law with probability ``reinit_prob``), runs K ULA steps and
writes them back. With ``buffer_size == n_chains``, ``reinit_prob = 0`` and K = 1 this
is exactly Alg. 4 of paper 003 (every walker moves one step per parameter update).
Generation draws chains from the buffer and runs ``sample_steps`` more steps.

Reference-code options (paper 003's CIFAR-10 PCD notebook; docs/reference-equivalence.md),
defaults = the behaviour above: ``burn_in_steps`` unweighted ULA steps on every buffer
chain before the first update (the reference runs 2,000); ``loss_chains: previous`` takes
the negatives of update k from the chains moved in update k-1, as they stood at its end
(the reference's ``self.fake_imgs``; at the first update a random set of ``n_chains``
chains after burn-in), and moves this update's chains for the next update's loss
(``moved``, the default: the chains moved in this update, Alg. 4).
"""

from __future__ import annotations

from typing import Any

import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import register_method
from ebm_bench.methods.langevin import LANGEVIN_DEFAULTS, LangevinEBM


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
        "burn_in_steps": 0,  # unweighted ULA steps on the whole buffer before training (reference: 2000)
        "loss_chains": "moved",  # moved (this update's chains) | previous (the last update's: reference CIFAR code)
    }
    checks = {"burn_in_steps": V.count(0), "loss_chains": V.choice("moved", "previous")}
    tiny = {**LangevinEBM.tiny, "buffer_size": 16, "sample_steps": 3}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        # (.get: subclasses without these keys in their defaults, e.g. stanley, run the defaults)
        self.loss_chains = self.params.get("loss_chains", "moved")
        self.burn_in_steps = int(self.params.get("burn_in_steps", 0))
        if self.loss_chains not in ("moved", "previous"):
            raise ConfigError(f"loss_chains = {self.loss_chains!r}; expected 'moved' or 'previous'")
        self.buffer = self.init_chains(int(self.params["buffer_size"]))
        self.prev_neg: torch.Tensor | None = None  # loss_chains: previous: the next update's negatives

    def seed_chains(self, data: torch.Tensor) -> None:
        """Start chains (``chain_init``), then ``burn_in_steps`` ULA steps on all of them."""
        super().seed_chains(data)
        if self.burn_in_steps > 0:
            self.buffer = self.sampler.run(self.energy, self.buffer, self.burn_in_steps, self.gen,
                                           what="burn-in ULA step").detach()

    def loss_negatives(self, n: int) -> torch.Tensor | None:
        """``loss_chains: previous``: the chains the last update moved (a random set of n
        chains at the first update); None for ``moved``."""
        if self.loss_chains != "previous":
            return None
        if self.prev_neg is None:
            self.prev_neg = self.buffer[self.draw_indices(n)].clone()
        return self.prev_neg

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Hook for pcd_da: transform chains drawn from the buffer (identity here)."""
        return x

    def negatives(self, batch: torch.Tensor) -> torch.Tensor:
        n = self.params["n_chains"] or batch.shape[0]
        loss_neg = self.loss_negatives(n)
        idx = self.draw_indices(n)
        x0 = self.augment(self.buffer[idx])
        restart = torch.rand(n, generator=self.gen, device=self.device) < self.params["reinit_prob"]
        x0 = torch.where(restart.view(-1, *[1] * len(self.data.shape)), self.init_chains(n), x0)
        x = self.sampler.run(self.energy, x0, self.params["n_steps"], self.gen)
        self.buffer[idx] = x
        if loss_neg is not None:  # loss_chains: previous: these chains serve the next update
            self.prev_neg = x.detach().clone()
            return loss_neg
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
        return {**super().state_dict(), "buffer": self.buffer.clone(),
                "prev_neg": None if self.prev_neg is None else self.prev_neg.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer = state["buffer"].to(self.device).clone()
        prev = state.get("prev_neg")
        self.prev_neg = None if prev is None else prev.to(self.device).clone()
