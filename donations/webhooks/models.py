"""The inbox of Stripe events: each event id is stored once, with the books it caused."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Base, utcnow


class StripeEvent(Base):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(String(80), index=True)
    created: Mapped[datetime]  # when Stripe created it
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="webhook")  # or "reconcile"
    outcome: Mapped[str] = mapped_column(Text, default="")
