"""Shared base of the maximum-likelihood EBMs trained with Langevin negatives.

The learning signal is the contrastive MLE gradient (Nijkamp et al. 2019; paper 003
Eq. 4): grad_theta [ mean U(x_data) - mean U(x_model) ], the negatives coming from the
shared :class:`~ebm_bench.samplers.ULA` at temperature T. Subclasses differ only in where
the chains start and whether they persist (``negatives``), which is the whole difference
between short-run, PCD and CD.

A method with another loss (a score-matching one, no chains in training) subclasses
:class:`LangevinEBM` with ``EBM_DEFAULTS`` (everything but ``n_steps``) and overrides
``train_step``: it keeps the network, optimiser, schedule, checkpointing and generation
sampler, and reports 0 sampler steps per update. Only the sampler keys a method declares
are read.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ebm_bench.core import validation as V
from ebm_bench.core.errors import ConfigError
from ebm_bench.nets import build_net
from ebm_bench.core import precision
from ebm_bench.core.progress import Task
from ebm_bench.samplers.compiled import make_sampler
from ebm_bench.methods.base import DataInfo, Method

# Everything an energy network trained by gradient steps declares: the network, its
# optimiser and schedule, data noise, the Langevin sampler it generates with. Not the chain
# length per update: a method that runs no chains during training (a score-matching loss)
# declares no ``n_steps`` and builds on these.
EBM_DEFAULTS: dict[str, Any] = {
    "net": None,  # None: the dataset's default network
    "net_params": {},
    "lr": 1e-4,  # Adam, Nijkamp et al.
    "adam_beta1": 0.9,
    "step_size": 1.0,  # ULA step h; with T = 5e-5 this is Nijkamp's "step 1, noise 0.01"
    "temperature": 5e-5,
    "grad_clip": None,  # optional clamp of grad_x U in Langevin (paper 003's CIFAR runs)
    "metropolis": False,  # Metropolis-adjust every Langevin move (MALA; STANLEY + MH): samplers/ula.py
    "clamp": False,  # keep image chains in [-1, 1] after each step (clamp_rule says how)
    "clamp_rule": "project",  # project | reject (paper 003 reference code: a coordinate leaving [-1, 1] keeps its old value)
    # clip the parameter gradient's global L2 norm before the optimiser step (None: off);
    # paper 003's reference code trains through PyTorch Lightning with gradient_clip_val
    # (MNIST: 1, CIFAR-10: 1000), i.e. torch.nn.utils.clip_grad_norm_ over all parameters
    "param_grad_clip": None,
    "data_noise": 0.03,  # N(0, s^2) added to data batches (images only)
    "init_scale": 1.0,  # chains start from U[-s, s]
    "energy_reg": 0.0,  # IGEBM penalty weight on U(data)^2 + U(model)^2
    "sample_batch": 500,
    # optimiser (make_optimizer): paper 003 App. B.1 trains the GMM student by plain full-batch
    # gradient descent with one rate for z and another for the means
    "optimizer": "adam",  # adam | sgd
    "param_lr": {},  # parameter name -> learning rate overriding `lr` (e.g. {z: 0.125})
    "lr_times_h": False,  # multiply every rate by the ULA step h (paper 003 reference GMM code)
    # learning-rate schedule over the updates (schedule_lr): paper 003 decays Adam's 1e-4
    # linearly to 1e-10 over training (Sec. 4.2-4.3)
    "lr_schedule": "constant",  # constant | linear | cosine
    "lr_decay_steps": 0,  # updates over which the rate decays (then stays at the final rate)
    "lr_final_factor": 0.0,  # final rate / initial rate
    # updates per schedule step: the rate changes every `lr_schedule_every` updates (1: every
    # update); paper 003's reference code steps its LambdaLR once per epoch (MNIST: 77 updates)
    "lr_schedule_every": 1,
    # where persistent chains start (seed_chains): noise = U[-s, s] (init_chains); data = data
    # points drawn with replacement from the first batch (paper 003 Alg. 4, line 2)
    "chain_init": "noise",
    # speed (docs/performance.md): the K-step ULA loop compiled (none | torch_compile |
    # cuda_graph; samplers/compiled.py) and the training step's precision (fp32 | tf32 |
    # bf16; ebm_bench/core/precision.py). Defaults: eager, full float32 (bit-identical to before).
    "sampler_compile": "none",
    "train_precision": "fp32",
}
# the Langevin sampler's settings; a method that declares none of them has no sampler
SAMPLER_KEYS = ("step_size", "temperature", "grad_clip", "metropolis", "clamp", "clamp_rule", "sampler_compile")
# the maximum-likelihood EBMs: the negatives of an update come from K = n_steps Langevin steps
LANGEVIN_DEFAULTS: dict[str, Any] = {**EBM_DEFAULTS, "n_steps": 100}


LANGEVIN_CHECKS: dict[str, V.Check] = {
    "net": V.Check("str", nullable=True),
    "lr": V.positive(),
    "adam_beta1": V.number(ge=0, lt=1),
    "step_size": V.positive(),
    "temperature": V.positive(),
    "n_steps": V.count(),
    "grad_clip": V.positive(nullable=True),
    "data_noise": V.nonnegative(),
    "init_scale": V.positive(),
    "energy_reg": V.nonnegative(),
    "sample_batch": V.count(),
    "optimizer": V.choice("adam", "sgd"),
    "param_lr": V.Check("dict"),
    "lr_schedule": V.choice("constant", "linear", "cosine"),
    "lr_decay_steps": V.count(0),
    "lr_final_factor": V.number(ge=0, le=1),
    "lr_schedule_every": V.count(),
    "clamp_rule": V.choice("project", "reject"),
    "param_grad_clip": V.positive(nullable=True),
    "chain_init": V.choice("noise", "data"),
    # the persistent / restarting variants' keys (declared here once)
    "buffer_size": V.count(),
    "n_chains": V.count(0),
    "reinit_prob": V.probability(),
    "sample_steps": V.count(0),
}


class LangevinEBM(Method):
    """Base of the Langevin-trained EBMs (loss, optimiser, chains); registers nothing."""

    defaults = LANGEVIN_DEFAULTS
    checks = LANGEVIN_CHECKS
    tiny = {"n_steps": 3}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params.get("lr_schedule", "constant") != "constant" and int(params.get("lr_decay_steps", 0)) <= 0:
            raise ConfigError(f"lr_schedule = {params['lr_schedule']!r} needs lr_decay_steps >= 1, "
                              f"got {params.get('lr_decay_steps')}")
        rate = V.positive()
        bad = {k: v for k, v in (params.get("param_lr") or {}).items() if rate.problem(v) is not None}
        if bad:
            raise ConfigError(f"param_lr: rates must be finite numbers > 0, got {bad}")

    @classmethod
    def tiny_params(cls, data: DataInfo) -> dict[str, Any]:
        net = {"net": "convnet", "net_params": {"nf": 4}} if data.is_image else {
            "net": "mlp", "net_params": {"hidden": 16, "depth": 2}}
        return {**net, **cls.tiny}

    def __init__(self, params: dict[str, Any], data: DataInfo, device, seed: int):
        super().__init__(params, data, device, seed)
        p = self.params
        torch.manual_seed(self.seed)  # network initialisation is the only global-RNG use
        self.net = build_net(p["net"], data.shape, p["net_params"]).to(self.device)
        if p["train_precision"] != "fp32" and "weighted" in self.defaults and p["weighted"]:
            raise ConfigError("train_precision must be fp32 for weighted Jarzynski training: the walkers' energies "
                              "feed the weights (precision policy, docs/performance.md)")
        self.net = precision.network_forward(self.net, p["train_precision"], self.device)
        self.check_optimizer_params()
        self.chains_seeded = False
        self.sampler = self.make_langevin_sampler() if any(k in self.defaults for k in SAMPLER_KEYS) else None
        # sampler steps per update (the cost columns): K, or 0 for a method without chains in training
        self.sampler_steps_per_iter = int(p["n_steps"]) if "n_steps" in self.defaults else 0

    def make_langevin_sampler(self):
        """The ULA of the method's declared sampler keys; an undeclared one (a method
        declaring only ``step_size`` and ``temperature``) keeps its default in EBM_DEFAULTS."""
        s = {**{k: EBM_DEFAULTS[k] for k in SAMPLER_KEYS}, **{k: self.params[k] for k in SAMPLER_KEYS
                                                               if k in self.defaults}}
        return make_sampler(
            s["sampler_compile"],
            self.device,
            step_size=s["step_size"],
            temperature=s["temperature"],
            grad_clip=s["grad_clip"],
            clamp=(-1.0, 1.0) if s["clamp"] else None,
            clamp_rule=s["clamp_rule"],
            metropolis=bool(s["metropolis"]),
        )

    def check_optimizer_params(self) -> None:
        """Optimiser and schedule keys, checked at construction (the optimiser itself is
        built at the first update, see Method.opt)."""
        p = self.params
        if p["optimizer"] not in ("adam", "sgd"):
            raise ConfigError(f"optimizer = {p['optimizer']!r}; expected 'adam' or 'sgd'")
        unknown = set(p["param_lr"]) - {n for n, _ in self.net.named_parameters()}
        if unknown:
            raise ConfigError(f"param_lr names unknown parameters {sorted(unknown)}; "
                              f"the network has {sorted(n for n, _ in self.net.named_parameters())}")
        if p["lr_schedule"] not in ("constant", "linear", "cosine"):
            raise ConfigError(f"lr_schedule = {p['lr_schedule']!r}; expected 'constant', 'linear' or 'cosine'")
        if p["lr_schedule"] != "constant" and int(p["lr_decay_steps"]) <= 0:
            raise ConfigError(f"lr_schedule = {p['lr_schedule']!r} needs lr_decay_steps >= 1, got {p['lr_decay_steps']}")

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam (default) or plain SGD; ``param_lr`` gives named parameters their own rate,
        and ``lr_times_h`` multiplies every rate by the ULA step h (the GMM convention of
        paper 003's reference code, where rates are per unit of Langevin time)."""
        p = self.params
        names = dict(self.net.named_parameters())
        scale = float(p["step_size"]) if p["lr_times_h"] else 1.0
        if p["param_lr"]:
            groups = [{"params": [w], "lr": scale * float(p["param_lr"].get(n, p["lr"]))} for n, w in names.items()]
        else:  # one group: the optimiser state keeps the layout of earlier checkpoints
            groups = [{"params": list(names.values())}]
        if p["optimizer"] == "sgd":
            return torch.optim.SGD(groups, lr=scale * float(p["lr"]))
        return torch.optim.Adam(groups, lr=scale * float(p["lr"]), betas=(p["adam_beta1"], 0.999))

    def schedule_lr(self, step: int) -> None:
        """Set every parameter group's rate for update ``step`` (1-based) from its initial
        rate: lr_k = lr_0 (f + (1 - f) s(t)), t = min(E floor((k - 1) / E), D) / D (E =
        ``lr_schedule_every``, 1 by default), s = 1 - t (linear) or
        (1 + cos(pi t)) / 2 (cosine). Stateless in ``step``, so a resumed run gets the same
        rates as an uninterrupted one (the initial rates travel in the optimiser state)."""
        p = self.params
        kind, total = p["lr_schedule"], int(p["lr_decay_steps"])
        if kind == "constant":
            return
        every = int(p["lr_schedule_every"])
        t = min(every * (max(step - 1, 0) // every), total) / total
        s = 1.0 - t if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))
        f = float(p["lr_final_factor"])
        for group in self.opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * (f + (1.0 - f) * s)

    def clip_param_grads(self) -> None:
        """``param_grad_clip``: scale the parameter gradient to global L2 norm <= c (what
        PyTorch Lightning's ``gradient_clip_val`` does), before every optimiser step."""
        c = self.params["param_grad_clip"]
        if c is not None:
            torch.nn.utils.clip_grad_norm_(list(self.net.parameters()), float(c))

    # --- energy and chains ------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def seed_chains(self, data: torch.Tensor) -> None:
        """Hook run once, at the first update, with the first (preprocessed) data batch.

        With ``chain_init: data`` a persistent chain store (``self.buffer``, e.g. PCD)
        restarts at data points drawn with replacement (paper 003 Alg. 4, line 2:
        X_0^i = SampleMultinomial(data)); methods without persistent chains ignore it.
        """
        if self.params["chain_init"] not in ("noise", "data"):
            raise ConfigError(f"chain_init = {self.params['chain_init']!r}; expected 'noise' or 'data'")
        buffer = getattr(self, "buffer", None)
        if self.params["chain_init"] == "data" and buffer is not None:
            idx = torch.randint(len(data), (len(buffer),), generator=self.gen, device=self.device)
            self.buffer = data[idx].detach().clone()

    def net_scalars(self) -> dict[str, float]:
        """Scalars the network itself exposes, logged every step (the GMM student's mass of
        mode a, paper 003 Fig. 1)."""
        mass = getattr(self.net, "mass_a", None)
        if not callable(mass):
            return {}
        with torch.no_grad():
            return {"mass_a": float(mass())}

    def exact_cross_entropy(self, e_data: torch.Tensor) -> dict[str, float]:
        """Paper 003 Eq. 16 on the training batch, for networks with an exact partition
        function (the GMM student, Eq. 15): H = log Z_theta + mean U_theta(x*), at the
        parameters that produced ``e_data`` (the same ones Jarzynski's Eq. 12 estimate uses).
        With the full data as batch (App. B.1) this is the exact cross-entropy of the data;
        logged only at T = 1, where the model density is exp(-U) / Z."""
        log_part = getattr(self.net, "log_partition", None)
        if not callable(log_part) or float(self.params["temperature"]) != 1.0:
            return {}
        with torch.no_grad():
            return {"cross_entropy_exact": float(log_part().double()) + float(e_data.detach().double().mean())}

    def init_chains(self, n: int) -> torch.Tensor:
        s = float(self.params["init_scale"])
        return self.uniform((n, *self.data.shape), -s, s)

    def negatives(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        if self.data.is_image and self.params["data_noise"] > 0:
            batch = batch + self.params["data_noise"] * self.noise_like(batch)
        return batch

    # --- contract -----------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        pos = self.preprocess(batch.to(self.device))
        if not self.chains_seeded:
            self.seed_chains(pos)
            self.chains_seeded = True
        self.sampler.reset_acceptance()
        neg = self.negatives(pos)
        accept = {} if self.sampler.accept_rate is None else {"accept_rate": self.sampler.accept_rate}
        e_pos, e_neg = self.energy(pos), self.energy(neg)
        loss = e_pos.mean() - e_neg.mean()
        if self.params["energy_reg"] > 0:
            if e_pos.shape == e_neg.shape:
                reg = (e_pos**2 + e_neg**2).mean()
            else:  # N' chains != batch size (paper 003's PCD with mini-batches: 256 chains, batch 512)
                reg = (e_pos**2).mean() + (e_neg**2).mean()
            loss = loss + self.params["energy_reg"] * reg
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        exact = self.exact_cross_entropy(e_pos)
        self.clip_param_grads()
        self.schedule_lr(step)
        self.opt.step()
        return {
            **exact,
            "loss": float(loss.detach()),
            "energy_data": float(e_pos.mean().detach()),
            "energy_model": float(e_neg.mean().detach()),
            "sample_absmax": float(neg.abs().max()),
            **accept,
            **self.net_scalars(),
        }

    def sample(self, n: int) -> torch.Tensor:
        out = []
        with Task("chains", n) as task:  # generation: a progress task over the chains done
            for start in range(0, n, self.params["sample_batch"]):
                task.tick(start)
                m = min(self.params["sample_batch"], n - start)
                out.append(self.sample_chains(m))
        return torch.cat(out)

    def sample_chains(self, n: int) -> torch.Tensor:
        """Generation protocol: fresh chains from the initial law, K steps (short-run)."""
        return self.sampler.run(self.energy, self.init_chains(n), self.params["n_steps"], self.gen)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"penultimate": self.net.features(x.to(self.device))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                "chains_seeded": self.chains_seeded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.net.load_state_dict(state["net"])
        self.load_optimizer_state(state["opt"])
        self.chains_seeded = bool(state.get("chains_seeded", True))
