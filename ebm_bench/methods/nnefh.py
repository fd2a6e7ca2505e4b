"""NN-EFH: exponential-family harmonium with neural sufficient statistics (paper 004).

Model (Eq. 5-6)::

    E(z, x) = |x - mu|^2 - U(x; phi)^T W^T z - b_z^T z,     p(z | x) = Bern(sigmoid(W U(x) + b_z)),

z in {0, 1}^n_hidden, theta = (b_z, mu, W, phi). U(x; phi) is the penultimate layer of a
registered energy network (default ``attention``: convolutions + self-attention, paper
004 Methods); its read-out layer is dropped. Marginal free energy (used for the exact
metrics on 2-D data): F(x) = |x - mu|^2 - sum_j softplus(eta_j(x)), eta = W U(x) + b_z.

Training (Eq. 7, Algorithm 1): z ~ p(z | x) for the data batch; negatives (x^, z^) from
:meth:`GibbsLangevin.train_chains` (x^ ~ N(0, I), z^ ~ p(z | x^), M Gibbs steps of L
Langevin steps, fresh every update); loss = mean_batch E(z, x) - mean_batch E(z^, x^),
whose gradient is Eq. 7 with its sign (descending it lowers the energy of data, raises
that of samples); Adam (Alg. 1 line 22).

"Energy normalised by the batch size" (Methods): the loss is the *mean* over the batch
(sum / B) either way. With the per-sample dE/dx, x <- x - eps dE/dx + sqrt(2 eps T) y at
the stated eps = 1 puts the quadratic term |x - mu|^2 (curvature 2) exactly at ULA's
stability limit eps * 2 = 2 (x - mu -> -(x - mu) each step): such chains diverge. The
default (``sampler_batch_normalised: true``) therefore reads the sentence as the energy
the *sampler* differentiates being divided by B too (what the GRBM reference code this
paper builds on does): ULA at step eps / B and temperature T * B, noise std still
sqrt(2 eps T), with B = ``sampler_batch``, the run's ``train.batch_size`` unless set
(:meth:`resolve_params`), so generation with any number of chains runs the training
dynamics (:mod:`ebm_bench.samplers.gibbs_langevin`). ``sampler_batch_normalised: false``
is the literal per-sample reading.

Generation (Algorithm 2): the hidden units start from data (z ~ p(z | x_data), x_data
drawn from the method's bank of training examples, :class:`DataBank`) and the visible
units from noise; ``sample_init: noise`` uses Alg. 1's sampler instead.

Paper settings: M = 5, L = 60, eps = 1, T = 5e-5, Adam, batch 64, 50,000 iterations,
1024 features and 2048 hidden units (4096 / 8192 on CelebA).
Features for the linear probe (Table 3): ``U`` = U(x) and ``eta`` = W U(x) + b_z.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ebm_bench.core import validation as V
from ebm_bench.nets import build_net
from ebm_bench.core.progress import Task
from ebm_bench.samplers.gibbs_langevin import DataBank, GibbsLangevin
from ebm_bench.methods.base import DataInfo, register_method
from ebm_bench.methods.harmonium import HarmoniumMethod

NNEFH_DEFAULTS: dict[str, Any] = {
    "net": "attention",  # registered network whose penultimate layer is U(x; phi)
    "net_params": {"nf": 64, "n_features": 1024},
    "n_hidden": 2048,
    "lr": 1e-4,  # Adam (paper); the rate is not given: 1e-4 is our choice (Nijkamp et al.'s)
    "adam_beta1": 0.9,
    "gibbs_steps": 5,  # M (paper)
    "langevin_steps": 60,  # L (paper)
    "step_size": 1.0,  # eps (paper)
    "temperature": 5e-5,  # T (paper; noise std sqrt(2 eps T) = 0.01)
    # "energy normalised by the batch size" read as the energy the sampler differentiates:
    # ULA at eps / B, T * B with B = sampler_batch (default: the run's train.batch_size,
    # resolved by resolve_params). False: the literal per-sample eps = 1, which is ULA's
    # stability limit for |x - mu|^2 and diverges (config/paper.yaml, nnefh_literal)
    "sampler_batch_normalised": True,
    "sampler_batch": None,  # B; None: train.batch_size of the run (64 where no run sets it)
    "grad_clip": None,  # optional clamp of dE/dx elements in the Langevin steps
    "init_std": 1.0,  # chains start at x ~ N(0, init_std^2 I) (Alg. 1 line 10, Alg. 2 line 3)
    "data_noise": 0.03,  # N(0, s^2) added to image batches: not in paper 004; Nijkamp et al.'s
    "sample_init": "data",  # "data": Alg. 2 ; "noise": Alg. 1's sampler
    "sample_gibbs_steps": 0,  # Gibbs steps at generation; 0 = gibbs_steps
    "data_bank_size": 1000,  # training examples kept for Alg. 2's hidden-unit initialisation
    "sample_batch": 500,
}


DEFAULT_BATCH = 64  # B where no run settings resolved sampler_batch (paper 004: batch 64)


def resolve_sampler_batch(params: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """``sampler_batch: null`` -> the run's ``train.batch_size`` (the B of "energy
    normalised by the batch size"), recorded in the run spec."""
    if params.get("sampler_batch_normalised") and not params.get("sampler_batch"):
        return {**params, "sampler_batch": int(train["batch_size"])}
    return params


def drop_readout(net: nn.Module) -> nn.Module:
    """Keep a registered network's feature layers only (U(x) = net.features(x))."""
    if isinstance(getattr(net, "head", None), nn.Module):
        net.head = None
    return net


class NNEFHEnergy(nn.Module):
    """The parameters theta = (b_z, mu, W, phi) and the energy of Eq. 6."""

    def __init__(self, stats_net: nn.Module, shape: tuple[int, ...], n_hidden: int):
        super().__init__()
        self.stats_net = stats_net
        with torch.no_grad():
            n_features = stats_net.features(torch.zeros(2, *shape)).shape[1]
        self.hidden = nn.Linear(n_features, n_hidden)  # weight = W (n_hidden x n_features), bias = b_z
        self.mu = nn.Parameter(torch.zeros(shape))

    def stats(self, x: torch.Tensor) -> torch.Tensor:
        """U(x; phi)."""
        return self.stats_net.features(x)

    def hidden_logits(self, x: torch.Tensor) -> torch.Tensor:
        """eta(x) = W U(x) + b_z, the natural parameters of p(z | x) (Eq. 5)."""
        return self.hidden(self.stats(x))

    def quadratic(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mu).pow(2).flatten(1).sum(1)

    def joint_energy(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Eq. 6: |x - mu|^2 - U^T W^T z - b_z^T z = |x - mu|^2 - eta(x)^T z."""
        return self.quadratic(x) - (self.hidden_logits(x) * z).sum(1)

    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        """-log sum_z exp(-E(z, x)) = |x - mu|^2 - sum_j softplus(eta_j(x))."""
        return self.quadratic(x) - F.softplus(self.hidden_logits(x)).sum(1)


@register_method("nnefh")
class NNEFH(HarmoniumMethod):
    """NN-EFH (paper 004, Eq. 6-7, Alg. 1-2): Gibbs-Langevin trained harmonium with neural U(x)."""

    defaults = NNEFH_DEFAULTS
    checks = {
        "net": V.Check("str"), "n_hidden": V.count(), "lr": V.positive(), "adam_beta1": V.number(ge=0, lt=1),
        "gibbs_steps": V.count(), "langevin_steps": V.count(), "step_size": V.positive(),
        "temperature": V.positive(), "grad_clip": V.positive(nullable=True), "init_std": V.positive(),
        "data_noise": V.nonnegative(), "sample_init": V.choice("data", "noise"), "sample_gibbs_steps": V.count(0),
        "data_bank_size": V.count(0), "sample_batch": V.count(), "sampler_batch": V.count(nullable=True),
    }
    tiny = {"n_hidden": 8, "gibbs_steps": 2, "langevin_steps": 2, "data_bank_size": 32}

    probe_untrained_control = True

    @classmethod
    def tiny_params(cls, data: DataInfo) -> dict[str, Any]:
        net = ({"net": "attention", "net_params": {"nf": 4, "n_features": 8}} if data.is_image
               else {"net": "mlp", "net_params": {"hidden": 16, "depth": 2}})
        return {**net, **cls.tiny}

    @classmethod
    def resolve_params(cls, params: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
        return resolve_sampler_batch(params, train)

    def __init__(self, params: dict[str, Any], data: DataInfo, device, seed: int):
        super().__init__(params, data, device, seed)
        p = self.params
        if p["sample_init"] not in ("data", "noise"):
            raise ValueError(f"sample_init must be 'data' or 'noise', got {p['sample_init']!r}")
        torch.manual_seed(self.seed)  # network initialisation is the only global-RNG use
        net = drop_readout(build_net(p["net"], data.shape, p["net_params"]))
        self.model = NNEFHEnergy(net, data.shape, int(p["n_hidden"])).to(self.device)
        self.sampler = GibbsLangevin(
            gibbs_steps=int(p["gibbs_steps"]),
            langevin_steps=int(p["langevin_steps"]),
            step_size=float(p["step_size"]),
            temperature=float(p["temperature"]),
            batch_normalised_grad=bool(p["sampler_batch_normalised"]),
            normalising_batch=int(p["sampler_batch"] or DEFAULT_BATCH),
            init_std=float(p["init_std"]),
            grad_clip=p["grad_clip"],
        )
        self.bank = DataBank(int(p["data_bank_size"]), data.shape, data.is_image, self.device)
        self.sampler_steps_per_iter = int(p["gibbs_steps"]) * int(p["langevin_steps"])

    # --- model ------------------------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Marginal free energy F(x) (density exp(-F) when the chain runs at T = 1)."""
        return self.model.free_energy(x)

    def contrastive_loss(self, x_pos, z_pos, x_neg, z_neg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 7: mean_batch E(z, x) - mean_batch E(z^, x^) ("normalised by the batch size")."""
        e_pos = self.model.joint_energy(x_pos, z_pos.detach())
        e_neg = self.model.joint_energy(x_neg.detach(), z_neg.detach())
        return e_pos.mean() - e_neg.mean(), e_pos, e_neg

    # --- contract -----------------------------------------------------------------------------
    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.params["lr"], betas=(self.params["adam_beta1"], 0.999))

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        x = batch.to(self.device)
        self.bank.add(x)
        if self.data.is_image and self.params["data_noise"] > 0:
            x = x + self.params["data_noise"] * self.noise_like(x)
        z = self.sampler.sample_hidden(self.model, x, self.gen)  # Alg. 1 line 5
        x_neg, z_neg = self.sampler.train_chains(self.model, x.shape[0], self.data.shape, self.gen,
                                                 self.device)  # line 6
        loss, e_pos, e_neg = self.contrastive_loss(x, z, x_neg, z_neg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()  # line 7 (Adam)
        return {
            "loss": float(loss.detach()),
            "energy_data": float(e_pos.mean().detach()),
            "energy_model": float(e_neg.mean().detach()),
            "sample_absmax": float(x_neg.abs().max()),
            "hidden_data": float(z.mean()),
            "hidden_model": float(z_neg.mean()),
        }

    def sample(self, n: int) -> torch.Tensor:
        m_steps = int(self.params["sample_gibbs_steps"]) or self.sampler.gibbs_steps
        sampler = replace(self.sampler, gibbs_steps=m_steps)
        out = []
        with Task("chains", n) as task:  # generation: a progress task over the chains done
            for start in range(0, n, self.params["sample_batch"]):
                task.tick(start)
                m = min(self.params["sample_batch"], n - start)
                if self.params["sample_init"] == "data" and len(self.bank) > 0:
                    x, _ = sampler.test_chains(self.model, self.bank.draw(m, self.gen).to(self.device), self.gen)
                else:
                    x, _ = sampler.train_chains(self.model, m, self.data.shape, self.gen, self.device)
                out.append(x)
        return torch.cat(out)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        u = self.model.stats(x.to(self.device))
        return {"U": u, "eta": self.model.hidden(u)}
