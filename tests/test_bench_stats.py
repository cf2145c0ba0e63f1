"""Statistics of the bench against values computed independently (R / published tables)."""

from __future__ import annotations

import math

import pytest

from conformance.bench.stats import bootstrap_ratio, mean_ci, percentile, t_cdf, t_quantile


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (50, 5.5), (90, 9.1), (99, 9.91), (100, 10.0), (25, 3.25)],
)
def test_percentile_interpolates_linearly(q: float, expected: float) -> None:
    # R: quantile(1:10, q/100, type = 7)
    assert percentile(list(range(1, 11)), q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_bad_q_raises() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, 12.706204736),
        (2, 4.302652730),
        (3, 3.182446305),
        (4, 2.776445105),
        (9, 2.262157163),
        (29, 2.045229642),
        (120, 1.979930405),
    ],
)
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    # R: qt(0.975, df)
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-8)


def test_t_quantile_other_levels_and_symmetry() -> None:
    assert t_quantile(0.95, 5) == pytest.approx(2.015048373, abs=1e-8)  # qt(0.95, 5)
    assert t_quantile(0.995, 10) == pytest.approx(3.169272673, abs=1e-8)  # qt(0.995, 10)
    assert t_quantile(0.025, 4) == pytest.approx(-2.776445105, abs=1e-8)
    assert t_quantile(0.5, 7) == 0.0
    # Large df approaches the normal quantile.
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959963985, abs=1e-6)


def test_t_cdf_known_points() -> None:
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(-2.0, 2) == pytest.approx(0.5 - 1 / math.sqrt(6), abs=1e-12)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_t_quantile_rejects_probabilities_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError):
        t_quantile(bad, 3)


def test_mean_ci_against_hand_computation() -> None:
    # mean 3, sd sqrt(2.5), n 5: half width = qt(.975, 4) * sqrt(2.5) / sqrt(5)
    ci = mean_ci([1, 2, 3, 4, 5])
    assert ci is not None
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert ci.mean == pytest.approx(3.0)
    assert ci.low == pytest.approx(3.0 - half)
    assert ci.high == pytest.approx(3.0 + half)
    assert ci.n == 5


def test_mean_ci_single_value_has_no_interval_and_empty_is_none() -> None:
    ci = mean_ci([7.0])
    assert ci is not None
    assert (ci.mean, ci.low, ci.high) == (7.0, None, None)
    assert mean_ci([]) is None


def test_mean_ci_of_constant_values_is_a_point() -> None:
    ci = mean_ci([2.0, 2.0, 2.0])
    assert ci is not None
    assert ci.low == ci.high == 2.0


def test_bootstrap_ratio_separated_samples_excludes_one() -> None:
    a = [100 + (i % 5) for i in range(40)]
    b = [80 + (i % 5) for i in range(40)]
    ci = bootstrap_ratio(a, b)
    assert ci is not None
    assert ci.ratio == pytest.approx(82 / 102)
    assert ci.low < ci.ratio < ci.high < 1.0


def test_bootstrap_ratio_overlapping_samples_contains_one() -> None:
    a = [100, 90, 110, 95, 105, 100]
    b = [101, 91, 109, 96, 104, 99]
    ci = bootstrap_ratio(a, b)
    assert ci is not None
    assert ci.low < 1.0 < ci.high


def test_bootstrap_ratio_is_reproducible_and_needs_two_values() -> None:
    a, b = [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]
    assert bootstrap_ratio(a, b) == bootstrap_ratio(a, b)
    assert bootstrap_ratio([1.0], b) is None
    assert bootstrap_ratio([0.0, 0.0], b) is None
