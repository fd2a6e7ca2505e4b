"""Exact analysis of HEE's Euler-Maruyama recursion on Gaussian targets (HEE-L with
closed-form A', paper 000 supp. Eq. 4-13), in one place: the recursion's matrices
(:func:`linear_recursion`, read off the step functions of
:mod:`ebm_bench.samplers.hee_dynamics`), its stationary covariance (a discrete Lyapunov
equation, SciPy), lag autocovariances and integrated autocorrelation time, the posterior
of a linear HEE, the moments after every step, and how fast each inference reading reaches
the posterior (:func:`hee_mixing`). No Monte Carlo anywhere. Read by the ``hee_mixing``
evaluation family (:mod:`ebm_bench.evaluation.hee`) and the experiment
``ebm-bench hee-mixing`` (:mod:`ebm_bench.experiments.hee_mixing`).
"""

from __future__ import annotations

import torch

from ebm_bench.samplers.hee_dynamics import Tau, first_order_step, second_order_step


def linear_recursion(H: torch.Tensor, dt: float, tau_z: Tau, order: int, m: float = 0.5,
                     tau_v_factor: float = 0.5, adaptation: str = "literal"
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The EM recursion on a Gaussian target with affine score g(z) = H z + c as
    s' = M s + B n (+ a constant), s = z (order 1) or (z, v) (order 2), n ~ N(0, I).

    M and B are read off the step functions themselves (applied in float64 to unit
    vectors with zero / unit noise), so every exact result built on them tests the code
    that runs. Returns (M, B, K) with K the map from c to the constant term (M s + K c)."""
    H = H.double()
    n = H.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    tz = torch.as_tensor(tau_z, dtype=torch.float64).expand(n).clone()
    tv = tau_v_factor * tz
    zero = torch.zeros(n, n, dtype=torch.float64)
    if order == 1:
        step = lambda z, g, nz: first_order_step(z, g, tz, dt, nz)  # noqa: E731
        M = step(eye, eye @ H.T, zero).T
        K = step(zero, eye, zero).T
        B = step(zero, zero, eye).T
        return M, B, K
    nv_used = adaptation == "driven"

    def step(z, v, g, nz, nv):
        zz, vv = second_order_step(z, v, g, tz, tv, m, dt, nz, adaptation, nv if nv_used else None)
        return torch.cat([zz, vv], 1)

    M = torch.cat([step(eye, zero, eye @ H.T, zero, zero), step(zero, eye, zero, zero, zero)], 0).T
    K = step(zero, zero, eye, zero, zero).T
    Bz = step(zero, zero, zero, eye, zero).T
    B = torch.cat([Bz, step(zero, zero, zero, zero, eye).T], 1) if nv_used else Bz
    return M, B, K


def lyapunov(M: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """The stationary covariance S = M S M^T + Q of s' = M s + noise(Q) (M stable), by
    SciPy's discrete Lyapunov solver (``scipy.linalg.solve_discrete_lyapunov``), float64."""
    from scipy.linalg import solve_discrete_lyapunov

    S = solve_discrete_lyapunov(M.double().numpy(), Q.double().numpy())
    return torch.from_numpy(0.5 * (S + S.T))


def stationary_cov_linear(precision: torch.Tensor, dt: float, tau_z: Tau, order: int, m: float = 0.5,
                          tau_v_factor: float = 0.5, adaptation: str = "literal") -> torch.Tensor:
    """Exact stationary covariance of the EM recursion on a Gaussian target N(mu, P^{-1}).

    The recursion is linear, s' = M s + c + B n (:func:`linear_recursion`, H = -P), so the
    stationary covariance solves the discrete Lyapunov equation S = M S M^T + B B^T. For
    ``order = 2`` the state is (z, v) and the (2n, 2n) covariance is returned.
    """
    M, B, _ = linear_recursion(-precision.double(), dt, tau_z, order, m, tau_v_factor, adaptation)
    return lyapunov(M, B @ B.T)


def lag_autocov_linear(precision: torch.Tensor, dt: float, tau_z: Tau, order: int, lags: list[int],
                       m: float = 0.5, tau_v_factor: float = 0.5, adaptation: str = "literal") -> list[torch.Tensor]:
    """Stationary Cov(z_{t+k}, z_t) of the EM recursion for each lag k (in steps), exactly:
    the z-block of M^k S."""
    M, B, _ = linear_recursion(-precision.double(), dt, tau_z, order, m, tau_v_factor, adaptation)
    S = lyapunov(M, B @ B.T)
    n = precision.shape[0]
    return [(torch.linalg.matrix_power(M, k) @ S)[:n, :n] for k in lags]


def iact(M: torch.Tensor, S: torch.Tensor, w: torch.Tensor, dt: float) -> float:
    """Integrated autocorrelation time (time units: steps x dt) of the stationary scalar
    w^T z of the linear recursion s' = M s + noise with stationary covariance S (z the
    first ``len(w)`` coordinates of s): dt (1 + 2 sum_{k>=1} rho_k), with
    sum_{k>=0} M^k S = (I - M)^{-1} S."""
    wz = torch.zeros(M.shape[0], dtype=torch.float64)
    wz[: w.shape[0]] = w.double()
    total = torch.linalg.solve(torch.eye(M.shape[0], dtype=torch.float64) - M, S)  # sum_{k>=0} M^k S
    return float(dt * (2.0 * (wz @ total @ wz) / (wz @ S @ wz) - 1.0))


def iact_linear(precision: torch.Tensor, dt: float, tau_z: Tau, order: int, w: torch.Tensor, m: float = 0.5,
                tau_v_factor: float = 0.5, adaptation: str = "literal") -> float:
    """:func:`iact` of w^T z under the EM recursion on the Gaussian target N(mu, P^{-1})."""
    M, B, _ = linear_recursion(-precision.double(), dt, tau_z, order, m, tau_v_factor, adaptation)
    return iact(M, lyapunov(M, B @ B.T), w, dt)


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
    step functions (:func:`linear_recursion`)."""
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
        e_mean = [float(((mt - mu) / sd).pow(2).mean().sqrt()) for mt in means]
        e_cov = [float((ct - stat).norm() / stat.norm()) for ct in covs]
        out[label] = {"t_mean_0.1": first_below(e_mean, 0.1, dt), "t_mean_0.01": first_below(e_mean, 0.01, dt),
                      "t_cov_5%": first_below(e_cov, 0.05, dt), "t_cov_1%": first_below(e_cov, 0.01, dt),
                      "iact_slow": iact(M, S, w, dt), "cov_bias": float((stat - cov_post).norm() / cov_post.norm())}
    return out


def first_below(errs: list[float], tol: float, dt: float) -> float:
    """Simulated time (tau_x) after which the error stays below tol (inf if never)."""
    last_above = -1
    for i, e in enumerate(errs):
        if not e < tol:
            last_above = i
    return (last_above + 2) * dt if last_above + 1 < len(errs) else float("inf")
