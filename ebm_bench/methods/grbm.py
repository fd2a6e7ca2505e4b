"""Gaussian-Bernoulli RBM with learned per-pixel variance, trained with Gibbs-Langevin.

Liao et al. (2022), "Gaussian-Bernoulli RBMs without tears" (the GRBM baseline of paper
004, Table 2), with v = x flattened, sigma^2 = exp(log_var)::

    E(v, h) = 1/2 sum_i (v_i - mu_i)^2 / sigma_i^2 - (v / sigma^2)^T W h - b^T h,
    p(h | v) = Bern(sigmoid(W^T (v / sigma^2) + b)),   p(v | h) = N(mu + W h, diag(sigma^2)).

Training: z ~ p(h | v_data) (sampled, as the reference code does) and negatives from the
shared :class:`~ebm_bench.samplers.gibbs_langevin.GibbsLangevin` sampler started from
N(0, I) every update (``gibbs_steps`` Gibbs steps of ``langevin_steps`` Langevin steps
with the reference's cosine step schedule); the negative statistics are averaged over the
Gibbs steps from ``neg_burn_in`` on (reference: CD_burnin = 0, i.e. all of them); loss =
mean E(data) - mean E(negatives), autograd gives the reference's closed-form gradients
(tested); SGD with gradient-norm clipping; optional cosine learning-rate decay.

Step size: as in the reference code, the Langevin step is ``step_size`` times the mean
visible variance, eps = step_size * mean(sigma^2), so ``step_size`` is dimensionless.
Pixel i's Gaussian conditional contracts by eps / sigma_i^2 per step, so a pixel whose
learned variance is far below the mean (the always-background pixels of digits) makes
the x-moves unstable at any step that moves the others. ``precondition: true`` (ours, not
in the reference) uses the per-pixel step eps_i = step_size * sigma_i^2 (preconditioned
ULA with a constant diagonal, same target): every pixel then contracts by step_size per
step, stable for step_size < 2 at T = 1.

Temperature. The reference code divides grad_v E by the batch size B but keeps the noise
sqrt(2 eps): it runs ULA with step eps/B at temperature B (512 in training, the sampling
batch 100 at generation), not the model's T = 1. Here the sampler runs at ``temperature``
(default 1, the model); ``reference_temperature_quirk: true`` reproduces the reference
behaviour exactly (ULA at eps/B, T*B). With the quirk the reference's MNIST setting is
``step_size: 20``; without it the same *drift* per step is ``step_size: 20/512`` (our
default), and the noise is then the correct sqrt(2 eps).

Generation (reference code): v ~ N(0, I), h ~ p(h | v), ``sample_gibbs_steps`` Gibbs-
Langevin steps, output the conditional mean mu + W h of the last h (``sample_output:
mean``; ``sample`` outputs the last v). ``sample_init: data`` starts h from data instead
(paper 004's Alg. 2). Reference MNIST settings (github.com/DSL-Lab/GRBM
``config/mnist.json``): 4096 hidden units, 100 Gibbs x 10 Langevin steps, SGD lr 0.01,
clip 10, batch 512. Features for the linear probe:
``hidden_probs`` = p(h = 1 | v).

Against the authors' code (github.com/DSL-Lab/GRBM; ``ebm-bench bench reference --method
grbm``, docs/reference-equivalence.md rows 25-36) the update matches to ~1e-13 with
``reference_temperature_quirk``, ``step_size: 20``, the per-epoch schedule of its
CosineAnnealingLR (``lr_schedule_every`` = updates per epoch) and its pixels
(``pixel_mean`` / ``pixel_std``: v = ((x + 1) / 2 - mean) / std, i.e. ``Normalize`` of [0, 1]
pixels; samples are mapped back to x in [-1, 1]).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ebm_bench.core import validation as V
from ebm_bench.core.progress import Task
from ebm_bench.samplers.gibbs_langevin import DataBank, GibbsLangevin
from ebm_bench.methods.base import DataInfo, register_method
from ebm_bench.methods.harmonium import HarmoniumMethod

GRBM_DEFAULTS: dict[str, Any] = {
    "n_hidden": 4096,
    "init_var": 1.0,  # initial sigma^2; W ~ N(0, (init_var / sqrt(d + h))^2) (reference)
    "optimizer": "sgd",  # "sgd" (reference) | "adam"
    "lr": 0.01,
    "momentum": 0.0,  # SGD momentum (reference: 0); Adam beta1 when optimizer = adam
    "grad_clip_norm": 10.0,  # clip_grad_norm_ of the parameter gradient; None: off
    "lr_decay_steps": 0,  # cosine decay of lr to 0 over this many updates; 0: constant lr
    # updates per schedule step: the rate changes every `lr_schedule_every` updates (1: every
    # update); the reference steps CosineAnnealingLR(T_max = epochs) once per epoch (main.py)
    "lr_schedule_every": 1,
    "gibbs_steps": 100,  # CD_step
    "langevin_steps": 10,
    "step_size": 20.0 / 512.0,  # eps / mean(sigma^2): the reference's drift (Langevin_eta 20 / B 512)
    "step_schedule": "cosine",  # per Gibbs step (reference); or "constant"
    "precondition": False,  # True: per-pixel step eps_i = step_size * sigma_i^2 (not in the reference)
    "temperature": 1.0,
    "reference_temperature_quirk": False,  # True: dE/dv / B, noise sqrt(2 eps) -> temperature T * B
    "neg_burn_in": 0,  # negatives = Gibbs states from this step on (0: all; gibbs_steps - 1: last)
    "init_std": 1.0,  # chains start at v ~ N(0, init_std^2 I)
    "sample_gibbs_steps": 99,  # reference: sampling_steps 100 = 99 Gibbs-Langevin steps + mean
    "sample_init": "noise",  # "noise" (reference) | "data" (paper 004 Alg. 2)
    "sample_output": "mean",  # "mean": mu + W h of the last h (reference) | "sample": last v
    "data_bank_size": 1000,  # training examples kept for sample_init = data
    # the visible units: v = x (null), or the reference's pixels v = ((x + 1) / 2 - mean) / std
    # per channel (main.py: transforms.ToTensor then Normalize(img_mean, img_std) from its
    # config json; MNIST 0.1307, 0.3081) for our x in [-1, 1]; samples are mapped back to x
    "pixel_mean": None,
    "pixel_std": None,
    "sample_batch": 500,
}


class GRBMEnergy(nn.Module):
    def __init__(self, d: int, n_hidden: int, init_var: float, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(d, n_hidden, generator=g) * init_var / math.sqrt(d + n_hidden))
        self.b = nn.Parameter(torch.zeros(n_hidden))
        self.mu = nn.Parameter(torch.zeros(d))
        self.log_var = nn.Parameter(torch.full((d,), math.log(init_var)))

    def var(self) -> torch.Tensor:
        return self.log_var.exp().clamp(min=1e-8)

    def hidden_logits(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) / self.var()) @ self.W + self.b

    def joint_energy(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        v, var = x.flatten(1), self.var()
        return 0.5 * ((v - self.mu) ** 2 / var).sum(1) - (((v / var) @ self.W) * z).sum(1) - z @ self.b

    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)
        return 0.5 * ((v - self.mu) ** 2 / self.var()).sum(1) - F.softplus(self.hidden_logits(x)).sum(1)

    def visible_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[v | h] = mu + W h."""
        return z @ self.W.T + self.mu


@register_method("grbm")
class GRBM(HarmoniumMethod):
    """Gaussian-Bernoulli RBM, learned variances, Gibbs-Langevin (Liao et al. 2022; paper 004 baseline)."""

    defaults = GRBM_DEFAULTS
    # added with the reference comparison; 1 / None reproduce the updates from before them
    neutral = ("lr_schedule_every", "pixel_mean", "pixel_std")
    probe_untrained_control = True
    checks = {
        "n_hidden": V.count(), "init_var": V.positive(), "optimizer": V.choice("sgd", "adam"),
        "lr": V.positive(), "momentum": V.number(ge=0, lt=1), "grad_clip_norm": V.positive(nullable=True),
        "lr_decay_steps": V.count(0), "lr_schedule_every": V.count(), "gibbs_steps": V.count(),
        "langevin_steps": V.count(),
        "step_size": V.positive(), "step_schedule": V.choice("cosine", "constant"), "temperature": V.positive(),
        "neg_burn_in": V.count(0), "init_std": V.positive(), "sample_gibbs_steps": V.count(0),
        "sample_init": V.choice("noise", "data"), "sample_output": V.choice("mean", "sample"),
        "data_bank_size": V.count(), "sample_batch": V.count(),
        "pixel_mean": V.list_of(V.number(), min_len=1, nullable=True),
        "pixel_std": V.list_of(V.positive(), min_len=1, nullable=True),
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if int(params["neg_burn_in"]) >= int(params["gibbs_steps"]):
            from ebm_bench.core.errors import ConfigError

            raise ConfigError(f"neg_burn_in = {params['neg_burn_in']}; expected < gibbs_steps = {params['gibbs_steps']}")
        mean, std = params.get("pixel_mean"), params.get("pixel_std")
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            from ebm_bench.core.errors import ConfigError

            raise ConfigError(f"pixel_mean = {mean}, pixel_std = {std}: expected both null or lists of one length")
    tiny = {"n_hidden": 8, "gibbs_steps": 2, "langevin_steps": 2, "sample_gibbs_steps": 2, "data_bank_size": 32}

    def __init__(self, params: dict[str, Any], data: DataInfo, device, seed: int):
        super().__init__(params, data, device, seed)
        p = self.params
        for key, allowed in (("sample_init", ("noise", "data")), ("sample_output", ("mean", "sample"))):
            if p[key] not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {p[key]!r}")
        if not 0 <= int(p["neg_burn_in"]) < int(p["gibbs_steps"]):
            raise ValueError(f"neg_burn_in must be in [0, gibbs_steps), got {p['neg_burn_in']}")
        self.pixel = None  # (mean, std) shaped to broadcast over x, or None: v = x
        if p["pixel_mean"] is not None:
            self.check_params(p)
            c = len(p["pixel_mean"])
            if c != 1 and not (data.is_image and c == data.shape[0]):
                raise ValueError(f"pixel_mean has {c} values; expected 1 or one per channel of {data.shape}")
            view = (c, *[1] * (len(data.shape) - 1)) if c > 1 else (1,)
            self.pixel = tuple(torch.tensor([float(v) for v in p[k]], device=self.device).view(view)
                               for k in ("pixel_mean", "pixel_std"))
        d = math.prod(data.shape)
        self.model = GRBMEnergy(d, int(p["n_hidden"]), float(p["init_var"]), self.seed).to(self.device)
        if p["optimizer"] not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {p['optimizer']!r}")
        self.sampler = GibbsLangevin(
            gibbs_steps=int(p["gibbs_steps"]),
            langevin_steps=int(p["langevin_steps"]),
            step_size=float(p["step_size"]),
            temperature=float(p["temperature"]),
            schedule=p["step_schedule"],
            batch_normalised_grad=bool(p["reference_temperature_quirk"]),
            init_std=float(p["init_std"]),
        )
        self.bank = DataBank(int(p["data_bank_size"]), data.shape, data.is_image, self.device)
        self.sampler_steps_per_iter = int(p["gibbs_steps"]) * int(p["langevin_steps"])

    # --- model ------------------------------------------------------------------------------
    def to_visible(self, x: torch.Tensor) -> torch.Tensor:
        """v from x in [-1, 1]: x, or ((x + 1) / 2 - mean) / std with ``pixel_mean`` / ``pixel_std``."""
        if self.pixel is None:
            return x
        mean, std = (t.to(x.dtype) for t in self.pixel)
        return ((x + 1.0) / 2.0 - mean) / std

    def from_visible(self, v: torch.Tensor) -> torch.Tensor:
        """x from v (the inverse of :meth:`to_visible`)."""
        if self.pixel is None:
            return v
        mean, std = (t.to(v.dtype) for t in self.pixel)
        return (v * std + mean) * 2.0 - 1.0

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Marginal free energy F(v) of v = to_visible(x) (density exp(-F) at T = 1)."""
        return self.model.free_energy(self.to_visible(x))

    def step_scale(self) -> float:
        return float(self.model.var().mean().detach())

    def precond(self) -> torch.Tensor | None:
        """sigma_i^2 / mean(sigma^2) per pixel with ``precondition``, so eps_i = step_size * sigma_i^2."""
        if not self.params["precondition"]:
            return None
        var = self.model.var().detach()
        return (var / var.mean()).view(self.data.shape)

    def contrastive_loss(self, x_pos, z_pos, x_neg, z_neg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e_pos = self.model.joint_energy(x_pos, z_pos.detach())
        e_neg = self.model.joint_energy(x_neg.detach(), z_neg.detach())
        return e_pos.mean() - e_neg.mean(), e_pos, e_neg

    def make_optimizer(self) -> torch.optim.Optimizer:
        p = self.params
        if p["optimizer"] == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=p["lr"], momentum=p["momentum"])
        return torch.optim.Adam(self.model.parameters(), lr=p["lr"], betas=(p["momentum"], 0.999))

    def lr_at(self, step: int) -> float:
        """lr (1 + cos(pi t)) / 2, t = min(E floor((step - 1) / E), D) / D (D = ``lr_decay_steps``,
        E = ``lr_schedule_every``): the reference's CosineAnnealingLR(T_max = epochs), stepped
        once per epoch (github.com/DSL-Lab/GRBM, main.py), is E = updates per epoch, D = epochs * E."""
        total = int(self.params["lr_decay_steps"])
        if total <= 0:
            return float(self.params["lr"])
        every = int(self.params["lr_schedule_every"])
        t = min(every * ((step - 1) // every), total) / total
        return float(self.params["lr"]) * 0.5 * (1.0 + math.cos(math.pi * t))

    # --- contract -----------------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        self.bank.add(batch.to(self.device))
        x = self.to_visible(batch.to(self.device))
        z = self.sampler.sample_hidden(self.model, x, self.gen)
        xs, zs = self.sampler.train_chains(self.model, x.shape[0], self.data.shape, self.gen, self.device,
                                           step_scale=self.step_scale(), keep_from=int(self.params["neg_burn_in"]),
                                           precond=self.precond())
        x_neg, z_neg = torch.cat(xs), torch.cat(zs)
        loss, e_pos, e_neg = self.contrastive_loss(x, z, x_neg, z_neg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.params["grad_clip_norm"]:
            nn.utils.clip_grad_norm_(self.model.parameters(), float(self.params["grad_clip_norm"]))
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(step)
        self.opt.step()
        return {
            "loss": float(loss.detach()),
            "energy_data": float(e_pos.mean().detach()),
            "energy_model": float(e_neg.mean().detach()),
            "sample_absmax": float(xs[-1].abs().max()),
            "var_mean": self.step_scale(),
        }

    def sample(self, n: int) -> torch.Tensor:
        sampler = replace(self.sampler, gibbs_steps=int(self.params["sample_gibbs_steps"]))
        out = []
        with Task("chains", n) as task:  # generation: a progress task over the chains done
            for start in range(0, n, self.params["sample_batch"]):
                task.tick(start)
                m = min(self.params["sample_batch"], n - start)
                if self.params["sample_init"] == "data" and len(self.bank) > 0:
                    x0, z0 = sampler.init_test(self.model, self.to_visible(self.bank.draw(m, self.gen).to(self.device)),
                                               self.gen)
                else:
                    x0, z0 = sampler.init_train(self.model, m, self.data.shape, self.gen, self.device)
                x, z = sampler.run(self.model, x0, z0, self.gen, step_scale=self.step_scale(), precond=self.precond())
                if self.params["sample_output"] == "mean":
                    with torch.no_grad():
                        x = self.model.visible_mean(z).view(m, *self.data.shape)
                out.append(self.from_visible(x))
        return torch.cat(out)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hidden_probs": torch.sigmoid(self.model.hidden_logits(self.to_visible(x.to(self.device))))}
