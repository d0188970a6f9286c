"""Money and numbers for people in the admin pages: each currency in its own format, through
Babel's CLDR data, in the admin's language. Amounts stay integers of minor units until here."""

from __future__ import annotations

import re

from babel import Locale, UnknownLocaleError
from flask import has_request_context, request

from donations.money import exponent, format_money, major_units

DEFAULT_LOCALE = "en_US"


def admin_locale() -> str:
    """The first language of the admin's browser that Babel knows (else en_US)."""
    if has_request_context():
        for value, _quality in request.accept_languages:
            try:
                return str(Locale.parse(value.replace("-", "_")))
            except (ValueError, UnknownLocaleError):
                continue
    return DEFAULT_LOCALE


def money(minor: int | None, currency: str | None, locale: str | None = None) -> str:
    """Minor units as the locale writes that currency: usd 123456 → "$1,234.56" (en_US),
    jpy 5000 → "¥5,000", eur 123456 → "1.234,56 €" (de_DE). Never summed across currencies."""
    if minor is None or not currency:
        return "—"
    return format_money(minor, currency, locale or admin_locale())


def plain_major(minor: int | None, currency: str) -> str:
    """Minor units as a plain number an editor types back: 2500 usd → "25", 2550 → "25.50"."""
    if minor is None:
        return ""
    value = major_units(minor, currency)
    return str(int(value)) if value == value.to_integral_value() else f"{value:f}"


_AMOUNT = re.compile(r"([0-9]+)(?:[.,]([0-9]+))?")  # ASCII digits only (\d takes any script's)


class NotAnAmount(ValueError):
    """Text that is not an amount of this currency."""


def parse_major(text: str, currency: str) -> int:
    """An amount as an editor types it, in major units, to minor units without floats:
    "25" usd → 2500, "12.5" → 1250, "12,50" → 1250, "1 000" jpy → 1000. Raises NotAnAmount
    for anything else (signs, more decimals than the currency has, letters)."""
    exp = exponent(currency)
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "").replace("\u202f", "")
    if len(cleaned) > 20:
        raise NotAnAmount("That amount is too long.")
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        raise NotAnAmount(f"Write the amount in {currency.upper()}, e.g. {_example(currency)}.")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exp:
        raise NotAnAmount(
            f"{currency.upper()} has {exp} decimal place{'s' if exp != 1 else ''} at most."
        )
    return int(whole + fraction.ljust(exp, "0"))


def _example(currency: str) -> str:
    return "1000" if exponent(currency) == 0 else "12.50"
