"""ebm_bench.claims.stats: every statistic pinned to an independent computation.

The expected numbers are computed here from first principles on fixed data: numpy
moments (mean, sd with ddof=1), the Welch-Satterthwaite df written out, and the t
distribution's ``scipy.stats.t.ppf`` / ``t.sf`` / ``t.cdf`` -- never the SciPy test
helpers (``ttest_1samp``, ``ttest_ind``, ``false_discovery_control``) the module calls.
Tolerance: rel 1e-12 (abs 1e-15 near zero) unless a test says otherwise.

Mutation sweep (each single-line error applied to ebm_bench/claims/stats.py, this file
run, the error reverted; every one made at least one test fail; script: a loop of
exact-string replacements, 19 mutations, about 2.5 min on 2 cores):

mutation                                         tests that failed
-----------------------------------------------  ----------------------------------------------------
interval level: LEVEL 0.95 -> 0.90               one_sample_interval_df_p, one_sided_decision_matches_interval,
                                                 welch_interval_df_p, welch_one_constant_side,
                                                 equivalence_tost_p, equivalence_welch_tost_p,
                                                 tost_p_iff_interval_inside_band, log_ratio_paired,
                                                 log_ratio_welch, log_ratio_equivalence
df n-1 -> n (one_sample's reported df)           one_sample_interval_df_p, log_ratio_paired
df n-1 -> n (equivalence's reported df)          equivalence_tost_p
sd ddof 1 -> 0 (_sd)                             degenerate_threshold_uses_ddof1, degenerate_roundoff_spread,
                                                 welch_interval_df_p, equivalence_welch_tost_p,
                                                 log_ratio_welch, log_ratio_equivalence
Welch variance sd**2/n -> sd**2/(n-1)            welch_interval_df_p, equivalence_welch_tost_p,
                                                 log_ratio_welch, log_ratio_equivalence
Welch df: v**2/(n-1) -> v**2/n                   welch_interval_df_p, welch_one_constant_side,
                                                 equivalence_welch_tost_p, log_ratio_welch, log_ratio_equivalence
Welch interval equal_var=False -> True           welch_interval_df_p, welch_one_constant_side, log_ratio_welch
pairing: intersection -> union of seeds          pair_seeds_nan_on_one_side
relative: log ratio -> plain ratio - 1           log_ratio_paired
relative: no exp(.) - 1 back-transform           log_ratio_paired, log_ratio_welch, log_ratio_equivalence
min_effect shift dropped (one_sample p)          min_effect_shifts_p, one_sided_decision_matches_interval,
                                                 log_ratio_paired
min_effect shift dropped (welch p)               welch_interval_df_p, log_ratio_welch
TOST p: max -> min (equivalence)                 equivalence_tost_p, tost_p_iff_interval_inside_band,
                                                 log_ratio_equivalence
TOST p: max -> min (equivalence_welch)           equivalence_welch_tost_p, tost_p_iff_interval_inside_band,
                                                 log_ratio_equivalence
degenerate: round-off check removed              degenerate_roundoff_spread, degenerate_threshold_uses_ddof1,
                                                 degenerate_zero_spread
degenerate: sd == 0 check removed                degenerate_zero_spread (the reason string)
degenerate: check ignored in one_sample          degenerate_zero_spread, degenerate_roundoff_spread
degenerate: Welch both-sides check removed       degenerate_zero_spread (ZeroDivisionError)
BH: return the raw p                             adjust_bh_hand_computation

(The interval and p come from SciPy's t tests, so the "df n-1 -> n" mutations change
the reported ``df`` only; the sd/Welch-variance/Welch-df mutations change the reported
Welch df and, through ``_sd``, the degenerate threshold.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as T

from ebm_bench.claims import stats as S

REL = 1e-12
ABS = 1e-15


def close(a, b, rel=REL, abs_=ABS):
    return a == pytest.approx(b, rel=rel, abs=abs_)


def tq(df):  # the two-sided 95% t quantile
    return T.ppf(0.5 + 0.95 / 2, df)


# fixed data
D = np.array([0.12, 0.31, -0.05, 0.22, 0.18])
X = np.array([3.1, 2.7, 3.9, 3.3, 2.95, 3.6])
Y = np.array([2.4, 2.9, 2.2, 2.65])


def moments(v):
    v = np.asarray(v, float)
    n = len(v)
    m = v.sum() / n
    sd = math.sqrt(((v - m) ** 2).sum() / (n - 1))
    return m, sd, sd / math.sqrt(n), n - 1


def welch_ref(x, y):
    mx, sx, _, _ = moments(x)
    my, sy, _, _ = moments(y)
    vx, vy = sx**2 / len(x), sy**2 / len(y)
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return mx - my, se, df


# --- one sample ---------------------------------------------------------------------------


def test_one_sample_interval_df_p():
    m, sd, se, df = moments(D)
    e = S.one_sample(D)
    assert e.n == 5 and e.df == 4 and e.test == "paired t" and e.degenerate == ""
    assert close(e.effect, m)
    assert close(e.ci_low, m - tq(4) * se) and close(e.ci_high, m + tq(4) * se)
    assert close(e.p_value, T.sf(m / se, 4))
    assert S.one_sample(D, paired=False).test == "one-sample t"


def test_min_effect_shifts_p():
    m, sd, se, df = moments(D)
    p0, p1 = S.one_sample(D, 0.0), S.one_sample(D, 0.1)
    assert p1.p_value != pytest.approx(p0.p_value, rel=1e-3)
    assert close(p1.p_value, T.sf((m - 0.1) / se, df))
    assert close(S.one_sample(D, -0.2).p_value, T.sf((m + 0.2) / se, df))
    assert (p1.effect, p1.ci_low, p1.ci_high) == (p0.effect, p0.ci_low, p0.ci_high)  # the interval is not shifted


def test_one_sided_decision_matches_interval():
    """p < 2.5% for effect > m exactly when the 95% interval lies above m."""
    rng = np.random.default_rng(1)
    outcomes = set()
    for _ in range(200):
        d = rng.normal(0.3, 0.4, size=rng.integers(3, 9))
        m = rng.uniform(-0.3, 0.6)
        e = S.one_sample(d, m)
        if abs(e.ci_low - m) < 1e-9:
            continue
        assert (e.p_value < 0.025) == (e.ci_low > m)
        outcomes.add(e.p_value < 0.025)
    assert outcomes == {True, False}


def test_too_few_values():
    for f in (lambda: S.one_sample([0.3]), lambda: S.equivalence([0.3], -1, 1),
              lambda: S.welch([1.0], [2.0, 3.0]), lambda: S.log_ratio_paired([2.0], [1.0])):
        e = f()
        assert e.n == 1 and e.degenerate == ""
        assert all(math.isnan(v) for v in (e.ci_low, e.ci_high, e.p_value))
    e = S.one_sample([])
    assert e.n == 0 and math.isnan(e.effect)


# --- Welch --------------------------------------------------------------------------------


def test_welch_interval_df_p():
    diff, se, df = welch_ref(X, Y)
    e = S.welch(X, Y)
    assert e.n == 4 and e.test == "Welch t" and e.degenerate == ""
    assert close(e.df, df) and not close(e.df, len(X) + len(Y) - 2)
    assert close(e.effect, diff)
    assert close(e.ci_low, diff - tq(df) * se) and close(e.ci_high, diff + tq(df) * se)
    assert close(e.p_value, T.sf(diff / se, df))
    e2 = S.welch(X, Y, 0.25)
    assert close(e2.p_value, T.sf((diff - 0.25) / se, df))
    assert (e2.ci_low, e2.ci_high) == (e.ci_low, e.ci_high)


# --- equivalence (TOST) --------------------------------------------------------------------


def test_equivalence_tost_p():
    m, sd, se, df = moments(D)
    low, high = -0.05, 0.3
    e = S.equivalence(D, low, high)
    p_low, p_high = T.sf((m - low) / se, df), T.cdf((m - high) / se, df)
    assert p_low != pytest.approx(p_high, rel=1e-3)
    assert close(e.p_value, max(p_low, p_high))
    assert close(e.effect, m) and e.df == 4 and e.test == "TOST paired t"
    assert close(e.ci_low, m - tq(4) * se) and close(e.ci_high, m + tq(4) * se)


def test_equivalence_welch_tost_p():
    diff, se, df = welch_ref(X, Y)
    low, high = 0.2, 1.4
    e = S.equivalence_welch(X, Y, low, high)
    p_low, p_high = T.sf((diff - low) / se, df), T.cdf((diff - high) / se, df)
    assert close(e.p_value, max(p_low, p_high)) and close(e.df, df) and e.test == "TOST Welch t"
    assert close(e.ci_low, diff - tq(df) * se) and close(e.ci_high, diff + tq(df) * se)


def test_tost_p_iff_interval_inside_band():
    """TOST at 2.5% per side <=> the 95% interval lies inside (low, high)."""
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(300):
        d = rng.normal(rng.uniform(-0.2, 0.2), 0.1, size=rng.integers(3, 10))
        low, high = -rng.uniform(0.01, 0.4), rng.uniform(0.01, 0.4)
        if i % 2:
            y = rng.normal(0.0, 0.15, size=rng.integers(3, 8))
            e = S.equivalence_welch(d + y.mean(), y, low, high)
        else:
            e = S.equivalence(d, low, high)
        if min(abs(e.ci_low - low), abs(e.ci_high - high)) < 1e-9:
            continue
        inside = low < e.ci_low and e.ci_high < high
        assert (e.p_value <= 0.025) == inside
        outcomes.add(inside)
    assert outcomes == {True, False}


# --- log ratios ----------------------------------------------------------------------------


NUM = np.array([1.30, 1.52, 1.21, 1.75, 1.40])
DEN = np.array([1.00, 1.10, 1.05, 1.20, 0.95])


def test_log_ratio_paired():
    lr = np.log(NUM / DEN)
    m, sd, se, df = moments(lr)
    e = S.log_ratio_paired(NUM, DEN)
    assert e.test == "paired t on log ratio" and e.df == 4 and e.n == 5
    assert close(e.effect, math.exp(m) - 1)
    assert close(e.effect, np.prod(NUM / DEN) ** (1 / 5) - 1)  # geometric-mean ratio - 1
    assert close(e.ci_low, math.exp(m - tq(4) * se) - 1) and close(e.ci_high, math.exp(m + tq(4) * se) - 1)
    assert (e.ci_high - e.effect) > (e.effect - e.ci_low) * (1 + 1e-3)  # asymmetric around the ratio
    assert close(e.p_value, T.sf(m / se, 4))
    e2 = S.log_ratio_paired(NUM, DEN, min_effect=0.2)
    assert close(e2.p_value, T.sf((m - math.log(1.2)) / se, 4))
    # not the plain-ratio interval
    rm, _, rse, _ = moments(NUM / DEN - 1)
    assert not close(e.ci_low, rm - tq(4) * rse, rel=1e-6)


def test_log_ratio_welch():
    lx, ly = np.log(NUM), np.log(DEN[:4])
    diff, se, df = welch_ref(lx, ly)
    e = S.log_ratio_welch(NUM, DEN[:4], min_effect=0.1)
    assert e.test == "Welch t on log ratio" and close(e.df, df) and e.n == 4
    assert close(e.effect, math.expm1(diff))
    assert close(e.ci_low, math.expm1(diff - tq(df) * se)) and close(e.ci_high, math.expm1(diff + tq(df) * se))
    assert close(e.p_value, T.sf((diff - math.log1p(0.1)) / se, df))


def test_log_ratio_equivalence():
    lr = np.log(NUM / DEN)
    m, sd, se, df = moments(lr)
    low, high = 0.1, 0.6
    e = S.log_ratio_equivalence(NUM, DEN, low, high)
    p = max(T.sf((m - math.log1p(low)) / se, df), T.cdf((m - math.log1p(high)) / se, df))
    assert close(e.p_value, p) and close(e.effect, math.expm1(m)) and e.test == "TOST paired t on log ratio"
    assert close(e.ci_low, math.expm1(m - tq(df) * se)) and close(e.ci_high, math.expm1(m + tq(df) * se))
    assert (e.p_value <= 0.025) == (low < e.ci_low and e.ci_high < high)
    lx, ly = np.log(NUM), np.log(DEN[:4])
    diff, se2, df2 = welch_ref(lx, ly)
    u = S.log_ratio_equivalence(NUM, DEN[:4], low, high, paired=False)
    p2 = max(T.sf((diff - math.log1p(low)) / se2, df2), T.cdf((diff - math.log1p(high)) / se2, df2))
    assert close(u.p_value, p2) and close(u.df, df2) and close(u.ci_high, math.expm1(diff + tq(df2) * se2))


def test_log_ratio_needs_positive_values():
    with pytest.raises(ValueError, match=r"den\[2\] = -0\.5"):
        S.log_ratio_paired([1.0, 2.0, 3.0], [1.0, 1.0, -0.5])
    with pytest.raises(ValueError, match=r"num\[0\] = 0"):
        S.log_ratio_welch([0.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="min_effect"):
        S.log_ratio_paired(NUM, DEN, min_effect=-1.0)


# --- pairing ---------------------------------------------------------------------------------


def test_pair_seeds_nan_on_one_side():
    a = {0: 1.0, 1: 2.0, 2: math.nan, 3: 1.5, 4: 1.2}
    b = {0: 0.8, 1: 1.7, 2: 1.1, 3: 1.1, 5: 0.9}
    shared, only_a, only_b = S.pair_seeds(a, b)
    assert shared == [0, 1, 3] and only_a == [4] and only_b == [2, 5]
    d = np.array([a[s] - b[s] for s in shared])
    e = S.one_sample(d)
    assert e.n == 3 and e.test == "paired t" and math.isfinite(e.ci_low)
    assert S.pair_seeds({1: math.inf}, {1: 1.0}) == ([], [], [1])


def test_non_finite_input_is_named():
    with pytest.raises(ValueError, match=r"d\[1\] = nan"):
        S.one_sample([0.1, math.nan, 0.3])


# --- degenerate spread ------------------------------------------------------------------------


def _nan_interval(e):
    assert math.isnan(e.ci_low) and math.isnan(e.ci_high) and math.isnan(e.p_value)
    assert not (e.ci_low == e.ci_high)  # never a zero-width interval


def test_degenerate_zero_spread():
    d = np.full(3, 0.01)
    e = S.one_sample(d)
    _nan_interval(e)
    assert e.degenerate == "zero spread: all 3 differences equal 0.01" and close(e.effect, 0.01)
    for f in (lambda: S.equivalence(d, -0.1, 0.1), lambda: S.log_ratio_paired([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]),
              lambda: S.welch([1.0, 1.0, 1.0], [0.5, 0.5]), lambda: S.equivalence_welch([1.0] * 3, [2.0] * 3, -2, 2)):
        e = f()
        _nan_interval(e)
        assert e.degenerate
    assert S.welch([1.0, 1.0, 1.0], [0.5, 0.5]).degenerate.startswith("both sides")


def test_degenerate_roundoff_spread():
    d = np.array([0.0, -2.78e-17, 2.78e-17])
    assert S.degenerate_spread(d) == ""  # judged against itself, noise looks like spread ...
    assert S.degenerate_spread(d, scale=0.5) == "round-off spread (sd 2.8e-17 vs scale 0.5)"  # ... not vs the metric
    e = S.one_sample(d, scale=0.5)
    _nan_interval(e)
    assert e.degenerate.startswith("round-off spread")
    # differences of nearly equal large numbers: judged against the numbers themselves
    a = np.array([0.1 + 0.2, 0.3, 0.7 - 0.4])  # 0.30000000000000004, 0.3, 0.29999999999999993
    b = np.full(3, 0.3)
    assert np.std(a - b, ddof=1) > 0
    assert S.one_sample(a - b, scale=np.abs(np.r_[a, b]).max()).degenerate.startswith("round-off")
    assert S.log_ratio_paired(a, b).degenerate.startswith("round-off")


def test_degenerate_threshold_uses_ddof1():
    """sd (ddof=1) of [0, delta] is delta/sqrt(2); the threshold is 1e-9 * scale."""
    assert S.degenerate_spread(np.array([0.0, 1.7e-9]), scale=1.0) == ""  # sd 1.20e-9 (ddof=0: 0.85e-9)
    assert S.degenerate_spread(np.array([0.0, 1.3e-9]), scale=1.0).startswith("round-off")  # sd 0.92e-9
    assert S.degenerate_spread(np.array([5.0])) == ""


def test_welch_one_constant_side():
    """One constant side is a valid Welch problem: df = n_other - 1, a real interval."""
    y = np.array([2.4, 2.9, 2.2, 2.65])
    x = np.full(3, 3.0)
    m, sd, se, df = moments(y)
    e = S.welch(x, y)
    assert e.test == "Welch t (x: no spread)" and e.degenerate == ""
    assert close(e.df, 3)
    assert close(e.ci_low, 3.0 - m - tq(3) * se) and close(e.ci_high, 3.0 - m + tq(3) * se)
    assert e.ci_high - e.ci_low > 0.1


# --- Benjamini-Hochberg -------------------------------------------------------------------------


def test_adjust_bh_hand_computation():
    p = [0.01, 0.04, math.nan, 0.03, 0.20]
    # by hand, m = 4 finite: sorted 0.01, 0.03, 0.04, 0.20 -> p*m/rank = 0.04, 0.06, 0.0533.., 0.20;
    # running minimum from the largest rank down: 0.04, 0.0533.., 0.0533.., 0.20
    expected = [0.04, 0.16 / 3, math.nan, 0.16 / 3, 0.20]
    got = S.adjust_bh(p)
    assert got.shape == (5,)
    assert math.isnan(got[2])
    for g, x in zip(got, expected):
        if not math.isnan(x):
            assert close(g, x)
    # the same by a written-out step-up rule
    fin = [(v, i) for i, v in enumerate(p) if not math.isnan(v)]
    m = len(fin)
    order = sorted(fin)
    adj, run = {}, 1.0
    for rank in range(m, 0, -1):
        v, i = order[rank - 1]
        run = min(run, v * m / rank)
        adj[i] = run
    for i, x in adj.items():
        assert close(got[i], x)
    assert np.isnan(S.adjust_bh([math.nan, math.nan])).all()
    assert S.adjust_bh([]).shape == (0,)


def test_degenerate_spread_falls_back_to_the_exact_sign_test():
    """Six saturated seeds (e.g. a mass of exactly 1.0, paper 003 Fig. 8) have no t
    interval; the sign test of median > min_effect gives p = 2^-6 and the order-statistic
    95% interval [x(1), x(6)] (coverage 1 - 2^-5). Three seeds: no interval (2^-3 > 2.5%)."""
    d = np.full(6, 0.05)
    e = S.one_sample(d, 0.0, paired=False)
    assert e.test == "sign test" and e.degenerate  # np.full(6, 0.05): sd of round-off size
    assert close(e.p_value, 2.0 ** -6) and e.ci_low == e.ci_high == 0.05 and close(e.effect, 0.05)
    mixed = np.array([0.05, 0.05, 0.05, 0.05, 0.05, 0.05 + 1e-13])  # round-off spread, one seed apart
    e = S.one_sample(mixed, 0.0, scale=1.0, paired=False)
    assert e.test == "sign test" and e.ci_low == 0.05 and close(e.ci_high, 0.05 + 1e-13)
    below = S.one_sample(np.full(6, -0.05), 0.0, paired=False)  # every seed on the wrong side
    assert close(below.p_value, 1.0) and below.ci_high == -0.05
    _nan_interval(S.one_sample(np.full(3, 0.05), 0.0, paired=False))
