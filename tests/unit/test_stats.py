"""The experiment statistics agree with scipy, computed independently here."""

import math

import pytest
from scipy import stats as sp

from donations.reports import stats

Z_SCIPY = sp.norm.ppf(0.975)


def test_the_z_constant_is_the_normal_975th_percentile():
    assert abs(stats.Z95 - Z_SCIPY) < 1e-6


@pytest.mark.parametrize(
    ("successes", "trials"),
    [(0, 1), (1, 1), (0, 100), (5, 100), (50, 100), (100, 100), (3, 7), (17, 12_345), (1, 10**7)],
)
def test_the_wilson_interval_matches_scipy(successes, trials):
    reference = sp.binomtest(successes, trials).proportion_ci(
        confidence_level=0.95, method="wilson"
    )
    lo, hi = stats.wilson_interval(successes, trials)
    # z = 1.959964 vs scipy's 1.95996398454…: the bounds agree to well below 1e-8.
    assert lo == pytest.approx(reference.low, rel=1e-7, abs=1e-12)
    assert hi == pytest.approx(reference.high, rel=1e-7, abs=1e-12)
    assert 0.0 <= lo <= successes / trials <= hi <= 1.0


def test_the_wilson_interval_with_scipys_own_z_matches_to_machine_precision():
    reference = sp.binomtest(37, 1000).proportion_ci(method="wilson")
    lo, hi = stats.wilson_interval(37, 1000, z=Z_SCIPY)
    assert lo == pytest.approx(reference.low, rel=1e-12)
    assert hi == pytest.approx(reference.high, rel=1e-12)


@pytest.mark.parametrize(("successes", "trials"), [(1, 0), (-1, 5), (6, 5)])
def test_the_wilson_interval_refuses_impossible_counts(successes, trials):
    with pytest.raises(ValueError):
        stats.wilson_interval(successes, trials)


def reference_pooled_z_test(x1, n1, x2, n2):
    """The textbook pooled two-proportion z-test, tail from scipy's normal."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p1 - p2) / se
    return z, 2 * sp.norm.sf(abs(z))


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [
        (30, 1000, 20, 1000),
        (20, 1000, 30, 1000),
        (10, 500, 10, 500),
        (1, 100, 9, 120),
        (120, 10_000, 180, 10_000),  # far tail: p ≈ 5e-4
        (500, 10_000, 1000, 10_000),  # very far tail: p ≈ 1e-41
        (0, 100, 5, 100),
    ],
)
def test_the_two_proportion_p_value_matches_scipy(x1, n1, x2, n2):
    z_ref, p_ref = reference_pooled_z_test(x1, n1, x2, n2)
    assert stats.two_proportion_z(x1, n1, x2, n2) == pytest.approx(z_ref, rel=1e-12)
    assert stats.two_proportion_p_value(x1, n1, x2, n2) == pytest.approx(p_ref, rel=1e-9)


def test_the_two_proportion_test_is_undefined_without_trials_or_without_variance():
    assert stats.two_proportion_p_value(0, 0, 5, 100) is None
    assert stats.two_proportion_p_value(5, 100, 0, 0) is None
    assert stats.two_proportion_p_value(0, 100, 0, 100) is None  # nobody converted anywhere
    assert stats.two_proportion_p_value(100, 100, 50, 50) is None  # everybody converted
    assert stats.two_proportion_p_value(101, 100, 5, 100) is None


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 30])
@pytest.mark.parametrize("statistic", [0.001, 0.5, 1.0, 2.5, 6.0, 11.3, 16.27, 25.0, 60.0, 150.0])
def test_the_chi_square_survival_function_matches_scipy(df, statistic):
    reference = sp.chi2.sf(statistic, df)
    assert stats.chi_square_sf(statistic, df) == pytest.approx(reference, rel=1e-9, abs=1e-300)


def test_the_chi_square_survival_function_at_zero_is_one():
    assert stats.chi_square_sf(0.0, 3) == 1.0


@pytest.mark.parametrize(("a", "x"), [(0.5, 0.2), (0.5, 3.0), (2.5, 2.0), (12.0, 11.0), (40, 80)])
def test_the_regularized_upper_gamma_matches_scipy(a, x):
    from scipy import special

    assert stats.regularized_gamma_q(a, x) == pytest.approx(special.gammaincc(a, x), rel=1e-10)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ([5000, 5000], [1, 1]),
        ([5100, 4900], [1, 1]),
        ([5300, 4700], [1, 1]),
        ([3000, 3100, 2900], [1, 1, 1]),
        ([2000, 1000, 1000], [2, 1, 1]),
        ([2300, 900, 800], [2, 1, 1]),
        ([120, 80, 95, 105], [1, 1, 1, 1]),
    ],
)
def test_the_goodness_of_fit_matches_scipy(observed, weights):
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    reference = sp.chisquare(observed, expected)
    statistic, p_value = stats.chi_square_goodness_of_fit(observed, weights)
    assert statistic == pytest.approx(reference.statistic, rel=1e-12, abs=1e-12)
    assert p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_a_sample_ratio_mismatch_is_flagged_below_one_in_a_thousand():
    p_even, warn_even = stats.sample_ratio_mismatch([5100, 4900], [1, 1])
    assert p_even == pytest.approx(sp.chisquare([5100, 4900]).pvalue, rel=1e-9)
    assert warn_even is False
    p_skewed, warn_skewed = stats.sample_ratio_mismatch([5300, 4700], [1, 1])
    assert p_skewed == pytest.approx(sp.chisquare([5300, 4700]).pvalue, rel=1e-9)
    assert p_skewed < 0.001 and warn_skewed is True


def test_sample_ratio_mismatch_needs_two_arms_and_some_impressions():
    assert stats.sample_ratio_mismatch([100], [1]) == (None, False)
    assert stats.sample_ratio_mismatch([0, 0], [1, 1]) == (None, False)


def test_impressions_of_a_variant_weighted_zero_are_a_certain_mismatch():
    assert stats.sample_ratio_mismatch([100, 3], [1, 0]) == (0.0, True)
    assert stats.sample_ratio_mismatch([100, 0], [1, 0]) == (1.0, False)


@pytest.mark.parametrize(
    ("start", "end", "spans", "months"),
    [
        # within one month: days only
        ("2026-03-05", "2026-03-20", [("2026-03-05", "2026-03-20")], None),
        # exactly one whole month
        ("2026-02-01", "2026-02-28", [], ("2026-02-01", "2026-02-01")),
        # partial ends around whole months
        (
            "2025-11-29",
            "2026-11-28",
            [("2025-11-29", "2025-11-30"), ("2026-11-01", "2026-11-28")],
            ("2025-12-01", "2026-10-01"),
        ),
        # across a month boundary without a whole month
        ("2026-01-20", "2026-02-10", [("2026-01-20", "2026-02-10")], None),
        # starts on the first, ends mid-month
        ("2026-01-01", "2026-03-15", [("2026-03-01", "2026-03-15")], ("2026-01-01", "2026-02-01")),
    ],
)
def test_long_ranges_split_into_whole_months_and_partial_ends(start, end, spans, months):
    from datetime import date, timedelta

    from donations.reports.articles import split_by_month

    d = date.fromisoformat
    got_spans, got_months = split_by_month(d(start), d(end))
    assert got_spans == [(d(a), d(b)) for a, b in spans]
    assert got_months == (tuple(map(d, months)) if months else None)
    # every day of the range is covered exactly once
    covered = sum((b - a).days + 1 for a, b in got_spans)
    if got_months:
        m = got_months[0]
        while m <= got_months[1]:
            nxt = (m.replace(day=28) + timedelta(days=4)).replace(day=1)
            covered += (nxt - m).days
            m = nxt
    assert covered == (d(end) - d(start)).days + 1
