"""Money as integer minor units plus an ISO 4217 currency; the one fee formula.

Never floats: amounts are ints, rates are Decimals turned into exact Fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

# Stripe's zero-decimal currencies: https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
# Stripe's three-decimal currencies (charged in multiples of 10 minor units).
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def exponent(currency: str) -> int:
    """Number of minor-unit digits of a currency (2 for usd, 0 for jpy)."""
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


@dataclass(frozen=True, order=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")
        if self.currency != self.currency.lower() or len(self.currency) != 3:
            raise ValueError("currency must be a lowercase ISO 4217 code")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def format(self) -> str:
        """Plain display: '25.00 USD', '500 JPY' (locale-aware formatting belongs to the UI)."""
        exp = exponent(self.currency)
        if exp == 0:
            return f"{self.amount} {self.currency.upper()}"
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**exp)
        return f"{sign}{whole}.{frac:0{exp}d} {self.currency.upper()}"


def major_units(minor: int, currency: str) -> Decimal:
    """1234 usd → Decimal("12.34"); 5000 jpy → Decimal("5000") (exact: no floats)."""
    return Decimal(int(minor)).scaleb(-exponent(currency))


def format_money(minor: int, currency: str, locale: str) -> str:
    """Minor units as `locale` writes that currency (Babel's CLDR data): usd 123456 →
    "$1,234.56" in en_US, eur 123456 → "1.234,56 €" in de_DE, jpy 5000 → "¥5,000"."""
    from babel.numbers import format_currency

    return format_currency(major_units(minor, currency), currency.upper(), locale=locale)


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer ceiling of numerator/denominator for positive denominators."""
    return -(-numerator // denominator)


@dataclass(frozen=True)
class CurrencyRule:
    """What one currency accepts and how its processing fee is estimated."""

    code: str
    minimum: int
    maximum: int
    fee_rate: Decimal = Decimal("0.029")
    fee_fixed: int = 30

    def check(self) -> None:
        if not (0 < self.minimum <= self.maximum):
            raise ValueError(f"{self.code}: need 0 < minimum <= maximum")
        if not (Decimal(0) <= self.fee_rate < Decimal(1)):
            raise ValueError(f"{self.code}: fee_rate must be in [0, 1)")
        if self.fee_fixed < 0:
            raise ValueError(f"{self.code}: fee_fixed must not be negative")

    def gross_up(self, gift: int) -> int:
        """Charged total so the newsroom nets `gift`: ceil((gift + fixed) / (1 - rate))."""
        rate = Fraction(self.fee_rate)
        fraction = (gift + self.fee_fixed) / (1 - rate)
        return ceil_div(fraction.numerator, fraction.denominator)

    def charge_for(self, gift: int, cover_fees: bool) -> tuple[int, int]:
        """(total, fee_covered) for a gift; fee_covered is 0 when the donor does not cover fees."""
        if not cover_fees:
            return gift, 0
        total = self.gross_up(gift)
        return total, total - gift


def default_currency_rules() -> dict[str, CurrencyRule]:
    """Currencies accepted out of the box (Stripe's card minimums and maximums, rounded up)."""
    return {
        "usd": CurrencyRule("usd", minimum=100, maximum=1_000_000),
        "eur": CurrencyRule("eur", minimum=100, maximum=1_000_000),
        "gbp": CurrencyRule("gbp", minimum=100, maximum=1_000_000),
        "jpy": CurrencyRule(
            "jpy", minimum=100, maximum=1_000_000, fee_rate=Decimal("0.036"), fee_fixed=0
        ),
    }
