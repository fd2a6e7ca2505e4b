"""The shared ULA sampler leaves a known Gaussian invariant (at the right temperature).

For U(x) = 1/2 (x - m)^T P (x - m), ULA with step h and temperature T is a linear
Gaussian recursion whose exact stationary law is N(m, T [P (I - h P / 2)]^{-1}); we start
chains at that law and check mean and covariance stay there. A wrong noise scale, a sign
error in the drift or a forgotten temperature moves the covariance by far more than the
Monte Carlo tolerance used here.
"""

import math

import torch

from ebm_bench.samplers import ULA

M = torch.tensor([1.0, -2.0], dtype=torch.float64)
P = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)


def energy(x):
    d = x - M
    return 0.5 * ((d @ P) * d).sum(-1)


def stationary_cov(h, T):
    return T * torch.linalg.inv(P @ (torch.eye(2, dtype=torch.float64) - h * P / 2))


def run_chains(h, T, n=40000, steps=200, start_cov=None):
    g = torch.Generator().manual_seed(1)
    cov = stationary_cov(h, T) if start_cov is None else start_cov
    L = torch.linalg.cholesky(cov)
    x = M + torch.randn((n, 2), generator=g, dtype=torch.float64) @ L.T
    return ULA(step_size=h, temperature=T).run(energy, x, steps, g)


def check_moments(x, cov, n_sigma=5.0):
    n = len(x)
    mean_err = (x.mean(0) - M).abs()
    assert (mean_err < n_sigma * torch.sqrt(torch.diag(cov) / n)).all(), mean_err
    emp = torch.cov(x.T)
    # std error of a covariance entry ~ sqrt((S_ii S_jj + S_ij^2) / n)
    se = torch.sqrt((torch.outer(torch.diag(cov), torch.diag(cov)) + cov**2) / n)
    assert ((emp - cov).abs() < n_sigma * se).all(), (emp, cov)


def test_ula_leaves_gaussian_invariant_at_unit_temperature():
    h, T = 0.1, 1.0
    check_moments(run_chains(h, T), stationary_cov(h, T))


def test_ula_samples_at_its_temperature():
    h, T = 0.05, 5e-3
    x = run_chains(h, T)
    check_moments(x, stationary_cov(h, T))
    assert math.isclose(ULA(step_size=h, temperature=T).noise_std, math.sqrt(2 * h * T))


def test_ula_converges_to_target_from_elsewhere():
    # start far from the target; small step so the discretisation bias is negligible
    h = 0.02
    x = run_chains(h, 1.0, n=20000, steps=800, start_cov=4 * torch.eye(2, dtype=torch.float64))
    check_moments(x, stationary_cov(h, 1.0))
    # and the stationary law really differs from P^{-1} at a large step: the test can fail
    big = stationary_cov(0.5, 1.0)
    assert (big - torch.linalg.inv(P)).abs().max() > 0.1
