"""Exact density metrics for synthetic data (float64 throughout).

- :func:`grid_kl`: KL(data || model) for 2D toys by quadrature on a grid; the model is
  normalised on the grid, the data density is known exactly.
- :func:`gmm_log_density`, :func:`gmm_exact_kl`: the two-mode Gaussian mixture teacher
  and student of paper 003 (Carbone et al. 2023), Eq. 14-15, whose partition function
  Z = (2 pi)^{d/2} (1 + e^{-z}) is known, so KL(rho* || rho_theta) needs no estimate of Z.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

LOG_2PI = math.log(2.0 * math.pi)


def _call_log_density(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Evaluate ``fn`` on rows of float64 ``x`` in chunks, without gradients.

    A float32 network raises on float64 input; then the chunk is evaluated in float32 (the
    network's own precision) and the result promoted back to float64.
    """
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            xb = x[i : i + chunk]
            try:
                out = fn(xb)
            except RuntimeError:
                out = fn(xb.float())
            outs.append(torch.as_tensor(out).detach().reshape(-1).to("cpu", torch.float64))
    return torch.cat(outs)


def _pair(v: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(v, (int, float)):
        return float(v), float(v)
    a, b = v
    return float(a), float(b)


def grid_kl(
    model_log_unnorm: Callable[[torch.Tensor], torch.Tensor],
    data_log_density: Callable[[torch.Tensor], torch.Tensor],
    low: float | Sequence[float],
    high: float | Sequence[float],
    n: int = 200,
    chunk: int = 65536,
) -> dict[str, Any]:
    """KL(p_data || p_model) on an n x n midpoint grid over [low, high]^2 (2D toys).

    ``model_log_unnorm`` maps (M, 2) -> (M,) log density up to a constant (i.e. -energy);
    it is normalised on the grid: log p_model = f - logsumexp(f) - log dA. ``data_log_density``
    is the exact normalised log density. Then
    KL = sum_cells p_data (log p_data - log p_model) dA and the cross-entropy
    H = -sum p_data log p_model dA (cells with p_data = 0 contribute 0).
    ``low``/``high`` are scalars or (x, y) pairs.

    Returns {"kl", "cross_entropy", "data_entropy", "data_mass_inside" (data mass within
    the grid; quadrature is only meaningful when it is ~1), "model_log_z" (log of the grid
    normaliser of exp(f)), "n", "low", "high", "cell_area", "status"}. A model giving NaN
    or +inf on the grid yields kl NaN with status 'nonfinite_model'.
    """
    (lx, ly), (hx, hy) = _pair(low), _pair(high)
    dx, dy = (hx - lx) / n, (hy - ly) / n
    area = dx * dy
    xs = lx + (torch.arange(n, dtype=torch.float64) + 0.5) * dx
    ys = ly + (torch.arange(n, dtype=torch.float64) + 0.5) * dy
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)

    f = _call_log_density(model_log_unnorm, pts, chunk)
    log_pd = _call_log_density(data_log_density, pts, chunk)
    pd = log_pd.exp()
    out: dict[str, Any] = {
        "n": int(n),
        "low": [lx, ly],
        "high": [hx, hy],
        "cell_area": area,
        "data_mass_inside": float(pd.sum() * area),
    }
    pos = pd > 0
    out["data_entropy"] = float(-(pd[pos] * log_pd[pos]).sum() * area)
    if torch.isnan(f).any() or torch.isposinf(f).any():
        out.update(kl=math.nan, cross_entropy=math.nan, model_log_z=math.nan, status="nonfinite_model")
        return out
    log_z = torch.logsumexp(f, dim=0) + math.log(area)
    log_pm = f - log_z
    # -inf model log density where the data has mass gives KL = +inf, as it should
    ce = -(pd[pos] * log_pm[pos]).sum() * area
    kl = (pd[pos] * (log_pd[pos] - log_pm[pos])).sum() * area
    out.update(kl=float(kl), cross_entropy=float(ce), model_log_z=float(log_z), status="ok")
    return out


def _vec(v: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64)).reshape(-1)


def _params(p: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, float]:
    a, b = _vec(p["a"]), _vec(p["b"])
    if a.shape != b.shape:
        raise ValueError(f"mode centres differ in dimension: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a, b, float(p["z"])


def gmm_log_density(x: Any, a: Any, b: Any, z: float) -> torch.Tensor:
    """Exact normalised log density of paper 003, Eq. 14 (teacher) / Eq. 15 (student):

    rho(x) = (e^{-|x-a|^2/2} + e^{-|x-b|^2/2 - z}) / Z,  Z = (2 pi)^{d/2} (1 + e^{-z}),

    i.e. mass 1/(1+e^{-z}) on the mode at ``a``. ``x`` is (N, d) (or (d,)); returns (N,)
    float64 (log Z via softplus(-z) so large |z| does not overflow).
    """
    x = torch.as_tensor(x).to(torch.float64)
    x = x.reshape(-1, x.shape[-1])
    a, b = _vec(a), _vec(b)
    d = x.shape[1]
    la = -0.5 * ((x - a) ** 2).sum(1)
    lb = -0.5 * ((x - b) ** 2).sum(1) - float(z)
    log_z = 0.5 * d * LOG_2PI + float(torch.nn.functional.softplus(torch.tensor(-float(z), dtype=torch.float64)))
    return torch.logaddexp(la, lb) - log_z


def _sigmoid(z: float) -> float:
    return float(torch.sigmoid(torch.tensor(z, dtype=torch.float64)))


def gmm_exact_kl(
    teacher: dict[str, Any], student: dict[str, Any], n_mc: int = 100_000, seed: int = 0
) -> dict[str, Any]:
    """KL(rho* || rho_theta) and cross-entropy for paper 003's GMM (Eq. 14-15, Fig. 1 right).

    Both densities are exact (normalised in closed form); only the expectation over rho* is
    Monte Carlo, with exact teacher samples stratified by mode: round(p* n_mc) draws from
    N(a*, I) and the rest from N(b*, I), recombined with the exact masses p*, q*. So
    KL = p* E_a[log rho* - log rho_theta] + q* E_b[...]; "kl_stderr" is the standard error of
    that stratified estimate (exactly 0 at student == teacher). "cross_entropy" =
    -E_rho*[log rho_theta] = H(rho*) + KL, estimated from the same draws.
    dict keys of teacher/student: "a", "b" (d,), "z" (float).

    Returns {"kl", "kl_stderr", "cross_entropy", "cross_entropy_stderr", "teacher_entropy",
    "mass_a" (= 1/(1+e^{-z_student}), the learned weight p of paper 003 Fig. 1),
    "mass_a_teacher", "n_mc", "seed"}.
    """
    if n_mc < 4:
        raise ValueError(f"n_mc must be >= 4 (2 draws per mode), got {n_mc}")
    ta, tb, tz = _params(teacher)
    sa, sb, sz = _params(student)
    if ta.shape != sa.shape:
        raise ValueError(f"teacher dim {ta.numel()} != student dim {sa.numel()}")
    d = ta.numel()
    p_star = _sigmoid(tz)
    weights = (p_star, 1.0 - p_star)
    # at least 2 draws per mode so each stratum has a variance estimate
    n_a = min(max(int(round(p_star * n_mc)), 2), n_mc - 2)
    counts = (n_a, n_mc - n_a)
    gen = torch.Generator().manual_seed(int(seed))
    kl = ce = kl_var = ce_var = 0.0
    for centre, w, m in zip((ta, tb), weights, counts):
        x = centre + torch.randn(m, d, generator=gen, dtype=torch.float64)
        log_t = gmm_log_density(x, ta, tb, tz)
        log_s = gmm_log_density(x, sa, sb, sz)
        diff = log_t - log_s
        kl += w * float(diff.mean())
        kl_var += w * w * float(diff.var()) / m
        ce += w * float((-log_s).mean())
        ce_var += w * w * float(log_s.var()) / m
    return {
        "kl": kl,
        "kl_stderr": math.sqrt(kl_var),
        "cross_entropy": ce,
        "cross_entropy_stderr": math.sqrt(ce_var),
        "teacher_entropy": ce - kl,
        "mass_a": _sigmoid(sz),
        "mass_a_teacher": p_star,
        "n_mc": int(n_mc),
        "seed": int(seed),
    }
