"""Gradient evaluations, counted where they happen, for compute-matched comparisons.

One gradient evaluation = grad_x U at one point (one chain, one step). The one function
that takes grad_x U of an energy, :func:`energy_and_grad`, counts the points it takes it
at: every sampler step of ULA (every Langevin method), every Jarzynski walker update and a
method's own use (a score-matching loss) are counted without a line of their own. Samplers
that compute the gradient another way (compiled or fused kernels, HEE's closed-form
score) call :func:`count_grad_evals` with the number of points. The training loop and the
sample stage read :func:`grad_evals` before and after, so the tables can state a
comparison "at equal gradient evaluations", training and generation separately.
A process-wide counter: every job is its own process.
"""

from __future__ import annotations

from typing import Callable

import torch

_count = [0]


def count_grad_evals(n: int) -> None:
    _count[0] += int(n)


def grad_evals() -> int:
    return _count[0]


def energy_and_grad(energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """U(x) per sample and grad_x U(x), counted as one gradient evaluation per sample.

    ``create_graph=False`` (samplers): both come back detached and parameter gradients are
    not touched. ``create_graph=True`` (a loss of the gradient, e.g. denoising score
    matching, Vincent 2011 Eq. 4): both keep their graph, so the loss backpropagates to the
    energy's parameters; ``x`` itself is treated as a constant.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = energy(x)
        (g,) = torch.autograd.grad(u.sum(), x, create_graph=create_graph)
    count_grad_evals(x.shape[0] if x.dim() else 1)
    if create_graph:
        return u, g
    return u.detach(), g.detach()
