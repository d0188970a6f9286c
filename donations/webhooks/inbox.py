"""The inbox: a verified Stripe event is stored once (one insert) and acknowledged; bookers
(`donations.webhooks.booker`) book it off the request path.

A replayed or concurrent duplicate inserts nothing (the event id is the primary key). Events
of types this service does not book are recorded as such, with nothing left to do.
"""

from __future__ import annotations

import functools
import json
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam
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


@functools.cache
def _insert(dialect_name: str) -> Any:
    """INSERT … ON CONFLICT (id) DO NOTHING RETURNING id, built once per dialect: building
    the statement anew for every delivery cost more than the insert itself."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = StripeEvent.__table__
    return (
        dialect.insert(table)
        .values({name: bindparam(name) for name in COLUMNS})
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.id)  # a row back only when it was inserted
    )


COLUMNS = (
    "id",
    "type",
    "created",
    "received_at",
    "source",
    "status",
    "payload",
    "outcome",
    "attempts",
    "next_attempt_at",
    "booked_at",
)


def _values(event: dict[str, Any], raw: str | None, source: str) -> tuple[dict[str, Any], bool]:
    now = utcnow()
    handled = event["type"] in HANDLED_TYPES
    values = {
        "id": event["id"],
        "type": event["type"][:80],
        "created": _created(event),
        "received_at": now,
        "source": source,
        "status": PENDING if handled else BOOKED,
        # The event as Stripe sent it (the verified bytes), for the booker.
        "payload": (raw if raw is not None else json.dumps(event)) if handled else None,
        "outcome": "" if handled else IGNORED,
        "attempts": 0,
        "next_attempt_at": now if handled else None,
        "booked_at": None if handled else now,
    }
    return values, handled


def store(
    session: Session | Connection,
    event: dict[str, Any],
    *,
    raw: str | None = None,
    source: str = "webhook",
) -> str:
    """Insert the event (QUEUED for booking, or IGNORED), or nothing when it is stored
    already (DUPLICATE): one statement, safe against a concurrent duplicate."""
    values, handled = _values(event, raw, source)
    bind = session.get_bind() if isinstance(session, Session) else session
    inserted = session.execute(_insert(bind.dialect.name), values).first()
    if inserted is None:
        return DUPLICATE
    return QUEUED if handled else IGNORED


def acknowledge(engine: Engine, event: dict[str, Any], raw: str | None = None) -> str:
    """Store a delivery: on PostgreSQL the one statement commits on its own (autocommit: no
    BEGIN and COMMIT round trips); SQLite takes its write lock in a short transaction."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return store(conn, event, raw=raw)
    with _SQLITE_WRITER, engine.begin() as conn:
        return store(conn, event, raw=raw)


# SQLite has one writer: this process's threads queue here, in order, rather than in SQLite's
# busy handler, which sleeps up to 100 ms between tries (the acknowledgement's p99).
_SQLITE_WRITER = threading.Lock()
