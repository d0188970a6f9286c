from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from donations.money import CurrencyRule, Money, exponent


def test_zero_decimal_currencies_have_no_minor_unit():
    assert exponent("jpy") == 0
    assert exponent("krw") == 0
    assert exponent("usd") == 2
    assert exponent("kwd") == 3


def test_money_formats_in_major_units():
    assert Money(2500, "usd").format() == "25.00 USD"
    assert Money(500, "jpy").format() == "500 JPY"
    assert Money(-5, "eur").format() == "-0.05 EUR"


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money(25.0, "usd")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "usd") + Money(1, "eur")


def test_gross_up_uses_the_documented_formula():
    rule = CurrencyRule("usd", 100, 1_000_000, Decimal("0.029"), 30)
    # ceil((2500 + 30) / 0.971) = ceil(2605.56…) = 2606
    assert rule.charge_for(2500, cover_fees=True) == (2606, 106)
    assert rule.charge_for(2500, cover_fees=False) == (2500, 0)


def test_gross_up_of_an_exact_quotient_is_not_rounded_up():
    rule = CurrencyRule("usd", 1, 10**9, Decimal("0.5"), 0)
    assert rule.gross_up(50) == 100


rates = st.integers(min_value=0, max_value=999).map(lambda n: Decimal(n) / 1000)


@given(
    gift=st.integers(min_value=1, max_value=10**9),
    rate=rates,
    fixed=st.integers(min_value=0, max_value=1000),
)
def test_covered_total_is_the_smallest_that_nets_the_gift(gift, rate, fixed):
    rule = CurrencyRule("usd", 1, 10**10, rate, fixed)
    total, covered = rule.charge_for(gift, cover_fees=True)
    keep = 1 - Fraction(rate)
    assert isinstance(total, int) and total == gift + covered
    # the newsroom nets at least the gift after the estimated fee …
    assert total * keep - fixed >= gift
    # … and one minor unit less would not
    assert (total - 1) * keep - fixed < gift
