"""Campaigns (stored as their validated JSON documents), appeal settings and event counts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Base, utcnow


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    document: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AppealConfig(Base):
    """Newsroom-wide appeal rules: the editorial blackout and a kill switch per placement.

    A single row (id 1). `version` increases on every change to it or to any campaign, so each
    app instance notices within seconds that its compiled snapshot is stale.
    """

    __tablename__ = "appeal_config"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blackout_sections: Mapped[list] = mapped_column(JSON, default=list)
    blackout_tags: Mapped[list] = mapped_column(JSON, default=list)
    killed_placements: Mapped[list] = mapped_column(JSON, default=list)
    gate_after_articles: Mapped[int] = mapped_column(Integer, default=5)
    one_off_supporter_days: Mapped[int] = mapped_column(Integer, default=90)
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EventCount(Base):
    """Aggregate counts only (no reader ids): one row per day, campaign, variant, placement,
    article and type."""

    __tablename__ = "event_counts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    campaign: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str] = mapped_column(String(100))
    placement: Mapped[str] = mapped_column(String(16))
    article: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint("day", "campaign", "variant", "placement", "article", "type"),
        Index("ix_event_counts_campaign_day", "campaign", "day"),
    )
