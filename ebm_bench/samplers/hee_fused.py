"""HEE's inner loop, fused (method parameter ``inner_loop: fused``; issue 21).

The eager loop (:meth:`ebm_bench.methods.hee.HEE.simulate`, the reference) spends a
Euler step at the supplement's 2D setting (batch 512, L = 5 layers of 10) on ~100 small
tensor operations: 15 (512 x 10) x (10 x 10) matrix products with their slices and
concatenations (eta, the bottom-up errors, the weight update), ``torch.tanh`` (which on
this CPU build runs ~10x slower per element than ``torch.sigmoid``), fresh temporaries for
every elementwise term, and two Gaussian draws. This module runs the same dynamics with

- the weights held as one block matrix Wb (N x N, Wb[l, l+1] = W_l, zero elsewhere), so
  eta = f(X) Wb^T + b, the bottom-up term err Wb and the weight gradient err^T f(X) are
  one matrix product each over the concatenated state (the zero blocks cost flops but
  not dispatch; after each update Wb is multiplied by its block / connectivity mask);
- tanh(x) = 2 sigmoid(2x) - 1 (exact identity; in float32 it differs from ``torch.tanh``
  by at most ~1e-7 absolute);
- every update written as in-place ops on preallocated buffers with per-unit coefficient
  vectors computed once (again after each learned-precision update);
- the noise drawn into preallocated buffers with ``normal_`` from the same generator, in
  the same order and shapes as the eager loop, so both paths consume the identical random
  stream: on the same seed they integrate the same noise realisation and differ only by
  floating-point rounding (tests/test_hee_fused.py bounds it, float32 and float64).

What it does not change: the Euler-Maruyama recursion, the order of the moves within a
step (score and learning signal at the step's start, then x, v, the interneurons on
the step's eta, then the learning update), the gradient-evaluation count, resume. The
Gaussian draws stay the floor of the cost (two B x N draws per step with ``torch``'s
CPU generator, ~3.5 ns a number; docs/hee.md, "Cost").

Supported: ``quadratic`` fixed or diagonal (``full`` runs eager), every interneuron
integrator, closed-form A', orders 1 and 2, both readings, the three modes.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ebm_bench.core.progress import Task
from ebm_bench.samplers.counting import count_grad_evals


def fast_tanh_(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = tanh(x) = 2 sigmoid(2x) - 1, in place into ``out``."""
    torch.add(x, x, out=out)  # 2x exactly (a Python-scalar multiply with out= converts the scalar each call)
    out.sigmoid_()
    return out.mul_(2.0).sub_(1.0)


def block_weights(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(Wb, mask): the block matrix of the weights and its support (block structure times
    the connectivity mask), in the model's dtype."""
    N = model.N
    dtype = model.W[0].dtype
    Wb = torch.zeros(N, N, device=model.device, dtype=dtype)
    mask = torch.zeros(N, N, device=model.device, dtype=dtype)
    for l in range(model.L):
        a, b = model.sl[l], model.sl[l + 1]
        Wb[a, b] = model.W[l]
        mask[a, b] = 1.0 if model.mask[l] is None else model.mask[l]
    return Wb, mask


def run_fused(model, X: torch.Tensor, V: torch.Tensor | None, U: torch.Tensor | None, n_steps: int,
              gen: torch.Generator, *, mode: str, x0: torch.Tensor | None, learn_from: int | None,
              avg_from: int | None, record: Callable | None, task: Task | None = None) -> dict[str, Any]:
    """The loop of :meth:`HEE.simulate` from its initial state (X, V, U), fused. Updates the
    model's W, bias and lam in place exactly when the eager loop would; ``task`` (the
    simulation's :class:`~ebm_bench.core.progress.Task`) is ticked every step."""
    p = model.params
    B, N = X.shape
    dt, dtype = model.dt, X.dtype
    n0 = model.sizes[0]
    linear = p["nonlinearity"] == "linear"
    order = int(p["order"])
    driven = p["adaptation"] == "driven"
    clamp = mode == "infer"
    bottom_up = mode != "marginal"
    use_u = U is not None
    diag = p["quadratic"] == "diagonal"
    learning = learn_from is not None
    rate = dt / model.tau_theta

    Wb, wmask = block_weights(model)
    Wb, wmask = Wb.to(dtype), wmask.to(dtype)
    bias = model.bias.to(dtype).clone()
    lam = model.lam.to(dtype).clone()
    tau = model.tau_vec.to(dtype)
    tau_v = float(p["tau_v_factor"]) * tau
    m = float(p["m"])
    # x / v moves (hee_dynamics.first_order_step / second_order_step)
    c_drift = dt / tau
    c_noise = torch.sqrt(2.0 * dt / tau)
    if order == 2:
        c_v = 1.0 - dt * m / tau_v
        c_vg = -4.0 * dt * m / tau_v
        c_vn = (2.0 * m * torch.sqrt(2.0 * tau) / tau_v) * (dt ** 0.5)
    tau_u = model.tau_u
    integ = p["interneuron_integrator"]
    precond = bool(p["interneuron_precondition"])

    def u_coeffs(lam):
        """U' = cu * U + ce * E + cn * noise for the configured interneuron step."""
        if integ == "exact":
            a = torch.exp(-2.0 * lam * dt / tau_u)
            return a, (1.0 - a) / (2.0 * lam), torch.sqrt((1.0 - a * a) / (2.0 * lam))
        if precond:
            k = 1.0 / (2.0 * lam)
            return ((1.0 - dt / tau_u) * torch.ones_like(lam), (dt / tau_u) * k,
                    (2.0 * dt / tau_u) ** 0.5 * torch.sqrt(k))
        return 1.0 - 2.0 * lam * dt / tau_u, (dt / tau_u) * torch.ones_like(lam), \
            (2.0 * dt / tau_u) ** 0.5 * torch.ones_like(lam)

    cu = ce = cn = None
    if use_u:
        cu, ce, cn = u_coeffs(lam)
    two_lam = 2.0 * lam

    X = X.contiguous()
    FX = torch.empty_like(X)
    E = torch.empty_like(X)
    S = torch.empty_like(X)
    err = torch.empty_like(X)
    back = torch.empty_like(X)
    tmp = torch.empty_like(X)
    nX = torch.empty_like(X)
    nV = torch.empty_like(X) if (order == 2 and driven) else None
    nU = torch.empty_like(U) if use_u else None
    k_u = U.shape[0] if use_u else 0
    A = torch.empty_like(X)
    total = torch.zeros_like(X) if avg_from is not None else None
    n_avg = 0
    x0c = x0.to(dtype) if clamp else None
    X_clamped = X[:, :n0]  # views into the buffers, made once
    E_u = E.expand_as(U) if use_u else None
    if use_u and k_u == 1:
        A = U[0]

    for step in range(n_steps):
        # f(X), eta = f(X) Wb^T + b
        if linear:
            FX = X
        else:
            fast_tanh_(X, FX)
        torch.addmm(bias, FX, Wb.t(), out=E)
        # A'(eta): interneurons' average or closed form
        if use_u:
            if k_u > 1:
                torch.mean(U, 0, out=A)
        else:
            torch.div(E, two_lam, out=A)
        # score S = eta - 2 Lambda x + f'(x) * (err Wb)
        torch.addcmul(E, two_lam, X, value=-1.0, out=S)
        if bottom_up:
            torch.sub(X, A, out=err)
            torch.mm(err, Wb, out=back)
            if not linear:
                torch.mul(FX, FX, out=tmp)
                back.addcmul_(back, tmp, value=-1.0)  # back * (1 - f(x)^2)
            S.add_(back)
        # local learning from the step's start state (batch means). Applied here, before
        # the moves: nothing later in this step reads W or b, and the interneurons keep
        # the coefficients of the step's Lambda (the eager loop applies all after the moves)
        do_learn = learning and step >= learn_from
        new_lam = None
        if do_learn:
            Wb.addmm_(err.t(), FX, alpha=rate / B).mul_(wmask)
            bias.add_(err.sum(0), alpha=rate / B)
            if diag:
                if use_u:
                    a2 = (U * U).mean(0) if k_u > 1 else A * A
                else:
                    a2 = A * A + 1.0 / two_lam
                lam.add_(a2.sub_(X * X).mean(0), alpha=rate).clamp_(float(p["precision_min"]),
                                                                   float(p["precision_max"]))
                new_lam = lam
        # x (and v) move
        nX.normal_(generator=gen)
        if order == 1:
            X.addcmul_(S, c_drift).addcmul_(nX, c_noise)
        else:
            if driven:
                nV.normal_(generator=gen)
            torch.sub(S, V, out=tmp)
            X.addcmul_(tmp, c_drift).addcmul_(nX, c_noise)
            if driven:
                V.mul_(c_v).addcmul_(S, c_vg).addcmul_(nV, c_vn)
            else:
                V.mul_(c_v).addcmul_(nX, c_vn)
        if clamp:
            X_clamped.copy_(x0c)
        # interneurons on this step's eta
        if use_u:
            nU.normal_(generator=gen)
            U.mul_(cu).addcmul_(E_u, ce).addcmul_(nU, cn)
        if new_lam is not None:
            two_lam = 2.0 * lam
            if use_u:
                cu, ce, cn = u_coeffs(lam)
        if total is not None and step >= avg_from:
            total += X
            n_avg += 1
        if record is not None:
            record(step + 1, X)
        if task is not None:
            task.tick(step + 1)  # one clock read: ~0.2-0.4 us against ~0.3 ms a step
    count_grad_evals(B * n_steps)  # one score evaluation per chain per EM step (as eager)

    if learning:  # write the parameters back, in place (callers may hold references)
        for l in range(model.L):
            model.W[l].copy_(Wb[model.sl[l], model.sl[l + 1]])
        model.bias.copy_(bias)
        if diag:
            model.lam.copy_(lam)
    mean = total / max(n_avg, 1) if total is not None else None
    return {"X": X, "V": V, "U": U, "mean": mean}
