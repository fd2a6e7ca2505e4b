"""Continuous-time neural sampling dynamics of HEE (paper 000, supplement), integrated by
Euler-Maruyama (supp. Sec. 3: step dt = 0.01 tau_x).

Three moves, each vectorised over chains (rows) and units (columns); ``tau`` may be a
scalar or a per-unit tensor broadcast against the state:

First-order Langevin (the inference dynamics of the main text)::

    tau dz/dt = grad_z ln p(z) + sqrt(2 tau) xi
    z' = z + (dt / tau) grad + sqrt(2 dt / tau) n,          n ~ N(0, I)

Second-order Langevin with the auxiliary ("adaptation") variable v, supp. Eq. 4-13, in two
readings (``adaptation``). Both share Eq. 4 and the stationary law of Eq. 12-13,
p~(z, v) = p(z | x) N(v; 0, 4 m tau_z / tau_v), and both are instances of the complete
recipe d(z, v)/dt = (D + Q) grad ln p~ + sqrt(2 D) xi (D >= 0, Q antisymmetric; the
argument of Eq. 8-13 holds for any such pair; note the sign slip of supp. Eq. 11:
stationarity needs grad p = p grad ln p~). With g = grad_z ln p(z | x) and
grad_v ln p~ = -tau_v v / (4 m tau_z):

``literal`` (supp. Eq. 5-7 as printed; D of Eq. 7 has rank one)::

    tau_z dz/dt = g - v + sqrt(2 tau_z) xi                    (Eq. 4)
    tau_v dv/dt = -m v + 2 m sqrt(2 tau_z) xi                 (Eq. 5, the SAME xi)
    D = [[I / tau_z, 2m / tau_v], [2m / tau_v, 4 m^2 tau_z / tau_v^2]],  Q_12 = -Q_21 = 2m / tau_v

Since D = a a^T with a = (1 / sqrt(tau_z), 2 m sqrt(tau_z) / tau_v), the noise is ONE
white noise per unit entering z with gain sqrt(2 / tau_z) and v with gain
2 m sqrt(2 tau_z) / tau_v (with independent noises and this drift the z-marginal is
over-dispersed, ~5x in the slow direction). v is never driven by z: E[v](t) = v(0)
e^{-m t / tau_v}, so for a Gaussian posterior E[z](t) obeys first-order Langevin's ODE,
and the noise z receives, sqrt(2 / tau_z) xi - v / tau_z, is the white noise through the
all-pass filter (s - m / tau_v) / (s + m / tau_v): same spectrum, same stationary
autocovariance of z as first order (exactly in continuous time; O(dt) for the EM
recursion, tested). **The printed Eq. 7 cannot accelerate inference.**

``driven`` (Eq. 4, Eq. 12-13 and the adaptation literature: v driven by z, independent
noises)::

    tau_z dz/dt = g - v + sqrt(2 tau_z) xi_z
    tau_v dv/dt = -m v - 4 m g + 2 m sqrt(2 tau_z) xi_v       (xi_v independent of xi_z)
    D = diag(I / tau_z, 4 m^2 tau_z / tau_v^2 I),   Q_12 = -Q_21 = (4 m / tau_v) I

(check: z's drift (D_11 g + Q_12 grad_v) = (g - v) / tau_z; v's drift Q_21 g + D_22 grad_v
= -(4 m g + m v) / tau_v). On a Gaussian direction of posterior precision p the drift
matrix is [[-p, -1], [4 m p tau_z / tau_v, -m tau_z / tau_v]] / tau_z: at Table 1's
tau_v = tau_z / 2, m = 1/2 its slow eigenvalue is ~ -5 p / tau_z for small p, i.e. the
slowest posterior directions relax ~5x faster than under first order.

EM steps (``noise`` n ~ N(0, I); ``noise_v`` only for ``driven``)::

    z' = z + (dt / tau_z)(g - v) + sqrt(2 dt / tau_z) n
    literal: v' = v - (dt m / tau_v) v + (2 m sqrt(2 tau_z) / tau_v) sqrt(dt) n
    driven:  v' = v - (dt m / tau_v)(v + 4 g) + (2 m sqrt(2 tau_z) / tau_v) sqrt(dt) n_v

Euler-Maruyama is consistent for both: the stationary law of the recursion tends to
p(z | x) N(v; 0, 4 m tau_z / tau_v) as dt -> 0 (O(dt) bias; for Gaussian targets the
recursion is linear and its exact stationary covariance, autocovariance and integrated
autocorrelation time are computed from these step functions by
:mod:`ebm_bench.evaluation.hee_moments`, and the tests check that the bias halves with dt).

Gradient evaluations: every step evaluates g once per chain; :func:`run_langevin` and the
HEE method count them with :func:`~ebm_bench.samplers.counting.count_grad_evals`.

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

from ebm_bench.samplers.counting import count_grad_evals

Tau = float | torch.Tensor
ADAPTATIONS = ("literal", "driven")


def _noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


def first_order_step(z: torch.Tensor, grad: torch.Tensor, tau: Tau, dt: float,
                     noise: torch.Tensor) -> torch.Tensor:
    """EM step of tau dz/dt = grad + sqrt(2 tau) xi (``noise`` ~ N(0, I), same shape as z)."""
    return z + (dt / tau) * grad + torch.sqrt(torch.as_tensor(2.0 * dt / tau)) * noise


def second_order_step(z: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, tau_z: Tau, tau_v: Tau,
                      m: float, dt: float, noise: torch.Tensor, adaptation: str = "literal",
                      noise_v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """EM step of supp. Eq. 4-5: ``literal`` (Eq. 7 as printed, one white noise per unit
    drives both z and v) or ``driven`` (v driven by -4 m g, its own noise ``noise_v``)."""
    tz = torch.as_tensor(tau_z, dtype=z.dtype)
    z_new = z + (dt / tz) * (grad - v) + torch.sqrt(2.0 * dt / tz) * noise
    gain = (2.0 * m * torch.sqrt(2.0 * tz) / tau_v) * math.sqrt(dt)
    if adaptation == "literal":
        v_new = v - (dt * m / tau_v) * v + gain * noise
    elif adaptation == "driven":
        if noise_v is None:
            raise ValueError("the driven reading needs its own noise for v (noise_v)")
        v_new = v - (dt * m / tau_v) * (v + 4.0 * grad) + gain * noise_v
    else:
        raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {adaptation!r}")
    return z_new, v_new


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
                 | None = None, adaptation: str = "literal") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Integrate first- (``order=1``) or second-order (``order=2``, supp. Eq. 4-5) Langevin
    dynamics on a target with score ``grad_fn(z) = grad_z ln p(z)`` for ``n_steps`` EM steps
    (``adaptation``: ``literal`` | ``driven``, see the module docstring).

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
        count_grad_evals(z.shape[0] if z.dim() > 1 else 1)
        if order == 1:
            z = first_order_step(z, grad_fn(z), tau_z, dt, n)
        else:
            nv = _noise(z, gen) if adaptation == "driven" else None
            z, v = second_order_step(z, v, grad_fn(z), tau_z, tau_v, m, dt, n, adaptation, nv)
        if record is not None:
            record(step, z, v)
    return z, v
