"""Gradient evaluations, counted where they happen, for compute-matched comparisons.

One gradient evaluation = grad_x U at one point (one chain, one step). Every sampler of
the suite that computes such a gradient calls :func:`count_grad_evals` with the number of
points (ULA's ``energy_and_grad`` does it for every Langevin method); the training loop
and the sample stage read :func:`grad_evals` before and after, so the tables can state
a comparison "at equal gradient evaluations", training and generation separately.
A process-wide counter: every job is its own process.
"""

from __future__ import annotations

_count = [0]


def count_grad_evals(n: int) -> None:
    _count[0] += int(n)


def grad_evals() -> int:
    return _count[0]
