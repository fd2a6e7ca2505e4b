"""``exact_energy``: no training; the energy IS the exact log-density of a 2D toy
(U = -ln p, T = 1), so a run scores a *sampler* on a fixed, known target (paper 002's
rings). The sampler is the shared ULA with the same keys as the Langevin methods:
``step_size``, ``stanley_threshold`` (null: plain ULA; else STANLEY's Eq. 5 rule,
``stanley_mode``), ``metropolis`` (MH correction), ``n_steps`` chain length from U[-s, s]
(``init_scale``). Variants of this method at matched ``step_size`` and ``n_steps`` compare
ULA, STANLEY and STANLEY + MH on the same target and the same gradient evaluations
(K per chain; K + 1 with MH), scored by ``exact_samples``; ``trace_steps`` lists chain
lengths at which the ``chain_trace`` family scores the same chains (a divergence against
gradient evaluations curve, one run).

``target`` holds the toy2d dataset params of the density (default: the rings of the
embedded suite, radii 1, 2, 3, std 0.1): it must be the run's dataset's density, which
:meth:`check_target` verifies against the dataset's exact log-density at evaluation.
``target: {density: standard_normal}`` is N(0, I) over any data shape (the method
contract's image runs; no dataset has it, so its runs score nothing against data).
"""

from __future__ import annotations

import math

from typing import Any

import torch

from ebm_bench.data.toy2d import Toy2D
from ebm_bench.core.errors import ConfigError
from ebm_bench.core.progress import Task
from ebm_bench.samplers import ULA
from ebm_bench.core import validation as V
from ebm_bench.samplers.stanley_step import MODES, StanleyStep
from ebm_bench.methods.base import DataInfo, Method, register_method


@register_method("exact_energy")
class ExactEnergy(Method):
    """No training: U = -ln p of the exact 2D toy density, for sampler-only comparisons."""
    defaults: dict[str, Any] = {
        "target": {"density": "rings"},  # toy2d params of the exact density
        "step_size": 0.01,
        "temperature": 1.0,
        "stanley_threshold": None,  # None: plain ULA; > 0: STANLEY's step rule (Eq. 5)
        "stanley_mode": "coordinate",
        "metropolis": False,
        "n_steps": 40,
        "init_scale": 4.0,
        "trace_steps": [],  # chain lengths scored by the chain_trace family
        "sample_batch": 1000,
    }
    checks = {"step_size": V.positive(), "temperature": V.positive(), "n_steps": V.count(1),
              "init_scale": V.positive(), "sample_batch": V.count(1), "stanley_mode": V.choice(*MODES),
              "stanley_threshold": V.positive(nullable=True)}
    tiny = {"n_steps": 3, "trace_steps": [1, 3]}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """``target``: toy2d params, checked by the toy2d dataset's own checks."""
        target = params["target"]
        if target.get("density") != "standard_normal":
            V.checked(Toy2D, target, "target")

    @classmethod
    def tiny_params(cls, data: DataInfo) -> dict[str, Any]:
        if tuple(data.shape) != (2,) or data.is_image:
            return {**cls.tiny, "target": {"density": "standard_normal"}}
        return dict(cls.tiny)

    def __init__(self, params: dict[str, Any], data: DataInfo, device, seed: int):
        super().__init__(params, data, device, seed)
        p = self.params
        if p["target"].get("density") == "standard_normal":
            d = math.prod(data.shape)
            self.log_density = lambda x: -0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)
        else:
            if tuple(data.shape) != (2,) or data.is_image:
                raise ConfigError("exact_energy: a toy2d target needs a 2D toy dataset (or target: "
                                  "{density: standard_normal})")
            density, locs, std, w = Toy2D._components({**Toy2D.defaults, **p["target"]})
            self.log_density = Toy2D.make_log_density(density, locs, std, w)
        if float(p["temperature"]) != 1.0:
            raise ConfigError("exact_energy: temperature must be 1 (the target is exp(-U) = p)")
        th = p["stanley_threshold"]
        self.sampler = ULA(step_size=float(p["step_size"]), temperature=1.0, metropolis=bool(p["metropolis"]),
                           step_rule=None if th is None else StanleyStep(float(th), p["stanley_mode"]))
        if any(int(k) < 0 for k in p["trace_steps"]):
            raise ConfigError(f"exact_energy: trace_steps must be >= 0, got {p['trace_steps']}")
        self.sampler_steps_per_iter = 0

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_density(x)

    def check_target(self, log_density) -> float:
        """Max |difference| of the two log-densities on a few points (0 when they agree)."""
        g = torch.Generator().manual_seed(0)
        x = 4 * (2 * torch.rand(256, 2, generator=g, dtype=torch.float64) - 1)
        return float((self.log_density(x) - log_density(x)).abs().max())

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        return {"trained": 0.0}  # nothing to learn: the energy is the exact target

    def init_chains(self, n: int) -> torch.Tensor:
        s = float(self.params["init_scale"])
        return self.uniform((n, *self.data.shape), -s, s)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        out = []
        with Task("chains", n) as task:  # generation: a progress task over the chains done
            for start in range(0, n, int(self.params["sample_batch"])):
                task.tick(start)
                m = min(int(self.params["sample_batch"]), n - start)
                out.append(self.sampler.run(self.energy, self.init_chains(m), int(self.params["n_steps"]), self.gen))
        return torch.cat(out)

    @torch.no_grad()
    def sample_trace(self, n: int, steps: list[int], gen: torch.Generator) -> tuple[dict[int, torch.Tensor], float]:
        """The same n chains at each chain length in ``steps`` (one run of max(steps)),
        and the MH acceptance rate over the run (None without MH)."""
        s = float(self.params["init_scale"])
        x = -s + 2 * s * torch.rand((n, *self.data.shape), generator=gen, device=self.device)
        self.sampler.reset_acceptance()
        out, done = {}, 0
        for k in sorted(set(int(k) for k in steps)):
            x = self.sampler.run(self.energy, x, k - done, gen)
            done = k
            out[k] = x.clone()
        return out, self.sampler.accept_rate

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": x.reshape(len(x), -1).float()}
