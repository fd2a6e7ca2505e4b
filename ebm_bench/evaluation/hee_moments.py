"""Exact moments of HEE's Euler-Maruyama recursion on a linear-Gaussian posterior (HEE-L
with closed-form A', paper 000 supp. Eq. 4-13): how fast each inference reading reaches
the posterior's mean and covariance. Read by the ``hee_mixing`` evaluation family
(:mod:`ebm_bench.evaluation.hee`) and by ``ebm-bench bench hee_inference``.
"""

from __future__ import annotations

import torch


def hee_linear_posterior(m, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HEE-L with closed-form A': the latent score is affine, S(z) = H z + c. H and c are read
    off the method's own score at z = 0 and at the unit vectors (float64)."""
    nz = m.N - m.sizes[0]

    def score(z: torch.Tensor) -> torch.Tensor:
        X = torch.cat([x0.expand(z.shape[0], -1), z], 1)
        FX = m.f(X)
        E = m.eta(FX)
        return m.score(X, FX, E, m.cond_mean(E))[:, m.sizes[0]:]

    c = score(torch.zeros(1, nz, dtype=torch.float64))[0]
    H = (score(torch.eye(nz, dtype=torch.float64)) - c).T
    return H, c


def moment_trajectory(H, c, tau, dt, order, m_adapt, tau_v_factor, n_steps, init_std, v_stationary=False,
                           adaptation="literal"):
    """Exact mean and covariance of z after every EM step of the linear recursion (z0 ~
    N(0, init_std^2 I), v0 = 0 or, with ``v_stationary``, v0 ~ N(0, 4 m tau_z / tau_v)
    independent of z0), as (means, covs) lists. The recursion's matrices are read off the
    step functions (:func:`~ebm_bench.samplers.hee_dynamics.linear_recursion`)."""
    from ebm_bench.samplers.hee_dynamics import linear_recursion

    nz = H.shape[0]
    M, Bn, K = linear_recursion(H, dt, tau, order, m_adapt, tau_v_factor, adaptation)
    const = K @ c
    dim = M.shape[0]
    mean = torch.zeros(dim, dtype=torch.float64)
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    cov[:nz, :nz] = init_std ** 2 * torch.eye(nz, dtype=torch.float64)
    if order == 2 and v_stationary:
        cov[nz:, nz:] = torch.diag(4 * m_adapt * tau / (tau_v_factor * tau))
    Q = Bn @ Bn.T
    means, covs = [], []
    for _ in range(n_steps):
        mean = M @ mean + const
        cov = M @ cov @ M.T + Q
        means.append(mean[:nz])
        covs.append(cov[:nz, :nz])
    return means, covs


READINGS = {  # label -> (order, adaptation, v_stationary)
    "first-order": (1, "literal", False),
    "literal, v0 ~ N(0, 4m tau_z/tau_v)": (2, "literal", True),
    "literal, v0 = 0": (2, "literal", False),
    "driven, v0 ~ N(0, 4m tau_z/tau_v)": (2, "driven", True),
    "driven, v0 = 0": (2, "driven", False),
}


def hee_mixing(H, c, tau, dt, m_adapt=0.5, tau_v_factor=0.5, horizon=None, readings=None) -> dict[str, dict]:
    """Per reading, exactly from the EM recursion on the Gaussian posterior with score
    H z + c (z0 ~ N(0, I)): time (tau_x) until the RMS mean error stays within 0.1 and
    0.01 posterior sd and the covariance within 5% and 1% (relative Frobenius distance to
    the recursion's own stationary covariance), the integrated autocorrelation time of the
    slowest posterior direction (IACT, tau_x), and the O(dt) covariance bias."""
    from ebm_bench.samplers.hee_dynamics import lyapunov, linear_recursion

    cov_post = torch.linalg.inv(-H)
    mu = cov_post @ c
    sd = torch.sqrt(torch.diagonal(cov_post))
    nz = H.shape[0]
    evals, evecs = torch.linalg.eigh(0.5 * (cov_post + cov_post.T))
    w = evecs[:, -1]  # largest posterior variance: the slowest direction
    if horizon is None:  # long enough for the slowest first-order mode to reach 1e-3
        rate = float((1.0 / evals[-1]) / tau.max())
        horizon = min(max(10.0, 8.0 / rate), 400.0)
    n_steps = int(round(horizon / dt))
    out = {}
    for label, (order, adaptation, v_stat) in (readings or READINGS).items():
        means, covs = moment_trajectory(H, c, tau, dt, order, m_adapt, tau_v_factor, n_steps, 1.0,
                                             v_stationary=v_stat, adaptation=adaptation)
        M, B, _ = linear_recursion(H, dt, tau, order, m_adapt, tau_v_factor, adaptation)
        S = lyapunov(M, B @ B.T)
        stat = S[:nz, :nz]
        wz = torch.zeros(M.shape[0], dtype=torch.float64)
        wz[:nz] = w
        total = torch.linalg.solve(torch.eye(M.shape[0], dtype=torch.float64) - M, S)
        iact = float(dt * (2.0 * (wz @ total @ wz) / (wz @ S @ wz) - 1.0))
        e_mean = [float(((mt - mu) / sd).pow(2).mean().sqrt()) for mt in means]
        e_cov = [float((ct - stat).norm() / stat.norm()) for ct in covs]
        out[label] = {"t_mean_0.1": first_below(e_mean, 0.1, dt), "t_mean_0.01": first_below(e_mean, 0.01, dt),
                      "t_cov_5%": first_below(e_cov, 0.05, dt), "t_cov_1%": first_below(e_cov, 0.01, dt),
                      "iact_slow": iact, "cov_bias": float((stat - cov_post).norm() / cov_post.norm())}
    return out


def first_below(errs: list[float], tol: float, dt: float) -> float:
    """Simulated time (tau_x) after which the error stays below tol (inf if never)."""
    last_above = -1
    for i, e in enumerate(errs):
        if not e < tol:
            last_above = i
    return (last_above + 2) * dt if last_above + 1 < len(errs) else float("inf")
