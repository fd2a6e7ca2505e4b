"""Contrastive divergence (Hinton 2002), as paper 003's Algorithm 3.

Every update restarts the walkers at data points drawn with replacement from the batch
(Alg. 3 line 4, SampleMultinomial(data)), runs P = ``n_steps`` ULA steps under the current
parameters (lines 5-7) and takes the gradient mean dU(walkers) - mean dU(data) (line 9),
i.e. the shared contrastive loss of :class:`LangevinEBM`. Paper 003 App. B.1 uses P = 4
and learning rates x10 for the GMM teacher-student experiment.

``restart_every`` exposes the reference GMM code's variant (github.com/submissionx12/
EBMs_Jarzynski ``GMM_code/GMM.py``, ``nreset = 4``; docs/sources.md): walkers restarted
at data only every ``restart_every`` updates and persistent (``n_steps`` steps per update)
in between; 1 (default) is Alg. 3.

Generation: CD's chains never leave the data, so ``sample`` runs ``sample_steps`` ULA
steps from the ``init_chains`` law (what the trained energy alone can generate).
"""

from __future__ import annotations

from typing import Any

import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.methods.base import register_method
from ebm_bench.methods.langevin import LANGEVIN_DEFAULTS, LangevinEBM


@register_method("cd")
class CD(LangevinEBM):
    """Contrastive divergence, paper 003 Alg. 3: walkers restart at data, P ULA steps."""

    defaults = {
        **LANGEVIN_DEFAULTS,
        "n_steps": 4,  # P (paper 003 App. B.1)
        "n_chains": 0,  # walkers N per update; 0 = the batch size
        "restart_every": 1,  # restart at data every this many updates (1 = Alg. 3)
        "sample_steps": 100,  # generation: ULA steps from the init_chains law
    }
    checks = {"restart_every": V.count()}
    tiny = {**LangevinEBM.tiny, "sample_steps": 3}

    def __init__(self, params, data, device, seed):
        super().__init__(params, data, device, seed)
        if int(self.params["restart_every"]) < 1:
            raise ConfigError(f"restart_every must be >= 1, got {self.params['restart_every']}")
        self.chains = torch.zeros((0, *data.shape), device=self.device)
        self.updates = 0

    def negatives(self, batch: torch.Tensor) -> torch.Tensor:
        n = int(self.params["n_chains"]) or batch.shape[0]
        if self.updates % int(self.params["restart_every"]) == 0 or len(self.chains) != n:
            idx = torch.randint(batch.shape[0], (n,), generator=self.gen, device=self.device)
            x0 = batch[idx].detach()  # X_0^i = SampleMultinomial(data)
        else:
            x0 = self.chains
        x = self.sampler.run(self.energy, x0, int(self.params["n_steps"]), self.gen)
        self.updates += 1
        if int(self.params["restart_every"]) > 1:
            self.chains = x
        return x

    def sample_chains(self, n: int) -> torch.Tensor:
        return self.sampler.run(self.energy, self.init_chains(n), int(self.params["sample_steps"]), self.gen)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "chains": self.chains.clone(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.chains = state["chains"].to(self.device).clone()
        self.updates = int(state["updates"])
