"""The statistics behind the claims' verdicts: pure functions of per-seed values.

``ebm_bench.claims`` reduces each claim to per-seed values (one side, paired
differences, or two unpaired samples) and calls these functions; they return an
:class:`Estimate` (point effect, ``LEVEL`` interval, p value, degrees of freedom, n,
the test's name, and why the spread is degenerate if it is). Nothing here reads files
or knows about claims; it imports numpy, scipy and the standard library only (math,
dataclasses, typing, warnings).

What they fix in the earlier inline statistics (and why):

- **Pairing** (:func:`pair_seeds`): pair on the seeds both sides share with finite
  values and name the dropped ones, instead of falling back to Welch's test when one
  seed diverged on one side (which threw away the pairing of all the other seeds).
- **Degenerate spread** (:func:`degenerate_spread`): identical values (sd exactly 0) or
  a round-off spread (e.g. differences of -2.78e-17 noise) give no usable t statistic;
  the t interval would have zero width and p = 0. Such samples get a NaN interval and
  NaN p with the reason in ``Estimate.degenerate``; :func:`one_sample` (threshold and
  paired compare claims) then falls back to the exact sign test (:func:`sign_test`),
  which needs no spread and gives an interval from 6 seeds on.
- **Equivalence** (``within`` claims): two one-sided tests, TOST (Schuirmann 1987),
  of ``low < mean < high``; p = the larger of the two one-sided p values. At the
  per-side level ``(1 - LEVEL) / 2`` equivalence holds exactly when the two-sided
  ``LEVEL`` interval lies inside ``(low, high)``.
- **Relative effects**: a t interval of the mean log ratio, transformed back with
  ``exp(.) - 1`` (asymmetric around the ratio), instead of a symmetric interval of
  per-seed ratios; the effect is the geometric-mean ratio minus 1.
- **Multiplicity**: Benjamini & Hochberg (1995) false-discovery-rate adjusted p values
  (:func:`adjust_bh`, via ``scipy.stats.false_discovery_control``).

Intervals and p values come from SciPy's t tests (``scipy.stats.ttest_1samp`` and
``scipy.stats.ttest_ind(..., equal_var=False)``, Welch 1947); no quantile is typed in.
The reported ``df`` is computed here (``n - 1``; Welch-Satterthwaite) and
tests/test_claims/stats.py pins every number to an independent first-principles
computation (``scipy.stats.t.ppf`` / ``t.sf`` and numpy moments).

p values are one-sided: a direction claim is a test of ``effect > min_effect`` at
``(1 - LEVEL) / 2`` = 2.5%, which is the decision "the ``LEVEL`` interval lies above
``min_effect``"; an equivalence claim is TOST at 2.5% per side.

Degenerate spread: a sample is degenerate when its sd (ddof=1) is 0 or at most
``1e-9 * max(scale, max|values|, tiny)``; ``scale`` is the magnitude of the raw metric
values that differences were taken from (the differences of two nearly equal large
numbers carry round-off relative to those numbers, not to the differences). Log ratios
use scale 1: the round-off of a log is absolute, about machine epsilon. For Welch's
test a sample is degenerate only if *both* sides are (one constant side is a valid
Welch problem: its variance term is 0 and the other side carries the error); the
``test`` name then says which side had no spread. A zero total standard error never
reaches SciPy.

n < 2: NaN interval and p with ``degenerate == ""`` and ``n`` set; the caller decides
"too few seeds".

References: B. L. Welch (1947), Biometrika 34, 28-35; D. J. Schuirmann (1987),
J. Pharmacokinet. Biopharm. 15, 657-680; Y. Benjamini & Y. Hochberg (1995), J. R. Stat.
Soc. B 57, 289-300.

The mutation sweep that checked tests/test_claims/stats.py is listed in that file's
docstring.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95  # two-sided interval; each one-sided decision is a test at (1 - LEVEL) / 2 = 2.5%
ROUNDOFF = 1e-9  # relative sd at or below which a spread counts as round-off
NAN = math.nan


@dataclass(frozen=True)
class Estimate:
    """One claim's statistic.

    effect: point estimate, in the claim's units (relative effects: ratio - 1);
    ci_low, ci_high: the two-sided ``LEVEL`` interval (NaN when degenerate or n < 2);
    p_value: one-sided p of the function's null (NaN when degenerate or n < 2);
    df: degrees of freedom of the t reference (NaN where none);
    n: values (pairs) used; two-sample: min(len(x), len(y));
    test: short human name; degenerate: "" or why the spread is unusable.
    """

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    n: int
    test: str
    degenerate: str = ""


# --- input ---------------------------------------------------------------------------


def pair_seeds(a: dict[int, float], b: dict[int, float]) -> tuple[list[int], list[int], list[int]]:
    """(seeds with finite values on both sides, sorted; seeds finite only in ``a``; finite only in ``b``).

    A seed whose value is NaN/inf (diverged) or missing on one side is dropped from the
    pairs and listed on the side where it is finite, so the caller can name it; the
    other seeds stay paired."""

    def finite(d: dict[int, float]) -> set[int]:
        return {int(s) for s, v in d.items() if v is not None and math.isfinite(float(v))}

    fa, fb = finite(a), finite(b)
    shared = fa & fb
    return sorted(shared), sorted(fa - shared), sorted(fb - shared)


def _array(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {x[bad[0]]}: not finite (pair or drop such seeds first)")
    return x


def _positive(values, name: str) -> np.ndarray:
    x = _array(values, name)
    bad = np.flatnonzero(x <= 0)
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {x[bad[0]]:g}: a log ratio needs positive values")
    return x


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1))


def degenerate_spread(values: np.ndarray, scale: float | None = None, *, what: str = "values") -> str:
    """"" if the sample sd (ddof=1) is a real spread, else the reason.

    Degenerate if sd == 0, or sd <= 1e-9 * max(scale, max|values|, tiny): a t statistic
    built on such a spread measures round-off, and its interval would have (nearly)
    zero width. ``scale``: the magnitude of the raw metric values the values were
    computed from (differences of nearly equal large numbers). ``what`` names the
    values in the reason ("differences", "deviations"). Fewer than 2 values: ""
    (no spread to judge; the caller reports too few seeds)."""
    x = _array(values, what)
    if len(x) < 2:
        return ""
    sd = _sd(x)
    if sd == 0.0:
        return f"zero spread: all {len(x)} {what} equal {x[0]:.6g}"
    ref = max(float(scale) if scale is not None else 0.0, float(np.max(np.abs(x))), np.finfo(float).tiny)
    if sd <= ROUNDOFF * ref:
        return f"round-off spread (sd {sd:.2g} vs scale {ref:.2g})"
    return ""


# --- one value per seed ----------------------------------------------------------------


def _none(effect: float, n: int, test: str, df: float = NAN, degenerate: str = "") -> Estimate:
    return Estimate(effect, NAN, NAN, NAN, df, n, test, degenerate)


def _one_prep(d, scale, test: str, paired: bool) -> tuple[np.ndarray, int, float, float, str, Estimate | None]:
    """(d, n, mean, df, test, an early Estimate when n < 2 or the spread is degenerate)."""
    d = _array(d, "d")
    n = len(d)
    if n < 2:
        return d, n, NAN, NAN, test, _none(float(d[0]) if n else NAN, n, test)
    mean, df = float(np.mean(d)), float(n - 1)
    why = degenerate_spread(d, scale, what="differences" if paired else "values")
    return d, n, mean, df, test, (_none(mean, n, test, df, why) if why else None)


def one_sample(d: np.ndarray, min_effect: float = 0.0, scale: float | None = None, *,
               paired: bool = True) -> Estimate:
    """Mean of per-seed oriented effects ``d`` (positive = the paper is right).

    effect = mean(d); the ``LEVEL`` t interval (df = n - 1); p = one-sided one-sample
    t-test of mean(d) > ``min_effect``. Degenerate spread -> NaN interval and NaN p.
    ``paired`` only names the test: "paired t" (d are paired differences) or
    "one-sample t" (d are values minus a fixed target)."""
    d, n, mean, df, test, early = _one_prep(d, scale, "paired t" if paired else "one-sample t", paired)
    if early is not None:
        return sign_test(d, min_effect, early) if early.degenerate else early
    lo, hi = stats.ttest_1samp(d, min_effect).confidence_interval(confidence_level=LEVEL)
    p = stats.ttest_1samp(d, min_effect, alternative="greater").pvalue
    return Estimate(mean, float(lo), float(hi), float(p), df, n, test)


def sign_test(d: np.ndarray, min_effect: float, degenerate: Estimate) -> Estimate:
    """The distribution-free fallback of :func:`one_sample` when the spread is degenerate
    (every seed saturated at the same value, e.g. a mass of exactly 1.0): the exact sign
    test of median(d) > ``min_effect`` (``scipy.stats.quantile_test``, p = 0.5) and its
    order-statistic ``LEVEL`` interval of the median. Seeds are independent, so under the
    null each lies above ``min_effect`` with probability at most 1/2: n seeds all above give
    p = 2^-n, and the two-sided interval exists from n = 6 on (coverage 1 - 2^-5). With
    fewer seeds the degenerate estimate is returned unchanged (no interval, no p)."""
    ci = stats.quantile_test(d, q=min_effect, p=0.5).confidence_interval(confidence_level=LEVEL)
    if not (math.isfinite(ci.low) and math.isfinite(ci.high)):
        return degenerate
    p = stats.quantile_test(d, q=min_effect, p=0.5, alternative="greater").pvalue
    return Estimate(float(np.median(d)), float(ci.low), float(ci.high), float(p), NAN, len(d),
                    "sign test", degenerate.degenerate)


def equivalence(d: np.ndarray, low: float, high: float, scale: float | None = None, *,
                paired: bool = True) -> Estimate:
    """TOST (Schuirmann 1987) for ``low < mean(d) < high`` from one value per seed
    (paired differences, or deviations from a claimed value).

    effect = mean(d); interval = the two-sided ``LEVEL`` t interval (df = n - 1);
    p = max(p of mean > low, p of mean < high), each a one-sided one-sample t-test.
    Equivalence at per-side level (1 - LEVEL) / 2 holds exactly when the interval lies
    inside (low, high). A plain t-test of mean = 0 would test the wrong null."""
    if not low < high:
        raise ValueError(f"equivalence band ({low}, {high}): need low < high")
    d, n, mean, df, test, early = _one_prep(d, scale, "TOST paired t" if paired else "TOST one-sample t", paired)
    if early is not None:
        return early
    lo, hi = stats.ttest_1samp(d, low).confidence_interval(confidence_level=LEVEL)
    p_low = stats.ttest_1samp(d, low, alternative="greater").pvalue
    p_high = stats.ttest_1samp(d, high, alternative="less").pvalue
    return Estimate(mean, float(lo), float(hi), float(max(p_low, p_high)), df, n, test)


# --- two unpaired samples (Welch) ----------------------------------------------------------


def _welch_prep(x, y, scale) -> tuple[np.ndarray, np.ndarray, int, float, float, str, str]:
    """(x, y, n, effect, Welch df, "" or why degenerate, note on one constant side)."""
    x, y = _array(x, "x"), _array(y, "y")
    n = min(len(x), len(y))
    eff = float(np.mean(x) - np.mean(y)) if len(x) and len(y) else NAN
    if n < 2:
        return x, y, n, eff, NAN, "", ""
    wx, wy = degenerate_spread(x, scale), degenerate_spread(y, scale)
    if wx and wy:
        return x, y, n, eff, NAN, f"both sides: x {wx}; y {wy}", ""
    vx, vy = _sd(x) ** 2 / len(x), _sd(y) ** 2 / len(y)  # squared standard errors of the means
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))  # Welch-Satterthwaite
    note = " (x: no spread)" if wx else " (y: no spread)" if wy else ""
    return x, y, n, eff, float(df), "", note


def _welch_test(x: np.ndarray, y: np.ndarray, note: str, alternative: str = "two-sided"):
    """scipy's Welch t-test; with a side known to be constant (``note``) its
    precision-loss warning is noise and is silenced."""
    with warnings.catch_warnings():
        if note:
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        return stats.ttest_ind(x, y, equal_var=False, alternative=alternative)


def welch(x: np.ndarray, y: np.ndarray, min_effect: float = 0.0, scale: float | None = None) -> Estimate:
    """Welch's (1947) unequal-variance t for effect = mean(x) - mean(y).

    Welch-Satterthwaite df; the ``LEVEL`` interval; p = one-sided Welch test of
    effect > ``min_effect``. Degenerate only if *both* samples have a degenerate spread
    (then the standard error is ~0 and NaN interval and p are returned); one constant
    side is fine for Welch and ``test`` says "(x: no spread)" / "(y: no spread)".
    n = min(len(x), len(y))."""
    x, y, n, eff, df, why, note = _welch_prep(x, y, scale)
    test = "Welch t" + note
    if n < 2 or why:
        return _none(eff, n, test, df, why)
    lo, hi = _welch_test(x, y, note).confidence_interval(confidence_level=LEVEL)
    p = _welch_test(x - min_effect, y, note, "greater").pvalue
    return Estimate(eff, float(lo), float(hi), float(p), df, n, test)


def equivalence_welch(x: np.ndarray, y: np.ndarray, low: float, high: float,
                      scale: float | None = None) -> Estimate:
    """TOST (Schuirmann 1987) with Welch's t for ``low < mean(x) - mean(y) < high``.

    Interval and df as :func:`welch`; p = max of the two one-sided Welch p values."""
    if not low < high:
        raise ValueError(f"equivalence band ({low}, {high}): need low < high")
    x, y, n, eff, df, why, note = _welch_prep(x, y, scale)
    test = "TOST Welch t" + note
    if n < 2 or why:
        return _none(eff, n, test, df, why)
    lo, hi = _welch_test(x, y, note).confidence_interval(confidence_level=LEVEL)
    p_low = _welch_test(x - low, y, note, "greater").pvalue
    p_high = _welch_test(x - high, y, note, "less").pvalue
    return Estimate(eff, float(lo), float(hi), float(max(p_low, p_high)), df, n, test)


# --- relative effects (log ratios) ----------------------------------------------------------


def _log1p_bound(v: float, name: str) -> float:
    if not v > -1.0:
        raise ValueError(f"{name} = {v}: a relative effect must be > -1")
    return math.log1p(v)


def _back(e: Estimate, test: str) -> Estimate:
    """An estimate on the log scale reported as ratio - 1 (exp(.) - 1 of effect and interval)."""
    return Estimate(math.expm1(e.effect), math.expm1(e.ci_low), math.expm1(e.ci_high), e.p_value, e.df, e.n,
                    test, e.degenerate)


def log_ratio_paired(num: np.ndarray, den: np.ndarray, min_effect: float = 0.0) -> Estimate:
    """Relative effect num/den - 1 from paired positive values.

    The t interval of mean(log(num/den)) reported as exp(.) - 1 (asymmetric around the
    ratio, and never below -1); effect = exp(mean log ratio) - 1, the geometric-mean
    ratio minus 1; p = one-sided test of mean log ratio > log(1 + ``min_effect``).
    Raises ValueError naming the offending value if any value <= 0."""
    num, den = _positive(num, "num"), _positive(den, "den")
    if len(num) != len(den):
        raise ValueError(f"paired log ratio: {len(num)} numerators vs {len(den)} denominators")
    lr = np.log(num) - np.log(den)
    e = one_sample(lr, _log1p_bound(min_effect, "min_effect"), scale=1.0)
    return _back(e, "paired t on log ratio")


def log_ratio_welch(num: np.ndarray, den: np.ndarray, min_effect: float = 0.0) -> Estimate:
    """Relative effect from unpaired positive samples: Welch's t on the logs.

    effect = exp(mean log num - mean log den) - 1 (ratio of geometric means minus 1);
    interval and p as :func:`log_ratio_paired` but with Welch's test."""
    lx, ly = np.log(_positive(num, "num")), np.log(_positive(den, "den"))
    e = welch(lx, ly, _log1p_bound(min_effect, "min_effect"), scale=1.0)
    return _back(e, e.test.replace("Welch t", "Welch t on log ratio", 1))


def log_ratio_equivalence(num: np.ndarray, den: np.ndarray, low: float, high: float,
                          paired: bool = True) -> Estimate:
    """TOST on the log ratio for ``low < num/den - 1 < high`` (bounds mapped with log1p);
    effect and interval reported as ratio - 1."""
    lo_b, hi_b = _log1p_bound(low, "low"), _log1p_bound(high, "high")
    num, den = _positive(num, "num"), _positive(den, "den")
    if paired:
        if len(num) != len(den):
            raise ValueError(f"paired log ratio: {len(num)} numerators vs {len(den)} denominators")
        e = equivalence(np.log(num) - np.log(den), lo_b, hi_b, scale=1.0)
        return _back(e, "TOST paired t on log ratio")
    e = equivalence_welch(np.log(num), np.log(den), lo_b, hi_b, scale=1.0)
    return _back(e, e.test.replace("TOST Welch t", "TOST Welch t on log ratio", 1))


# --- multiplicity ------------------------------------------------------------------------


def adjust_bh(p: Sequence[float]) -> np.ndarray:
    """Benjamini & Hochberg (1995) adjusted p values (``scipy.stats.false_discovery_control``,
    method "bh") over the finite entries; NaN stays NaN and does not count in m."""
    p = np.asarray(p, dtype=float).ravel()
    out = np.full(p.shape, NAN)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out
