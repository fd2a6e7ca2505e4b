"""The parameter-matched EBM of paper 004: NN-EFH's free energy trained with plain Langevin.

Paper 004 compares the NN-EFH against "a standard energy-based model with a similar
neural-network architecture and the same number of parameters" (abstract) and suggests
in its Discussion that the gain may come from Gibbs-Langevin sampling rather than from
the latent layer. This row isolates exactly that: the energy is the NN-EFH's marginal
free energy (Eq. 6 summed over z),

    E(x) = |x - mu|^2 - sum_j softplus(W U(x; phi) + b_z)_j,

with the very same parameters theta = (b_z, mu, W, phi) (it *is* the NN-EFH's
:class:`~ebm_bench.methods.nnefh.NNEFHEnergy`, built with the same seed, so the same
initial weights), trained by the standard MLE loss mean E(data) - mean E(samples) with
negatives from plain ULA on E(x): the same step eps and temperature T as the NN-EFH's
x-moves (including the batch-normalised reading, eps / B and T * B), M * L Langevin steps
per update (as many gradient evaluations as one NN-EFH update), chains from the same
x ~ N(0, init_std^2 I), fresh every update, the same data noise, Adam at the same rate.
The only difference from the NN-EFH is the sampler: no z-draws (Gibbs steps), the
hidden units are summed out analytically.

Generation: fresh chains from N(0, init_std^2 I), (sample_gibbs_steps or gibbs_steps) *
langevin_steps ULA steps (there are no hidden units to start from data, so Alg. 2 has no
analogue; ``sample_init`` is ignored). Probe features: ``U`` and ``eta`` as the NN-EFH's.
"""

from __future__ import annotations

from typing import Any

import torch

from ebm_bench.core.progress import Task
from ebm_bench.methods.base import register_method
from ebm_bench.methods.nnefh import NNEFH, NNEFH_DEFAULTS


@register_method("ebm_free_energy")
class EBMFreeEnergy(NNEFH):
    """NN-EFH's free energy F(x) as a plain EBM: same parameters, plain Langevin (paper 004 matched row)."""

    # every key the NN-EFH has, with the same values (the matched-settings test checks it);
    # the bank of training data is only for Alg. 2's hidden-unit start, which has no analogue
    defaults: dict[str, Any] = {**NNEFH_DEFAULTS, "sample_init": "noise", "data_bank_size": 0}

    def langevin_chains(self, n: int, n_steps: int) -> torch.Tensor:
        """n fresh chains x ~ N(0, s^2 I), then ``n_steps`` ULA steps on F at the NN-EFH's
        effective step and temperature (``GibbsLangevin.ula``)."""
        x = self.sampler.noise((n, *self.data.shape), self.gen, self.device)
        ula = self.sampler.ula(self.sampler.step_size, n)
        return ula.run(self.model.free_energy, x, n_steps, self.gen)

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        x = batch.to(self.device)
        if self.data.is_image and self.params["data_noise"] > 0:
            x = x + self.params["data_noise"] * self.noise_like(x)
        x_neg = self.langevin_chains(x.shape[0], self.sampler_steps_per_iter)
        e_pos, e_neg = self.model.free_energy(x), self.model.free_energy(x_neg.detach())
        loss = e_pos.mean() - e_neg.mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {
            "loss": float(loss.detach()),
            "energy_data": float(e_pos.mean().detach()),
            "energy_model": float(e_neg.mean().detach()),
            "sample_absmax": float(x_neg.abs().max()),
        }

    def sample(self, n: int) -> torch.Tensor:
        m_steps = int(self.params["sample_gibbs_steps"]) or self.sampler.gibbs_steps
        steps = m_steps * self.sampler.langevin_steps
        out = []
        with Task("chains", n) as task:  # generation: a progress task over the chains done
            for start in range(0, n, self.params["sample_batch"]):
                task.tick(start)
                m = min(self.params["sample_batch"], n - start)
                out.append(self.langevin_chains(m, steps))
        return torch.cat(out)
