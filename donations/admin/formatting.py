"""Money and numbers for people in the admin pages: each currency in its own format, through
Babel's CLDR data, in the admin's language. Amounts stay integers of minor units until here."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from flask import has_request_context, request

from donations.money import format_money, major_units

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
