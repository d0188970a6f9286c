"""Verified Stripe events → the inbox → the booking rules, once each.

The event id is recorded in the same transaction as the entries it causes, so a replayed or
concurrent duplicate changes nothing. What Stripe says about the event's object is gathered
*before* that transaction opens (Stripe round trips hold no database locks), then the booking
rules write (`donations.ledger.booking`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from donations.db import Database, utcnow
from donations.ledger import booking
from donations.mail.receipts import queue_receipt
from donations.stripe import StripeGateway
from donations.webhooks.models import StripeEvent

DUPLICATE = "duplicate"
HANDLED_TYPES = booking.HANDLED_TYPES


class MalformedEvent(ValueError):
    """The JSON is not a Stripe event."""


def check_event_shape(event: Any) -> None:
    if not isinstance(event, dict):
        raise MalformedEvent("an event is a JSON object")
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        raise MalformedEvent("event.id must be a Stripe event id (evt_…)")
    if not isinstance(event.get("type"), str):
        raise MalformedEvent("event.type must be a string")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("event.data.object must be an object")
    if not isinstance(data["object"].get("id", ""), str):
        raise MalformedEvent("event.data.object.id must be a string")
    if event["type"] in HANDLED_TYPES and not data["object"].get("id"):
        # Every object Stripe sends has one, and every handler starts from it.
        raise MalformedEvent("event.data.object.id is missing")


def _created(event: dict[str, Any]) -> datetime:
    ts = event.get("created")
    # Up to the year 9999 (datetime's range); anything else is not Stripe's.
    if isinstance(ts, int) and 0 < ts < 253_402_300_800:
        return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)
    return utcnow()


def record_and_book(
    session: Session, event: dict[str, Any], facts: booking.Facts, *, source: str = "webhook"
) -> str:
    """Record the event once and book its facts, in the caller's transaction; answers what
    was done (or DUPLICATE when the event was recorded already)."""
    if session.get(StripeEvent, event["id"]) is not None:
        return DUPLICATE
    record = StripeEvent(id=event["id"], type=event["type"], created=_created(event), source=source)
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        return DUPLICATE  # a concurrent delivery of the same event got there first
    books = booking.Books(session, event_id=event["id"], on_payment=queue_receipt)
    outcome = books.apply(facts)
    record.outcome = outcome[:500]
    return outcome


def process_event(
    db: Database, gateway: StripeGateway, event: dict[str, Any], *, source: str = "webhook"
) -> str:
    """Gather what Stripe says, then record and book in one transaction.

    Raises GatewayError when Stripe cannot be asked (nothing is written: a retry books it)."""
    check_event_shape(event)
    with db.sessions() as session:
        if session.get(StripeEvent, event["id"]) is not None:
            return DUPLICATE
    if event["type"] in HANDLED_TYPES:
        facts = booking.gather(gateway, event["type"], event["data"]["object"])
    else:
        facts = booking.Nothing("acknowledged: not a type this service books")
    with db.transaction() as session:
        return record_and_book(session, event, facts, source=source)
