"""Rendering emails: plain data in, subject + text + HTML out (no database, no network).

Templates live in templates/mail/ (one .txt and one .html per kind); their words are gettext
messages (`_()`) translated by the same catalogs as the pages (donations/translations,
docs/translations.md), so a new language is a catalog and no template change. A language we
have no catalog for falls back to its base language ("pt-br" → "pt"), then to English. Money
and dates are formatted by Babel in that language (with the reader's region when known).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from donations import i18n
from donations.brand import palette
from donations.i18n import N_
from donations.money import format_money
from donations.paths import TEMPLATES

MAIL_TEMPLATES = TEMPLATES / "mail"
DEFAULT_LANGUAGE = i18n.DEFAULT_LANGUAGE
RENDERED_KINDS = ("receipt", "renewal_receipt", "sign_in_link", "subscription_changed")
CHANGES = ("canceled", "cancel_at_period_end", "resumed", "amount", "interval", "card_updated")
# The words of each kind and change (subjects, first lines), marked here, translated in render.
SUBJECTS = {
    "receipt": N_("Your receipt from %(newsroom)s"),
    "renewal_receipt": N_("Receipt for your recurring contribution to %(newsroom)s"),
    "sign_in_link": N_("Your sign-in link for %(newsroom)s"),
    "subscription_changed": N_("Your recurring contribution to %(newsroom)s has changed"),
}
THANKS = {
    "receipt": N_(
        "Thank you for supporting %(newsroom)s. Your contribution keeps our journalism "
        "independent and open to everyone."
    ),
    "renewal_receipt": N_(
        "Thank you for your continued support of %(newsroom)s. This is the receipt for the "
        "latest payment of your recurring contribution."
    ),
}
CHANGE_SUMMARIES = {
    "canceled": N_(
        "Your recurring contribution has been canceled. No further payments will be taken."
    ),
    "cancel_at_period_end": N_(
        "Your recurring contribution will end at the close of the current period. No payments "
        "will be taken after that."
    ),
    "resumed": N_("Your recurring contribution will continue as before."),
    "amount": N_("The amount of your recurring contribution has changed."),
    "interval": N_("How often you give has changed."),
    "card_updated": N_("The card for your recurring contribution has been updated."),
    "other": N_("Your recurring contribution has been updated."),
}
GREETING = N_("Dear %(name)s,")
GREETING_ANONYMOUS = N_("Hello,")
PER_INTERVAL = {"month": N_("%(amount)s per month"), "year": N_("%(amount)s per year")}


class RenderError(ValueError):
    """The message cannot be rendered (unknown kind, payload missing what it needs)."""


@dataclass(frozen=True)
class Newsroom:
    """Who the mail is from, as receipts must say, and where the donor's account page is;
    with the newsroom's brand (donations/brand.py), as every page shows it."""

    name: str
    address: str
    account_url: str
    # A newsroom that issues tax receipts says so here; otherwise a not-tax-advice line.
    tax_note: str | None = None
    logo_url: str | None = None  # absolute: mail clients fetch it from elsewhere
    accent: str = "#1a1a1a"
    support_email: str | None = None

    @property
    def colors(self) -> dict[str, str]:
        return palette(self.accent)


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
def _environment(autoescape: bool, language: str) -> Environment:
    """One environment per language and kind of body: the catalog is installed in it once
    (the sender thread and request threads render at once)."""
    env = Environment(
        loader=FileSystemLoader(str(MAIL_TEMPLATES)),
        # The .txt bodies are plain text, never HTML: escaping them would garble them.
        autoescape=select_autoescape(["html"]) if autoescape else False,  # noqa: S701
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def languages() -> tuple[str, ...]:
    """The languages emails are written in."""
    return i18n.LANGUAGES


def language_for(lang: str | None) -> tuple[str, str]:
    """(catalog language, Babel locale) for a BCP-47-ish code; unknown → English.

    The locale keeps the region when we have the language ("en-gb" → en, en_GB).
    """
    code = (lang or "").strip().lower().replace("_", "-")
    base = code.split("-")[0]
    chosen = i18n.supported(code) or DEFAULT_LANGUAGE
    locale = chosen
    if chosen == base:
        try:
            locale = str(Locale.parse(code.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            locale = chosen
    return chosen, locale


class Words:
    """The catalog in one language, and money and dates as that language writes them."""

    def __init__(self, language: str, locale: str) -> None:
        self.language = language
        self.locale = locale
        self._catalog = i18n.translations(language)

    def __call__(self, message: str, **values: Any) -> str:
        text = self._catalog.gettext(message)
        return text % values if values else text

    def pgettext(self, context: str, message: str) -> str:
        return str(self._catalog.pgettext(context, message))

    def money(self, minor: int, currency: str) -> str:
        return format_money(minor, currency, self.locale)

    def date(self, value: date | datetime) -> str:
        return format_date(value, format="long", locale=self.locale)


def _with_language(url: str, language: str) -> str:
    """A link of ours that opens in the language of the email (it then sticks: i18n)."""
    parts = urlsplit(url)
    query = urlencode([("lang", language)])
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


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
    # Our links open the pages in the email's language when the donor's is known.
    known = i18n.supported(lang) is not None
    account_url = _with_language(newsroom.account_url, language) if known else newsroom.account_url
    context: dict[str, Any] = {
        "t": t,
        "lang": language,
        "newsroom": newsroom,
        "account_url": account_url,
        "colors": newsroom.colors,
        "greeting": t(GREETING, name=donor_name) if donor_name else t(GREETING_ANONYMOUS),
    }
    payload = payload or {}
    if kind not in SUBJECTS:
        raise RenderError(f"no template for email kind {kind!r}")
    subject = t(SUBJECTS[kind], newsroom=newsroom.name)
    match kind:
        case "receipt" | "renewal_receipt":
            if receipt is None:
                raise RenderError(f"{kind} needs the payment it is for")
            template = "receipt"
            context["receipt"] = receipt
            context["thanks"] = t(THANKS[kind], newsroom=newsroom.name)
            context["frequency"] = _frequency(t, receipt.frequency)
        case "sign_in_link":
            url = payload.get("url")
            minutes = payload.get("expires_minutes")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise RenderError("sign_in_link needs payload.url")
            if not isinstance(minutes, int) or minutes <= 0:
                raise RenderError("sign_in_link needs payload.expires_minutes")
            template = "sign_in_link"
            context.update(url=_with_language(url, language) if known else url, minutes=minutes)
        case _:
            template = "subscription_changed"
            context.update(_change_lines(t, payload))
    text = _environment(False, language).get_template(f"{template}.txt").render(context)
    html = _environment(True, language).get_template(f"{template}.html").render(context)
    return Rendered(subject=subject, text=text, html=html)


def _frequency(t: Words, frequency: str) -> str:
    """How often the donor gives, as a receipt says it (an adjective of the gift in some
    languages, hence a context of its own)."""
    words = {
        "one_off": t.pgettext("receipt", "One-off"),
        "monthly": t.pgettext("receipt", "Monthly"),
        "annual": t.pgettext("receipt", "Annual"),
    }
    return words.get(frequency, frequency)


def _change_lines(t: Words, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The generic description of a subscription change from its payload's keys."""
    change = payload.get("change")
    summary = t(CHANGE_SUMMARIES[change if change in CHANGES else "other"])
    amount = None
    currency = payload.get("currency")
    if isinstance(payload.get("amount"), int) and isinstance(currency, str) and currency:
        amount = t.money(payload["amount"], currency)
        interval = {"monthly": "month", "annual": "year"}.get(
            str(payload.get("interval")), payload.get("interval")
        )
        if interval in PER_INTERVAL:
            amount = t(PER_INTERVAL[interval], amount=amount)
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
