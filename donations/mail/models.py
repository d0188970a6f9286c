"""The email outbox: a message is queued in the same transaction as what it is about (a
payment booked by a webhook, a link issued) and sent after commit, retried until it goes.

Rows name the donor and contribution rather than copying addresses or bodies: a message is
rendered when it is sent, so erasing a donor also stops what was queued for them. `payload`
holds what cannot be re-derived (a sign-in link) and is cleared once sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Base, utcnow


class OutboxEmail(Base):
    __tablename__ = "email_outbox"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # receipt | renewal_receipt | sign_in_link …
    # Unique per message that must go once, e.g. "receipt:ctb_…" (a replayed webhook adds none).
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    donor_id: Mapped[str | None] = mapped_column(ForeignKey("donors.id"), index=True)
    contribution_id: Mapped[str | None] = mapped_column(ForeignKey("contributions.id"))
    lang: Mapped[str] = mapped_column(String(8), default="en")
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    send_after: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index("ix_email_outbox_pending", "sent_at", "send_after"),)
