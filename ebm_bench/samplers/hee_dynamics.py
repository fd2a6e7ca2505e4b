"""Continuous-time neural sampling dynamics of HEE (paper 000, supplement), integrated by
Euler-Maruyama (supp. Sec. 3: step dt = 0.01 tau_x).

Three moves, each vectorised over chains (rows) and units (columns); ``tau`` may be a
scalar or a per-unit tensor broadcast against the state:

First-order Langevin (the inference dynamics of the main text)::

    tau dz/dt = grad_z ln p(z) + sqrt(2 tau) xi
    z' = z + (dt / tau) grad + sqrt(2 dt / tau) n,          n ~ N(0, I)

Second-order Langevin with the auxiliary ("adaptation") variable v, supp. Eq. 4-5::

    tau_z dz/dt = grad_z ln p(z) - v + sqrt(2 tau_z) xi          (Eq. 4)
    tau_v dv/dt = -m v + 2 m sqrt(2 tau_z) xi                     (Eq. 5, same xi)

The supplement's text of Eq. 5 is garbled in our copy; the form above is the one that Eq.
6-7 define: d(z, v)/dt = (D + Q) grad ln p~(z, v) + sqrt(2 D) xi with
grad_v ln p~ = -tau_v v / (4 m tau_z), D = [[I / tau_z, 2m / tau_v], [2m / tau_v,
4 m^2 tau_z / tau_v^2]] and Q = [[0, 2m / tau_v], [-2m / tau_v, 0]]. Then z's drift is
(grad - v) / tau_z, v's drift is -m v / tau_v, and since D has rank one (D = a a^T with
a = (1 / sqrt(tau_z), 2 m sqrt(tau_z) / tau_v)) the noise sqrt(2 D) xi is ONE white noise
per unit entering z with gain sqrt(2 / tau_z) and v with gain 2 m sqrt(2 tau_z) / tau_v.
This shared noise is what makes p~(z, v) = p(z | x) N(v; 0, 4 m tau_z / tau_v) stationary
(Eq. 12-13); with independent noises the z-marginal is over-dispersed (tested). EM step::

    z' = z + (dt / tau_z)(grad - v) + sqrt(2 dt / tau_z) n
    v' = v - (dt m / tau_v) v + (2 m sqrt(2 tau_z) / tau_v) sqrt(dt) n      (same n)

Euler-Maruyama is consistent: the stationary law of the recursion tends to p(z | x)
N(v; 0, 4 m tau_z / tau_v) as dt -> 0 (O(dt) bias; for Gaussian targets the exact
stationary covariance of the recursion is a discrete Lyapunov fixed point, see
:func:`stationary_cov_linear`, and the tests check both that the simulation matches it
and that its distance to the posterior shrinks linearly in dt).

Note (derived here, measured by ``ebm-bench bench hee_inference``): v does not depend on
z, so E[v](t) = v(0) e^{-m t / tau_v}; for a Gaussian posterior E[z](t) therefore obeys the
same linear ODE as first-order Langevin whenever E[v(0)] = 0, and the noise z receives,
sqrt(2 / tau_z) xi - v / tau_z, is the white noise passed through the all-pass filter
(s - m / tau_v) / (s + m / tau_v): same power spectrum, so the same stationary
autocovariance of z. The second-order dynamics of the supplement do not mix faster on
Gaussian posteriors.

Interneurons (fast, time constant tau_u) run first-order Langevin on the conditional
exponential family p(u | eta) = exp(eta^T u + g(u) - A(eta)) with g(u) = -u^T Lambda u::

    tau_u du/dt = eta - (Lambda + Lambda^T) u + sqrt(2 tau_u) xi

so that u(t) is (for tau_u much faster than eta changes) a sample of p(. | eta) and its
average estimates A'(eta) = E[u] (supp. Eq. 3). For this Gaussian family the EM
recursion is linear with stationary mean exactly (2 Lambda)^{-1} eta (no discretisation
bias in the mean) and an O(dt / tau_u) bias in the variance only; the interneurons'
linear SDE can also be integrated exactly over each step (:func:`interneuron_step_exact`).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Tau = float | torch.Tensor


def _noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


def first_order_step(z: torch.Tensor, grad: torch.Tensor, tau: Tau, dt: float,
                     noise: torch.Tensor) -> torch.Tensor:
    """EM step of tau dz/dt = grad + sqrt(2 tau) xi (``noise`` ~ N(0, I), same shape as z)."""
    return z + (dt / tau) * grad + torch.sqrt(torch.as_tensor(2.0 * dt / tau)) * noise


def second_order_step(z: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, tau_z: Tau, tau_v: Tau,
                      m: float, dt: float, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """EM step of supp. Eq. 4-5 (one white noise per unit drives both z and v, Eq. 6-7)."""
    tz = torch.as_tensor(tau_z, dtype=z.dtype)
    z_new = z + (dt / tz) * (grad - v) + torch.sqrt(2.0 * dt / tz) * noise
    v_new = v - (dt * m / tau_v) * v + (2.0 * m * torch.sqrt(2.0 * tz) / tau_v) * math.sqrt(dt) * noise
    return z_new, v_new


def v_stationary_std(tau_z: Tau, tau_v: Tau, m: float) -> torch.Tensor:
    """Std of v's stationary law N(0, 4 m tau_z / tau_v) (supp. Eq. 12)."""
    return torch.sqrt(torch.as_tensor(4.0 * m * tau_z / tau_v))


def gaussian_family_drift(u: torch.Tensor, eta: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """grad_u ln p(u | eta) = eta + g'(u) for g(u) = -u^T Lambda u.

    ``precision`` is Lambda: a scalar / per-unit vector (g = -sum_i lambda_i u_i^2) or a
    symmetric (n, n) matrix (g = -u^T Lambda u, the learned quadratic term of the CIFAR-10
    setting, supp. Table 1).
    """
    if precision.ndim == 2:
        return eta - 2.0 * u @ precision  # Lambda symmetric
    return eta - 2.0 * precision * u


def interneuron_step(u: torch.Tensor, eta: torch.Tensor, precision: torch.Tensor, tau_u: float, dt: float,
                     gen: torch.Generator) -> torch.Tensor:
    """EM step of the interneurons: first-order Langevin on p(u | eta) (supp. Eq. 3)."""
    return first_order_step(u, gaussian_family_drift(u, eta, precision), tau_u, dt, _noise(u, gen))


def interneuron_step_exact(u: torch.Tensor, eta: torch.Tensor, precision: torch.Tensor, tau_u: float, dt: float,
                           gen: torch.Generator) -> torch.Tensor:
    """Exact solution over one step of the interneurons' SDE for the Gaussian family with
    per-unit precision (eta held fixed during the step): an Ornstein-Uhlenbeck process with
    rate r = 2 lambda / tau_u and stationary law N(eta / (2 lambda), 1 / (2 lambda)),

        u' = mu + e^{-r dt} (u - mu) + sqrt((1 - e^{-2 r dt}) / (2 lambda)) n.

    Stable and unbiased for any r dt, so the interneurons keep their physical speed
    (tau_u = 0.1 tau_x: ten times faster than x_l) even when a learned precision is large.
    """
    mean = eta / (2.0 * precision)
    a = torch.exp(-2.0 * precision * dt / tau_u)
    std = torch.sqrt((1.0 - a * a) / (2.0 * precision))
    return mean + a * (u - mean) + std * _noise(u, gen)


def run_langevin(grad_fn: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor, n_steps: int, dt: float,
                 tau_z: Tau, gen: torch.Generator, order: int = 1, m: float = 0.5, tau_v_factor: float = 0.5,
                 v0: torch.Tensor | None = None, record: Callable[[int, torch.Tensor, torch.Tensor | None], None]
                 | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Integrate first- (``order=1``) or second-order (``order=2``, supp. Eq. 4-5) Langevin
    dynamics on a target with score ``grad_fn(z) = grad_z ln p(z)`` for ``n_steps`` EM steps.

    v starts at ``v0`` (default: 0, i.e. adaptation at rest). ``record(step, z, v)`` is
    called after every step (for time averages and convergence curves). Returns (z, v).
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    tau_v = tau_v_factor * torch.as_tensor(tau_z, dtype=z0.dtype)
    z = z0.clone()
    v = (torch.zeros_like(z0) if v0 is None else v0.clone()) if order == 2 else None
    for step in range(1, n_steps + 1):
        n = _noise(z, gen)
        if order == 1:
            z = first_order_step(z, grad_fn(z), tau_z, dt, n)
        else:
            z, v = second_order_step(z, v, grad_fn(z), tau_z, tau_v, m, dt, n)
        if record is not None:
            record(step, z, v)
    return z, v


def stationary_cov_linear(precision: torch.Tensor, dt: float, tau_z: float, order: int, m: float = 0.5,
                          tau_v_factor: float = 0.5) -> torch.Tensor:
    """Exact stationary covariance of the EM recursion on a Gaussian target N(mu, P^{-1}).

    The recursion is linear, s' = M s + c + B n, so the stationary covariance solves the
    discrete Lyapunov equation S = M S M^T + B B^T (found by doubling). For ``order = 2``
    the state is (z, v) and the (2n, 2n) covariance is returned.
    """
    p = precision.double()
    n = p.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    if order == 1:
        mat = eye - (dt / tau_z) * p
        b = math.sqrt(2 * dt / tau_z) * eye
    else:
        tau_v = tau_v_factor * tau_z
        mat = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
        mat[:n, :n] = eye - (dt / tau_z) * p
        mat[:n, n:] = -(dt / tau_z) * eye
        mat[n:, n:] = (1 - dt * m / tau_v) * eye
        b = torch.cat([math.sqrt(2 * dt / tau_z) * eye, 2 * m * math.sqrt(2 * tau_z) / tau_v * math.sqrt(dt) * eye])
    q = b @ b.T
    s = q.clone()
    a = mat.clone()
    for _ in range(64):  # doubling: S = sum_k M^k Q M^kT
        s_new = s + a @ s @ a.T
        a = a @ a
        if torch.allclose(s_new, s, rtol=1e-13, atol=1e-15):
            s = s_new
            break
        s = s_new
    return s
