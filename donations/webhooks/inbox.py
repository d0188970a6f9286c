"""The inbox: a verified Stripe event is stored once (one insert) and acknowledged; bookers
(`donations.webhooks.booker`) book it off the request path.

A replayed or concurrent duplicate inserts nothing (the event id is the primary key). Events
of types this service does not book are recorded as such, with nothing left to do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from donations.db import utcnow
from donations.ledger import booking
from donations.webhooks.models import BOOKED, PENDING, StripeEvent

DUPLICATE = "duplicate"
QUEUED = "queued"
IGNORED = "acknowledged: not a type this service books"
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


def store(session: Session, event: dict[str, Any], *, source: str = "webhook") -> str:
    """Insert the event (QUEUED for booking, or IGNORED), or nothing when it is stored
    already (DUPLICATE): one statement, safe against a concurrent duplicate."""
    now = utcnow()
    handled = event["type"] in HANDLED_TYPES
    values = {
        "id": event["id"],
        "type": event["type"][:80],
        "created": _created(event),
        "received_at": now,
        "source": source,
        "status": PENDING if handled else BOOKED,
        "payload": json.dumps(event) if handled else None,
        "outcome": "" if handled else IGNORED,
        "attempts": 0,
        "next_attempt_at": now if handled else None,
        "booked_at": None if handled else now,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = session.execute(
        dialect.insert(StripeEvent)
        .values(values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)  # a row back only when it was inserted
    ).first()
    if inserted is None:
        return DUPLICATE
    return QUEUED if handled else IGNORED
