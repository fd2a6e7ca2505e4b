"""Resampling and effective sample size (paper 003 Eq. 13, App. A.4).

Every scheme is unbiased (walker i is drawn N p_i times in expectation); systematic
resampling draws walker i exactly floor(N p_i) or ceil(N p_i) times, which multinomial
resampling does not; the ESS formula is checked on weights with a known answer.
"""

import math

import pytest
import torch

from ebm_bench.samplers.smc import RESAMPLERS, ess_fraction, log_mean_exp, normalized_weights, resample_indices

P = torch.tensor([0.30, 0.005, 0.0, 0.17, 0.125, 0.3, 0.0001, 0.0999], dtype=torch.float64)
assert abs(float(P.sum()) - 1.0) < 1e-12
N = len(P)


def counts(idx, n):
    return torch.bincount(idx, minlength=n).double()


@pytest.mark.parametrize("scheme", RESAMPLERS)
def test_each_walker_is_drawn_n_p_i_times_in_expectation(scheme):
    gen = torch.Generator().manual_seed(0)
    reps = 20000
    log_w = torch.log(P) + 7.3  # unnormalised log weights; -inf for the empty walker
    total = torch.zeros(N, dtype=torch.float64)
    total_sq = torch.zeros(N, dtype=torch.float64)
    for _ in range(reps):
        c = counts(resample_indices(log_w, N, scheme, gen), N)
        total += c
        total_sq += c * c
    mean = total / reps
    se = torch.sqrt((total_sq / reps - mean**2).clamp(min=1e-12) / reps)
    expected = N * P
    assert ((mean - expected).abs() <= 5 * se + 1e-9).all(), (mean, expected, se)
    assert mean[2] == 0.0  # a walker of weight 0 is never drawn


@pytest.mark.parametrize("n_draws", [N, 3 * N + 1, 1000])
def test_systematic_draws_floor_or_ceil(n_draws):
    gen = torch.Generator().manual_seed(1)
    for _ in range(2000):
        log_w = torch.randn(N, generator=gen, dtype=torch.float64) * 2.0
        p = normalized_weights(log_w)
        c = counts(resample_indices(log_w, n_draws, "systematic", gen), N)
        np_i = n_draws * p
        assert c.sum() == n_draws
        assert ((c >= torch.floor(np_i) - 1e-9) & (c <= torch.ceil(np_i) + 1e-9)).all(), (c, np_i)


def test_multinomial_and_stratified_are_not_floor_ceil():
    """The floor/ceil property is specific to systematic resampling: the test can fail."""
    gen = torch.Generator().manual_seed(2)
    log_w = torch.log(P)
    for scheme in ("multinomial", "stratified"):
        violated = False
        for _ in range(500):
            c = counts(resample_indices(log_w, N, scheme, gen), N)
            np_i = N * P
            if ((c < torch.floor(np_i)) | (c > torch.ceil(np_i))).any():
                violated = True
                break
        assert violated, scheme


def test_systematic_uses_one_uniform_and_stratified_one_per_stratum():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    resample_indices(torch.zeros(50, dtype=torch.float64), 50, "systematic", g1)
    torch.rand(1, generator=g2, dtype=torch.float64)
    assert torch.equal(g1.get_state(), g2.get_state())
    resample_indices(torch.zeros(50, dtype=torch.float64), 50, "stratified", g1)
    torch.rand(50, generator=g2, dtype=torch.float64)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_equal_weights_systematic_keeps_every_walker_once():
    gen = torch.Generator().manual_seed(4)
    idx = resample_indices(torch.full((37,), -3.0, dtype=torch.float64), 37, "systematic", gen)
    assert torch.equal(torch.sort(idx).values, torch.arange(37))


def test_huge_log_weights_do_not_overflow():
    gen = torch.Generator().manual_seed(5)
    log_w = torch.tensor([1e5, 1e5 - 1.0, -1e5, 1e5], dtype=torch.float64)
    for scheme in RESAMPLERS:
        idx = resample_indices(log_w, 4000, scheme, gen)
        c = counts(idx, 4)
        assert c[2] == 0
        p = normalized_weights(log_w)
        assert (c / 4000 - p).abs().max() < 0.05


def test_ess_formula_on_known_weights():
    # Eq. 13: ESS = (N^-1 sum w)^2 / (N^-1 sum w^2)
    assert ess_fraction(torch.zeros(10, dtype=torch.float64)) == pytest.approx(1.0)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert ess_fraction(torch.log(w)) == pytest.approx(2.5**2 / 7.5)
    one_hot = torch.tensor([0.0, -math.inf, -math.inf, -math.inf, -math.inf], dtype=torch.float64)
    assert ess_fraction(one_hot) == pytest.approx(1 / 5)
    # invariant to a common shift of A, and finite where exp(A) overflows
    assert ess_fraction(torch.log(w) + 1e4) == pytest.approx(2.5**2 / 7.5)
    # two groups: k walkers of weight 1, N - k of weight 0 -> ESS = k / N
    a = torch.tensor([0.0] * 3 + [-math.inf] * 7, dtype=torch.float64)
    assert ess_fraction(a) == pytest.approx(0.3)


def test_log_mean_exp():
    a = torch.log(torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    assert float(log_mean_exp(a)) == pytest.approx(math.log(3.0))
    assert float(log_mean_exp(a + 800.0)) == pytest.approx(math.log(3.0) + 800.0)


@pytest.mark.parametrize("n_draws", [N, 3 * N + 1, 1000])
def test_stratified_keeps_cumulative_counts_within_one_of_n_p(n_draws):
    """Stratified resampling draws one point per stratum ((j-1)/N, j/N], so the number of
    draws among walkers 1..m stays within 1 of N P_m (P_m = p_1 + ... + p_m) and each
    walker's count within 2 of N p_i (the two end strata of its interval may or may not
    hit it: with N p_i = 1.2 it can be drawn 0 times, so "within 1" holds only cumulatively).
    Multinomial resampling breaks both (next test)."""
    gen = torch.Generator().manual_seed(6)
    for _ in range(2000):
        log_w = torch.randn(N, generator=gen, dtype=torch.float64) * 2.0
        p = normalized_weights(log_w)
        c = counts(resample_indices(log_w, n_draws, "stratified", gen), N)
        assert c.sum() == n_draws
        cum = torch.cumsum(c, 0) - n_draws * torch.cumsum(p, 0)
        assert (cum.abs() < 1 + 1e-9).all(), (c, n_draws * p)
        assert ((c - n_draws * p).abs() < 2 + 1e-9).all(), (c, n_draws * p)


def test_multinomial_breaks_the_stratified_bounds():
    gen = torch.Generator().manual_seed(7)
    log_w = torch.log(P)
    cum_violated = count_violated = 0
    for _ in range(200):
        c = counts(resample_indices(log_w, 1000, "multinomial", gen), N)
        cum_violated += int(((torch.cumsum(c, 0) - 1000 * torch.cumsum(P, 0)).abs() >= 1).any())
        count_violated += int(((c - 1000 * P).abs() >= 2).any())
    assert cum_violated > 150 and count_violated > 150
