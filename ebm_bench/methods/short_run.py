"""Short-run non-persistent Langevin EBM (Nijkamp et al., NeurIPS 2019).

Every update starts K-step ULA chains afresh from U[-1, 1] (no persistence, no replay);
reference settings: K = 100, step 1, noise 0.01 (T = 5e-5), Adam 1e-4, data noise 0.03.
"""

from __future__ import annotations

import torch

from ebm_bench.methods.base import register_method
from ebm_bench.methods.langevin import LangevinEBM


@register_method("short_run")
class ShortRun(LangevinEBM):
    """Short-run Langevin EBM (Nijkamp et al. 2019): K-step ULA chains restart from noise each update."""

    def negatives(self, batch: torch.Tensor) -> torch.Tensor:
        x0 = self.init_chains(batch.shape[0])
        return self.sampler.run(self.energy, x0, self.params["n_steps"], self.gen)
