"""A donor's way in without a password: single-use sign-in links and the sessions they open.

Only SHA-256 digests of the secrets are stored, as for admin sessions and API tokens.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Base, utcnow


class DonorLink(Base):
    """A magic link sent by email: valid once, until it expires."""

    __tablename__ = "donor_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the link's nonce
    donor_id: Mapped[str] = mapped_column(ForeignKey("donors.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class DonorSession(Base):
    """A donor signed in through a link (cookie secret; its sha256 is the id)."""

    __tablename__ = "donor_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    donor_id: Mapped[str] = mapped_column(ForeignKey("donors.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
