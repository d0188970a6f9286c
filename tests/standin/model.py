"""Building blocks: Stripe's example objects as templates, ids, rounding, API errors."""

from __future__ import annotations

import calendar
import copy
import json
import secrets
import string
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
API_VERSION = "2026-10-28.endive"
_HERE = Path(__file__).parent
TEMPLATES: dict[str, Obj] = json.loads((_HERE / "fixtures3-subset.json").read_text())["resources"]
DEFAULTS: Obj = json.loads((_HERE / "defaults.json").read_text())
# Fields the examples carry that endive no longer sends, and the includable fields that only
# appear when expanded (`payments`, `refunds`).
REMOVED = {
    "invoice": ("charge", "payment_intent", "paid", "subscription", "payments"),
    "payment_intent": ("invoice", "charges"),
    "charge": ("invoice", "refunds"),
    "subscription": ("current_period_start", "current_period_end"),
    "balance": ("connect_reserved",),
}
INCLUDABLE = {"invoice": ("payments",), "charge": ("refunds",)}
CARDS = {  # pm_card_<alias> → brand, last4, behaviour
    "visa": ("visa", "4242", "ok"),
    "mastercard": ("mastercard", "4444", "ok"),
    "amex": ("amex", "8431", "ok"),
    "chargeCustomerFail": ("visa", "0341", "charge_fail"),  # attaches; every charge declines
    "visa_chargeDeclined": ("visa", "0002", "decline"),  # declined at once, even to attach
    "threeDSecure2Required": ("visa", "3155", "3ds"),
}
DECLINED = "Your card was declined."
DEFAULT_RATES = {
    ("usd", "eur"): Decimal("0.92"),
    ("gbp", "eur"): Decimal("1.17"),
    ("eur", "usd"): Decimal("1.09"),
    ("gbp", "usd"): Decimal("1.27"),
    ("usd", "gbp"): Decimal("0.79"),
    ("eur", "gbp"): Decimal("0.86"),
}
_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{''.join(secrets.choice(_ALNUM) for _ in range(length))}"


def now() -> int:
    return int(time.time())


def round_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    """`ts` plus `count` days, weeks, months or years (month ends clamp, as Stripe's do)."""
    start = datetime.fromtimestamp(ts, UTC)
    if interval in ("day", "week"):
        return int((start + timedelta(days=count * (7 if interval == "week" else 1))).timestamp())
    year, month = divmod(start.month - 1 + count * (12 if interval == "year" else 1), 12)
    year, month = start.year + year, month + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def build(kind: str, prefix: str | None, **fields: Any) -> Obj:
    """A deep copy of Stripe's example `kind`, endive's removals gone, `fields` set."""
    obj = copy.deepcopy(TEMPLATES[kind])
    for name in REMOVED.get(kind, ()):
        obj.pop(name, None)
    obj.update(copy.deepcopy(DEFAULTS["objects"].get(kind, {})))
    if prefix:
        obj["id"] = new_id(prefix, 14 if prefix in ("cus", "si", "prod") else 24)
    for name, value in (("created", now()), ("livemode", False), ("metadata", {})):
        if name in obj:
            obj[name] = value
    obj.update(fields)
    return obj


class StripeError(Exception):
    """An API error, answered as {"error": body} with HTTP `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: Obj = {"type": type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.body.update(extra)


def bad(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def missing(kind: str, ident: Any, param: str | None = None) -> StripeError:
    """`No such …`: 404 for an id in the URL, 400 for one given as a parameter."""
    message = f"No such {kind}: '{ident}'"
    return StripeError(400 if param else 404, message, code="resource_missing", param=param or "id")


def as_int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad(f"Invalid integer: {value}", param, "parameter_invalid_integer") from None
