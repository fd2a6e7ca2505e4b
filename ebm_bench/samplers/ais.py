"""Annealed importance sampling (Neal 2001) of a trained energy, independent of the
method's own sampler: what the model itself says, not what its chains found.

Target rho(x) = exp(-U(x)/T) / Z at the training temperature T. Path from the Gaussian
base N(0, s^2 I): log pi_b(x) = -(1 - b) |x|^2 / (2 s^2) - b U(x) / T, b from 0 to 1 on
the schedule b_t = (t / K)^power. Each chain starts from the base, and at every level
the log weight gains (b_t - b_{t-1}) (|x|^2 / (2 s^2) - U(x) / T) at the current point,
then the point makes one MALA step (Metropolis-adjusted Langevin, so pi_b is exactly
invariant and the weights are exact for any step size) on pi_{b_t} with step ``step``
(on the scale of log pi: x' = x + step grad log pi + sqrt(2 step) xi). The weighted
end points are then samples of rho (E[w f(x)] / E[w] -> E_rho f as the number of chains
grows), and their effective sample size says how far to trust them; the unweighted end
points are ordinary annealed chains from noise.

Gradient evaluations here are evaluation cost, not the method's: they are computed with
autograd directly and not added to :mod:`~ebm_bench.samplers.counting`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ebm_bench.core.progress import Task
from ebm_bench.core.precision import strict_float32


@dataclass
class AISResult:
    x: torch.Tensor          # end points (n, *shape)
    log_w: torch.Tensor      # their log importance weights, float64 (n,)
    accept: float            # mean MALA acceptance over the second half of the path
    log_z: float             # log Z_T / Z_base estimate: logmeanexp(log_w) (+ the base's log Z)

    @property
    def ess(self) -> float:
        a = self.log_w
        return float(torch.exp(2 * torch.logsumexp(a, 0) - torch.logsumexp(2 * a, 0)) / a.numel())


def _u_and_grad(energy: Callable, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = energy(x)
        (g,) = torch.autograd.grad(u.sum(), x)
    return u.detach().double(), g.detach()


def ais(energy: Callable, shape: tuple[int, ...], n: int, n_steps: int, temperature: float, step: float,
        gen: torch.Generator, base_std: float = 1.0, power: float = 4.0, device="cpu",
        batch: int = 1000) -> AISResult:
    """``n`` AIS chains of ``n_steps`` levels from N(0, base_std^2 I) to exp(-U/T)."""
    xs, lws, accs = [], [], []
    with Task("AIS chains", n) as task:
        for start in range(0, n, batch):
            task.tick(start)
            m = min(batch, n - start)
            x, lw, acc = _ais_batch(energy, shape, m, n_steps, temperature, step, gen, base_std, power, device)
            xs.append(x)
            lws.append(lw)
            accs.append(acc * m)
    log_w = torch.cat(lws)
    d = math.prod(shape)
    log_z_base = 0.5 * d * math.log(2 * math.pi * base_std**2)
    log_z = float(torch.logsumexp(log_w, 0) - math.log(n)) + log_z_base
    return AISResult(torch.cat(xs), log_w, sum(accs) / n, log_z)


@torch.no_grad()
def _ais_batch(energy, shape, n, n_steps, temperature, step, gen, base_std, power, device):
    s2 = base_std**2
    x = base_std * torch.randn((n, *shape), generator=gen, device=device)
    log_w = torch.zeros(n, dtype=torch.float64, device=device)
    betas = [(t / n_steps) ** power for t in range(n_steps + 1)]
    acc_sum, acc_n = 0.0, 0

    def sqn(z):
        return (z.double() ** 2).flatten(1).sum(1)

    def log_pi(b, u, sq):
        return -(1.0 - b) * sq / (2 * s2) - b * u / temperature

    def grad_log_pi(b, z, gu):
        return -(1.0 - b) * z / s2 - b * gu / temperature

    with strict_float32(), Task("AIS level", n_steps) as task:
        u, gu = _u_and_grad(energy, x)
        sq = sqn(x)
        for t in range(1, n_steps + 1):
            task.tick(t - 1)
            b0, b1 = betas[t - 1], betas[t]
            log_w += (b1 - b0) * (sq / (2 * s2) - u / temperature)
            # one MALA step on pi_b1 (exactly invariant, whatever the step)
            g = grad_log_pi(b1, x, gu)
            y = x + step * g + math.sqrt(2 * step) * torch.randn(x.shape, generator=gen, device=device)
            u_y, gu_y = _u_and_grad(energy, y)
            sq_y = sqn(y)
            g_y = grad_log_pi(b1, y, gu_y)
            fwd = -sqn(y - x - step * g) / (4 * step)
            bwd = -sqn(x - y - step * g_y) / (4 * step)
            log_acc = (log_pi(b1, u_y, sq_y) - log_pi(b1, u, sq) + bwd - fwd).clamp(max=0.0)
            ok = torch.rand(n, generator=gen, device=device, dtype=torch.float64).log() < log_acc
            okx = ok.view(-1, *[1] * len(shape))
            x, gu = torch.where(okx, y, x), torch.where(okx, gu_y, gu)
            u, sq = torch.where(ok, u_y, u), torch.where(ok, sq_y, sq)
            if t > n_steps // 2:
                acc_sum += float(ok.double().mean())
                acc_n += 1
    return x.detach(), log_w, acc_sum / max(acc_n, 1)
