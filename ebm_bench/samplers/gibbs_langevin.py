"""Gibbs-Langevin ("Langevin within Gibbs"), the one sampler of the GRBM and the NN-EFH.

Both models are harmoniums with Bernoulli hidden units z and a joint energy that is
affine in z (paper 004, Eq. 4-6; Liao et al. 2022 for the GRBM)::

    E(x, z) = V(x) - eta(x)^T z + (terms in x only),   p(z | x) = Bern(sigmoid(eta(x)))  (Eq. 5)

so the hidden conditional is exact and cheap, while the visible conditional p(x | z) is
sampled with Langevin dynamics (paper 004, Eq. 8)::

    x <- x - eps dE/dx(x, z) + sqrt(2 eps T) y,    y ~ N(0, I),

which is the suite's :class:`~ebm_bench.samplers.ULA` with step ``eps`` and temperature
``T`` on the energy ``x -> E(x, z)`` for the current z. One Gibbs step is L such Langevin
steps followed by one block draw of z from its exact conditional.

Persistence rules (paper 004, Sampling section, after Liao et al. 2022):

- the Langevin chain on x *persists across Gibbs steps* (step m starts where step m-1
  stopped; :meth:`GibbsLangevin.run` never re-initialises x) but *not across parameter
  updates*: a method calls :meth:`GibbsLangevin.train_chains` afresh every update;
- training (Alg. 1, lines 10-11): x ~ N(0, s^2 I), z ~ p(z | x);
- testing (Alg. 2, lines 3-4): x ~ N(0, s^2 I), but z ~ p(z | x_data) from data.

Temperature, precisely. The x-moves target exp(-E(x, z)/T) for fixed z (up to ULA's
discretisation bias). The z-draws use the model's posterior Eq. 5, i.e. temperature
``hidden_temperature`` = 1 by default, exactly as Algorithms 1 and 2 are written. With
T = 1 (the GRBM) the chain targets the model joint exp(-E); with T != 1 (NN-EFH's
T = 5e-5) it alternates x-moves at T with z-draws at 1 and has no invariant law of the
form exp(-E/T); set ``hidden_temperature = T`` for a chain that targets exp(-E/T) jointly.

The gradient of each x-move is the per-sample dE/dx. ``batch_normalised_grad`` reproduces
code that divides the energy (hence dE/dx) by the number of chains B but keeps the noise
sqrt(2 eps T) (github.com/DSL-Lab/GRBM ``grbm.py``, ``energy_grad_v``; docs/sources.md):
that is ULA with step eps / B at temperature T * B, and it is implemented as exactly that,
so the temperature stays explicit. B is the number of chains run (``normalising_batch =
None``, the GRBM reference code: 512 in training, 100 at generation) or a fixed number
(NN-EFH: the training batch size, so that generation with any number of chains runs the
training dynamics).
Normalising a *training loss* by the batch size (taking the mean over the batch) is a
different thing and leaves this sampler unchanged.

``schedule = "cosine"`` gives the GRBM reference code's per-Gibbs-step Langevin step
schedule eps_l = eps (1 + cos(pi l / L)) / 2, l = 0..L-1 (restarting every Gibbs step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ebm_bench.core.progress import Task
from ebm_bench.samplers.ula import ULA


class Harmonium(Protocol):
    """What the sampler needs from a model with Bernoulli hidden units."""

    def joint_energy(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """E(x, z) per sample, shape (batch,)."""

    def hidden_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Natural parameters eta(x) of p(z | x) = Bern(sigmoid(eta(x))), shape (batch, n_hidden)."""


def hidden_probs(model: Harmonium, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Exact conditional p(z_j = 1 | x) = sigmoid(eta_j(x) / temperature) (paper 004, Eq. 5)."""
    with torch.no_grad():
        return torch.sigmoid(model.hidden_logits(x) / temperature)


def sample_hidden(model: Harmonium, x: torch.Tensor, gen: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
    """Block draw z ~ p(z | x): independent Bernoullis, all from ``gen``."""
    p = hidden_probs(model, x, temperature)
    u = torch.rand(p.shape, generator=gen, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)


def cosine_schedule(step_size: float, n: int) -> list[float]:
    """Liao et al. (2022) reference code: eps_l = eps (1 + cos(pi l / n)) / 2, l = 0..n-1."""
    return [step_size * (1.0 + math.cos(math.pi * l / n)) / 2.0 for l in range(n)]


@dataclass
class GibbsLangevin:
    gibbs_steps: int  # M (paper 004) / CD_step (GRBM reference code)
    langevin_steps: int  # L
    step_size: float  # eps
    temperature: float = 1.0  # T of the x-moves
    schedule: str = "constant"  # "constant" | "cosine" (per Gibbs step)
    batch_normalised_grad: bool = False  # dE/dx / B with noise sqrt(2 eps T): ULA at (eps/B, T*B)
    normalising_batch: int | None = None  # B of batch_normalised_grad; None: the number of chains run
    hidden_temperature: float = 1.0  # temperature of the z-draws (1 = Alg. 1 and 2 as written)
    init_std: float = 1.0  # x ~ N(0, init_std^2 I) at the start of every chain
    grad_clip: float | None = None  # optional clamp of dE/dx elements (ULA option)

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")

    # --- the pieces ----------------------------------------------------------------------
    def step_sizes(self, scale: float = 1.0) -> list[float]:
        eps = self.step_size * scale
        if self.schedule == "cosine":
            return cosine_schedule(eps, self.langevin_steps)
        return [eps] * self.langevin_steps

    def ula(self, step_size: float, n_chains: int, precond: torch.Tensor | None = None) -> ULA:
        """The x-move actually run: ULA at (eps, T), or at (eps/B, T*B) for batch-normalised dE/dx.

        ``precond`` (broadcastable to x) makes the step per element, eps_i = eps * precond_i,
        noise sqrt(2 eps_i T): preconditioned ULA with a constant diagonal matrix, which has
        the same target (ULA's ``step_rule`` hook).
        """
        rule = None if precond is None else (lambda g: precond.expand_as(g))
        if self.batch_normalised_grad:
            b = self.normalisation(n_chains)
            return ULA(step_size=step_size / b, temperature=self.temperature * b,
                       grad_clip=self.grad_clip, step_rule=rule)
        return ULA(step_size=step_size, temperature=self.temperature, grad_clip=self.grad_clip, step_rule=rule)

    def normalisation(self, n_chains: int) -> int:
        """B of ``batch_normalised_grad``: ``normalising_batch``, else the number of chains."""
        return int(self.normalising_batch) if self.normalising_batch else int(n_chains)

    def effective_temperature(self, n_chains: int) -> float:
        """Temperature of the x-moves (T, or T * B with ``batch_normalised_grad``)."""
        return self.temperature * (self.normalisation(n_chains) if self.batch_normalised_grad else 1)

    def effective_step(self, n_chains: int) -> float:
        """Step of the x-moves (eps, or eps / B with ``batch_normalised_grad``)."""
        return self.step_size / (self.normalisation(n_chains) if self.batch_normalised_grad else 1)

    def sample_hidden(self, model: Harmonium, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return sample_hidden(model, x, gen, self.hidden_temperature)

    def langevin(self, model: Harmonium, x: torch.Tensor, z: torch.Tensor, gen: torch.Generator,
                 step_scale: float = 1.0, precond: torch.Tensor | None = None) -> torch.Tensor:
        """L Langevin steps on x for fixed z (Alg. 1 lines 13-16), vectorised over chains."""
        z = z.detach()

        def energy(v: torch.Tensor) -> torch.Tensor:
            return model.joint_energy(v, z)

        for eps in self.step_sizes(step_scale):
            x, _, _ = self.ula(eps, x.shape[0], precond).step(energy, x, gen)
        return x

    def run(self, model: Harmonium, x: torch.Tensor, z: torch.Tensor, gen: torch.Generator,
            step_scale: float = 1.0, keep_from: int | None = None, precond: torch.Tensor | None = None) -> Any:
        """M Gibbs steps from (x, z) (Alg. 1 lines 12-18; Alg. 2 lines 5-11).

        x persists across the Gibbs steps. Returns the final (x, z); with ``keep_from = k``
        returns the lists of states (x_m, z_m) for m = k..M-1 instead (the GRBM reference
        code averages its negative statistics over every Gibbs step, burn-in k = 0).
        ``step_scale`` multiplies eps (the GRBM scales it by the mean visible variance);
        ``precond`` is a per-element step factor (see :meth:`ula`).
        """
        xs, zs = [], []
        with Task("Gibbs step", self.gibbs_steps) as task:  # generation at paper size: minutes
            for m in range(self.gibbs_steps):
                x = self.langevin(model, x, z, gen, step_scale, precond)
                z = self.sample_hidden(model, x, gen)
                if keep_from is not None and m >= keep_from:
                    xs.append(x)
                    zs.append(z)
                task.tick(m + 1)
        if keep_from is not None:
            return xs, zs
        return x, z

    # --- the persistence rules of paper 004 ---------------------------------------------
    def noise(self, shape: tuple[int, ...], gen: torch.Generator, device, dtype=None) -> torch.Tensor:
        """x ~ N(0, s^2 I) in ``dtype``, torch's default dtype when None (float32 in the suite;
        float64 when ``bench reference`` runs the update against the reference code)."""
        return self.init_std * torch.randn(shape, generator=gen, device=device, dtype=dtype or torch.get_default_dtype())

    def init_train(self, model: Harmonium, n: int, shape: tuple[int, ...], gen: torch.Generator,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
        """Alg. 1 lines 10-11: x ~ N(0, s^2 I), z ~ p(z | x)."""
        x = self.noise((n, *shape), gen, device)
        return x, self.sample_hidden(model, x, gen)

    def init_test(self, model: Harmonium, x_data: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Alg. 2 lines 3-4: x ~ N(0, s^2 I), z ~ p(z | x_data)."""
        x = self.noise(tuple(x_data.shape), gen, x_data.device, x_data.dtype)
        return x, self.sample_hidden(model, x_data, gen)

    def train_chains(self, model: Harmonium, n: int, shape: tuple[int, ...], gen: torch.Generator, device,
                     step_scale: float = 1.0, keep_from: int | None = None,
                     precond: torch.Tensor | None = None) -> Any:
        """Fresh chains from noise for one parameter update (never persisted across updates)."""
        x, z = self.init_train(model, n, shape, gen, device)
        return self.run(model, x, z, gen, step_scale, keep_from, precond)

    def test_chains(self, model: Harmonium, x_data: torch.Tensor, gen: torch.Generator,
                    step_scale: float = 1.0, precond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation (Alg. 2): hidden units start from data, visible units from noise."""
        x, z = self.init_test(model, x_data, gen)
        return self.run(model, x, z, gen, step_scale, precond=precond)


class DataBank:
    """The training examples Alg. 2 starts the hidden units from at generation time.

    The method contract gives ``sample(n)`` no data, so a method keeps the last
    ``capacity`` training examples it was given (a ring buffer; the batches are uniform
    random draws of the training set, so the bank is a random sample of it). Images are
    stored as uint8 (256 levels of [-1, 1], the resolution of the image datasets) to keep
    checkpoints small; vectors as float32. The bank is part of the method's state.
    """

    def __init__(self, capacity: int, shape: tuple[int, ...], is_image: bool, device):
        self.capacity = int(capacity)
        self.is_image = bool(is_image)
        dtype = torch.uint8 if self.is_image else torch.float32
        self.data = torch.zeros((self.capacity, *shape), dtype=dtype, device=device)
        self.count = 0  # examples written so far

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_image:
            return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.float()

    def _decode(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 127.5 - 1.0 if self.is_image else x.float()

    def add(self, x: torch.Tensor) -> None:
        if self.capacity == 0:
            return
        x = x.detach()[-self.capacity:]
        idx = (self.count + torch.arange(len(x), device=self.data.device)) % self.capacity
        self.data[idx] = self._encode(x.to(self.data.device))
        self.count += len(x)

    def draw(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n stored examples: distinct when the bank holds at least n, else with replacement."""
        size = len(self)
        if size == 0:
            raise RuntimeError("the data bank is empty: train the method before sampling from data")
        if n <= size:
            idx = torch.randperm(size, generator=gen, device=self.data.device)[:n]
        else:
            idx = torch.randint(size, (n,), generator=gen, device=self.data.device)
        return self._decode(self.data[idx])

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data.clone(), "count": int(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.data = state["data"].to(self.data.device).clone()
        self.count = int(state["count"])
