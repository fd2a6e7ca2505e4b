"""The unadjusted Langevin algorithm (ULA), the one Langevin sampler of the suite.

x' = x - h * gamma(grad) * grad U(x) + sqrt(2 h gamma(grad) T) * xi,   xi ~ N(0, I)

With gamma = 1 this is ULA with step h targeting exp(-U/T) (docs/sources.md: a chain
with noise std sigma and step h targets T = sigma^2 / (2h)). Nijkamp et al.'s short-run
setting "x <- x + grad f + 0.01 xi" is h = 1, T = 5e-5. The temperature is explicit so
that anything reweighting the chain (Jarzynski weights) uses U/T, the law actually run.

``step_rule`` maps the gradient to a per-element factor gamma in (0, 1] on the step: this
is how STANLEY's anisotropic step (paper 002, Eq. 5-6) reuses this sampler.

``metropolis = True`` turns every move into a Metropolis-adjusted one (MALA; with a step
rule, paper 002's Eq. 17 correction): the ULA move is a proposal
y ~ q(. | x) = N(x - h(x) d(x), 2 h(x) T), h(x) = h0 gamma(grad U(x)), accepted with
probability min(1, exp(-(U(y) - U(x)) / T) q(x | y) / q(y | x)), where the reverse
proposal q(x | y) uses the step size **at the proposed point** y. Then exp(-U / T) is
invariant exactly, for any step rule (without the correction a position-dependent step
leaves it invariant only to O(h), and STANLEY's gamma makes that bias O(1) where it
bites: docs/stanley.md). With ``clamp`` the target is exp(-U / T) restricted to the box:
proposals outside it are rejected, not projected. Cost: the proposal's energy and
gradient come from one autograd pass, counted as one gradient evaluation per chain by
:func:`~ebm_bench.samplers.counting.energy_and_grad`; :meth:`ULA.run` reuses the current
point's energy and gradient across steps, so K MH steps cost K + 1 gradient evaluations
per chain against K for ULA (a lone :meth:`ULA.step` costs 2). ``n_proposed`` /
``n_accepted`` count proposals and
acceptances (per chain) since the last :meth:`reset_acceptance`; :attr:`accept_rate` is
what the Langevin methods log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ebm_bench.core.progress import Task
from ebm_bench.samplers.counting import energy_and_grad

Energy = Callable[[torch.Tensor], torch.Tensor]
StepRule = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ULA:
    step_size: float
    temperature: float = 1.0
    grad_clip: float | None = None  # clamp each gradient element to [-c, c] (optional)
    clamp: tuple[float, float] | None = None  # keep image chains in a box after each step (clamp_rule)
    # how ``clamp`` keeps chains in the box: "project" clamps each coordinate onto it;
    # "reject" keeps a coordinate's old value where the move takes it outside (paper 003's
    # reference code, MNIST_code/Sampler.py and CIFAR-10_code/Sampler.py)
    clamp_rule: str = "project"
    step_rule: StepRule | None = None
    metropolis: bool = False  # Metropolis-adjust every move (MALA / STANLEY + MH)
    n_proposed: int = field(default=0, repr=False, compare=False)
    n_accepted: int = field(default=0, repr=False, compare=False)

    @property
    def noise_std(self) -> float:
        return math.sqrt(2.0 * self.step_size * self.temperature)

    @property
    def accept_rate(self) -> float | None:
        """Fraction of accepted MH proposals since :meth:`reset_acceptance` (None: none made)."""
        return self.n_accepted / self.n_proposed if self.n_proposed else None

    def reset_acceptance(self) -> None:
        self.n_proposed = self.n_accepted = 0

    def step(
        self, energy: Energy, x: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One move; returns (x', U(x), grad U(x)) so callers can reuse U and grad at x."""
        u, g = energy_and_grad(energy, x)
        if self.metropolis:
            return self.mh_move(energy, x, u, g, gen)[0], u, g
        return self.move(x, g, gen), u, g

    def step_sizes(self, g: torch.Tensor) -> torch.Tensor:
        """h(x) = h0 gamma(g) broadcast to g's shape (h0 without a step rule)."""
        if self.step_rule is None:
            return torch.full_like(g, self.step_size)
        return (self.step_size * self.step_rule(g)).expand_as(g)

    def log_proposal(self, y: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """ln q(y | x) per chain, up to a constant: N(y; x - h(x) d(x), 2 h(x) T), h and d
        taken at x (g = grad U(x))."""
        h = self.step_sizes(g)
        var = 2.0 * h * self.temperature
        r = y - x + h * self.drift(g)
        return (-0.5 * r * r / var - 0.5 * torch.log(var)).flatten(1).sum(1)

    def mh_move(self, energy: Energy, x: torch.Tensor, u: torch.Tensor, g: torch.Tensor, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One Metropolis-adjusted move from x (with U(x) = u, grad U(x) = g): returns the new
        state and U, grad U there (reused by :meth:`run`)."""
        h = self.step_sizes(g)
        xi = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        y = (x - h * self.drift(g) + torch.sqrt(2.0 * h * self.temperature) * xi).detach()
        u_y, g_y = energy_and_grad(energy, y)
        log_a = -(u_y - u) / self.temperature + self.log_proposal(x, y, g_y) - self.log_proposal(y, x, g)
        accept = torch.log(torch.rand(log_a.shape, generator=gen, device=x.device, dtype=log_a.dtype)) < log_a
        if self.clamp is not None:
            inside = ((y >= self.clamp[0]) & (y <= self.clamp[1])).flatten(1).all(1)
            accept = accept & inside
        self.n_proposed += int(accept.numel())
        self.n_accepted += int(accept.sum())
        a = accept.view(-1, *[1] * (x.dim() - 1))
        return torch.where(a, y, x).detach(), torch.where(accept, u_y, u), torch.where(a, g_y, g)

    def drift(self, g: torch.Tensor) -> torch.Tensor:
        """The drift actually applied for gradient ``g`` (clamped when ``grad_clip`` is set)."""
        return g if self.grad_clip is None else g.clamp(-self.grad_clip, self.grad_clip)

    def move(self, x: torch.Tensor, g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The transition from ``x`` given ``g = grad U(x)`` already computed.

        ``step`` is ``energy_and_grad`` followed by ``move``; callers that need U and grad U
        at ``x`` before deciding to move (SMC resampling, paper 003 Alg. 1 line 10) compute
        them once and call ``move`` without a second gradient pass.
        """
        drift = self.drift(g)
        h = self.step_size if self.step_rule is None else self.step_size * self.step_rule(g)
        xi = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        if self.step_rule is None:  # x - h d + s xi, evaluated in that order, without temporaries
            with torch.no_grad():
                x_new = torch.mul(drift, h)
                torch.sub(x, x_new, out=x_new)
                x_new.add_(xi.mul_(self.noise_std))
        else:
            x_new = x - h * drift + torch.sqrt(2.0 * h * self.temperature) * xi
        return self.bound(x, x_new).detach()

    def bound(self, x: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
        """Apply ``clamp`` to a move x -> x_new with ``clamp_rule`` (identity without clamp)."""
        if self.clamp is None:
            return x_new
        lo, hi = self.clamp
        if self.clamp_rule == "reject":
            return torch.where((x_new > hi) | (x_new < lo), x, x_new)
        return x_new.clamp(lo, hi)

    def run(self, energy: Energy, x: torch.Tensor, n_steps: int, gen: torch.Generator,
            what: str = "ULA step") -> torch.Tensor:
        """``n_steps`` moves from ``x``; a progress task named ``what`` (a long generation
        or burn-in prints a line at least once a minute, nested in the caller's task)."""
        with Task(what, n_steps) as task:
            if self.metropolis and n_steps > 0:
                u, g = energy_and_grad(energy, x)
                for k in range(n_steps):
                    x, u, g = self.mh_move(energy, x, u, g, gen)
                    task.tick(k + 1)
                return x
            for k in range(n_steps):
                x, _, _ = self.step(energy, x, gen)
                task.tick(k + 1)
            return x
