"""Statistics for benchmark samples: percentiles, t confidence intervals, bootstrap ratios.

Written here rather than taken from scipy because the project does not depend on scipy and the
pieces needed are small: a Student t quantile (for a 95% interval over a handful of repetitions,
where the normal 1.96 would be far too narrow) and a percentile bootstrap of a ratio of means
(for comparing two result files without assuming the samples are normal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "MeanCI",
    "RatioCI",
    "bootstrap_ratio",
    "mean_ci",
    "percentile",
    "t_cdf",
    "t_quantile",
]

#: Fixed so that comparing the same two files twice prints the same interval.
BOOTSTRAP_SEED = 20240601
BOOTSTRAP_RESAMPLES = 4000


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics.

    This is numpy's default ("type 7", as in R and spreadsheets), so the numbers in a result file
    can be re-derived from its samples with any common tool. None for no values.
    """
    if not values:
        return None
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    return float(np.percentile(np.asarray(values, dtype=float), q))


# -- Student t distribution -------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast only on one side of the mean; use symmetry.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (inverse of :func:`t_cdf`).

    Found by bisection on the CDF: slow by numerical standards (~100 CDF calls) but exact to
    1e-10 and only ever called once per summary.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # the upper tail is heavy for df=1: grow the bracket
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class MeanCI:
    """A mean and its two-sided confidence interval (None when n < 2: no spread to estimate)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    level: float = 0.95


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI | None:
    """Mean with a t-distribution confidence interval; None for no values.

    Used over per-repetition means: repetitions are few (3-10), so the t quantile matters (for 3
    repetitions it is 4.30, not 1.96).
    """
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return None
    mean = float(data.mean())
    if n < 2:
        return MeanCI(mean, None, None, n, level)
    sem = float(data.std(ddof=1)) / math.sqrt(n)
    half = t_quantile(0.5 + level / 2.0, n - 1) * sem
    return MeanCI(mean, mean - half, mean + half, n, level)


# -- comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioCI:
    """The ratio mean(B)/mean(A) with a bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    level: float = 0.95


def bootstrap_ratio(
    a: Sequence[float],
    b: Sequence[float],
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> RatioCI | None:
    """Percentile bootstrap of mean(b) / mean(a), resampling each side independently.

    Returns None when either side has fewer than 2 values or a zero mean (no ratio to speak of).
    The seed is fixed so the verdict of a comparison is reproducible.
    """
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if xa.size < 2 or xb.size < 2 or xa.mean() == 0:
        return None
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    batch = max(1, 2_000_000 // max(xa.size, xb.size))  # bound the index matrices' memory
    for start in range(0, resamples, batch):
        k = min(batch, resamples - start)
        ma = xa[rng.integers(0, xa.size, size=(k, xa.size))].mean(axis=1)
        mb = xb[rng.integers(0, xb.size, size=(k, xb.size))].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[start : start + k] = mb / ma
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return RatioCI(float(xb.mean() / xa.mean()), float(low), float(high), level)
