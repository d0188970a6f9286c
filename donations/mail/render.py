"""Rendering emails: plain data in, subject + text + HTML out (no database, no network).

Templates live in templates/mail/ (one .txt and one .html per kind); the words come from
templates/mail/messages.json, one block per language, so a translation is one JSON block and
no template changes. A language the catalogue lacks falls back to its base language
("pt-br" → "pt"), then to English. Money and dates are formatted by Babel in that language.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from donations.money import format_money
from donations.paths import TEMPLATES

MAIL_TEMPLATES = TEMPLATES / "mail"
DEFAULT_LANGUAGE = "en"
RENDERED_KINDS = ("receipt", "renewal_receipt", "sign_in_link", "subscription_changed")
CHANGES = ("canceled", "cancel_at_period_end", "resumed", "amount", "interval", "card_updated")


class RenderError(ValueError):
    """The message cannot be rendered (unknown kind, payload missing what it needs)."""


@dataclass(frozen=True)
class Newsroom:
    """Who the mail is from, as receipts must say, and where the donor's account page is."""

    name: str
    address: str
    account_url: str
    # A newsroom that issues tax receipts says so here; otherwise a not-tax-advice line.
    tax_note: str | None = None


@dataclass(frozen=True)
class Receipt:
    """One successful payment: the booked figures, in minor units."""

    number: str  # the contribution id
    currency: str
    charged: int  # what the card was charged: gift + covered
    gift: int
    covered: int  # the processing fee the donor chose to cover
    frequency: str  # one_off | monthly | annual
    paid_at: datetime
    renewal: bool = False
    next_charge: date | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@cache
def catalogue() -> dict[str, dict[str, str]]:
    with open(MAIL_TEMPLATES / "messages.json", encoding="utf-8") as f:
        data: dict[str, dict[str, str]] = json.load(f)
    return data


@cache
def _environment(autoescape: bool) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(MAIL_TEMPLATES)),
        # The .txt bodies are plain text, never HTML: escaping them would garble them.
        autoescape=select_autoescape(["html"]) if autoescape else False,  # noqa: S701
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def languages() -> tuple[str, ...]:
    """The languages receipts are written in."""
    return tuple(catalogue())


def language_for(lang: str | None) -> tuple[str, str]:
    """(catalogue language, Babel locale) for a BCP-47-ish code; unknown → English.

    The locale keeps the region when the catalogue has the language ("en-gb" → en, en_GB).
    """
    code = (lang or "").strip().lower().replace("_", "-")
    base = code.split("-")[0]
    known = catalogue()
    chosen = code if code in known else base if base in known else DEFAULT_LANGUAGE
    locale = chosen
    if chosen.split("-")[0] == base:
        try:
            locale = str(Locale.parse(code.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            locale = chosen.replace("-", "_")
    return chosen, locale


class Words:
    """The catalogue in one language, English filling any gap."""

    def __init__(self, language: str, locale: str) -> None:
        self.language = language
        self.locale = locale
        self._own = catalogue()[language]
        self._fallback = catalogue()[DEFAULT_LANGUAGE]

    def __call__(self, key: str, **values: Any) -> str:
        text = self._own.get(key) or self._fallback[key]
        return text.format(**values) if values else text

    def money(self, minor: int, currency: str) -> str:
        return format_money(minor, currency, self.locale)

    def date(self, value: date | datetime) -> str:
        return format_date(value, format="long", locale=self.locale)


def render(
    kind: str,
    lang: str | None,
    newsroom: Newsroom,
    *,
    donor_name: str | None = None,
    receipt: Receipt | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Rendered:
    """Subject, text and HTML of one message of `kind` in the donor's language."""
    language, locale = language_for(lang)
    t = Words(language, locale)
    context: dict[str, Any] = {
        "t": t,
        "lang": language,
        "newsroom": newsroom,
        "greeting": t("greeting", name=donor_name) if donor_name else t("greeting_anonymous"),
    }
    payload = payload or {}
    match kind:
        case "receipt" | "renewal_receipt":
            if receipt is None:
                raise RenderError(f"{kind} needs the payment it is for")
            template = "receipt"
            subject = t(f"{kind}.subject", newsroom=newsroom.name)
            context["receipt"] = receipt
            context["thanks"] = t(f"{kind}.thanks", newsroom=newsroom.name)
            context["frequency"] = t(f"frequency.{receipt.frequency}")
        case "sign_in_link":
            url = payload.get("url")
            minutes = payload.get("expires_minutes")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise RenderError("sign_in_link needs payload.url")
            if not isinstance(minutes, int) or minutes <= 0:
                raise RenderError("sign_in_link needs payload.expires_minutes")
            template = "sign_in_link"
            subject = t("sign_in_link.subject", newsroom=newsroom.name)
            context.update(url=url, minutes=minutes)
        case "subscription_changed":
            template = "subscription_changed"
            subject = t("subscription_changed.subject", newsroom=newsroom.name)
            context.update(_change_lines(t, payload))
        case _:
            raise RenderError(f"no template for email kind {kind!r}")
    text = _environment(False).get_template(f"{template}.txt").render(context)
    html = _environment(True).get_template(f"{template}.html").render(context)
    return Rendered(subject=subject, text=text, html=html)


def _change_lines(t: Words, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The generic description of a subscription change from its payload's keys."""
    change = payload.get("change")
    summary = t(f"change.{change}") if change in CHANGES else t("change.other")
    amount = None
    currency = payload.get("currency")
    if isinstance(payload.get("amount"), int) and isinstance(currency, str) and currency:
        amount = t.money(payload["amount"], currency)
        interval = {"monthly": "month", "annual": "year"}.get(
            str(payload.get("interval")), payload.get("interval")
        )
        if interval in ("month", "year"):
            amount = t(f"interval.{interval}", amount=amount)
    effective = None
    if isinstance(payload.get("effective"), str):
        try:
            effective = t.date(date.fromisoformat(payload["effective"][:10]))
        except ValueError:
            effective = None
    return {"summary": summary, "amount": amount, "effective": effective}


def compose(
    rendered: Rendered,
    *,
    to: str,
    to_name: str | None,
    mail_from: str,
    lang: str | None,
    reply_to: str | None = None,
    kind: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text first, HTML preferred) with the usual headers."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = mail_from
    message["To"] = formataddr((to_name, to)) if to_name else to
    if reply_to:
        message["Reply-To"] = reply_to
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Date"] = format_datetime(datetime.now(UTC))
    # Transactional mail: tells autoresponders not to answer (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    if kind:
        message["X-Donations-Kind"] = kind
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # After the body: set_content() drops Content-* headers set before it.
    message["Content-Language"] = language_for(lang)[0]
    return message
