"""Statistics for A/B experiment reports: pure functions, standard library only.

Checked against scipy in tests/unit/test_stats.py (scipy is a test-only dependency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The 97.5th percentile of the standard normal distribution (two-sided 95%), as in API.md.
Z95 = 1.959964
# Sample-ratio mismatch is flagged below this p-value (the usual, deliberately strict level:
# a true SRM signals broken bucketing or counting, and false alarms would train people to
# ignore it).
SRM_ALPHA = 0.001

_EPS = 1e-16
_MAX_ITERATIONS = 10_000
_TINY = 1e-300


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion successes/trials."""
    if trials <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    if not 0 <= successes <= trials:
        raise ValueError("successes must lie between 0 and trials")
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_two_sided_p(z: float) -> float:
    """P(|Z| ≥ |z|) for a standard normal Z; erfc keeps tiny tails accurate."""
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Pooled two-proportion z statistic of x1/n1 against x2/n2; None when undefined."""
    if n1 <= 0 or n2 <= 0 or not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    return (x1 / n1 - x2 / n2) / math.sqrt(variance)


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None when undefined."""
    z = two_proportion_z(x1, n1, x2, n2)
    return None if z is None else normal_two_sided_p(z)


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function.

    Series for P when x < a + 1, else a continued fraction for Q (modified Lentz), as in
    Numerical Recipes §6.2: each converges quickly in its own region, and the continued
    fraction keeps small upper tails accurate to relative precision.
    """
    if a <= 0:
        raise ValueError("a must be positive")
    if x < 0:
        raise ValueError("x must not be negative")
    if x == 0:
        return 1.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return math.exp(log_prefactor) * h


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X ≥ statistic) for X chi-square distributed with df degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if statistic <= 0:
        return 1.0
    return regularized_gamma_q(df / 2, statistic / 2)


def chi_square_goodness_of_fit(
    observed: Sequence[int], weights: Sequence[float]
) -> tuple[float, float] | None:
    """(statistic, p-value) of observed counts against the split the weights expect.

    None when there is nothing to test (fewer than two categories or no observations).
    A category the weights give no share but which was observed is an infinite mismatch.
    """
    if len(observed) != len(weights):
        raise ValueError("one weight per observed count")
    if any(w < 0 for w in weights) or any(o < 0 for o in observed):
        raise ValueError("counts and weights must not be negative")
    total = sum(observed)
    weight_total = sum(weights)
    if len(observed) < 2 or total <= 0 or weight_total <= 0:
        return None
    statistic = 0.0
    for count, weight in zip(observed, weights, strict=True):
        expected = total * weight / weight_total
        if expected == 0:
            if count > 0:
                return math.inf, 0.0
            continue
        statistic += (count - expected) ** 2 / expected
    return statistic, chi_square_sf(statistic, len(observed) - 1)


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float], alpha: float = SRM_ALPHA
) -> tuple[float | None, bool]:
    """(p-value, warning) of the chi-square test that impressions follow the weights."""
    result = chi_square_goodness_of_fit(observed, weights)
    if result is None:
        return None, False
    _, p_value = result
    return p_value, p_value < alpha
