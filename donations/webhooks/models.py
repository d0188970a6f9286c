"""The inbox of Stripe events: each verified event stored once, then booked by a worker.

A delivery is acknowledged as soon as its row is inserted (`pending`, with the event as
received); a booker (`donations.webhooks.booker`) claims due rows, asks Stripe about them and
books them (`booked`), retrying with backoff when Stripe or the database fails, and leaving
the event `dead`, with its error, after MAX_ATTEMPTS, for an operator to retry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Base, utcnow

PENDING, BOOKED, DEAD = "pending", "booked", "dead"
STATUSES = (PENDING, BOOKED, DEAD)


class StripeEvent(Base):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(String(80), index=True)
    created: Mapped[datetime]  # when Stripe created it
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="webhook")  # or "reconcile"
    outcome: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=BOOKED, server_default=BOOKED)
    # The event as Stripe sent it (verified), kept until it is booked.
    payload: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a pending event may be tried (again); pushed ahead while a booker holds it.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    booked_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_stripe_events_status_next_attempt_at", "status", "next_attempt_at"),
    )
