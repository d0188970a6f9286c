"""The report rollups: the ledger's own (`donations.ledger.rollups`, kept by `journal.post`)
and the appeal funnel's, kept here:

- `event_campaign_daily` / `event_article_daily` (and monthly): appeal event counts per day
  by campaign and variant, and by article. Added by `appeals.events.upsert_counts` with the
  counts themselves, in its transaction.

`rebuild` recomputes all of them from the journal and the event counts (after a bulk load, or
to check them: tests compare a rebuild with what the writers maintained).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Date, String, case, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from donations.db import Base
from donations.ledger import rollups as ledger_rollups
from donations.ledger.rollups import (
    ArticlePaymentsDaily,
    ArticlePaymentsMonthly,
    CampaignPaymentsDaily,
    LedgerDaily,
    month_of,
    upsert_add,
)

__all__ = [
    "ROLLUPS",
    "ArticlePaymentsDaily",
    "ArticlePaymentsMonthly",
    "CampaignPaymentsDaily",
    "EventArticleDaily",
    "EventArticleMonthly",
    "EventCampaignDaily",
    "LedgerDaily",
    "add_events",
    "check",
    "rebuild",
    "snapshot",
]

# Event types the funnel reports read (views and dismissals stay in event_counts only).
FUNNEL_EVENTS = ("impression", "click")


class EventCampaignDaily(Base):
    __tablename__ = "event_campaign_daily"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    variant: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class EventArticleDaily(Base):
    __tablename__ = "event_article_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    article: Mapped[str] = mapped_column(String(200), primary_key=True)
    impressions: Mapped[int] = mapped_column(BigInteger)
    clicks: Mapped[int] = mapped_column(BigInteger)


# The article funnel over long ranges reads whole months from these (first day of the month)
# and only the partial months at the ends from the daily tables.
class EventArticleMonthly(Base):
    __tablename__ = "event_article_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    article: Mapped[str] = mapped_column(String(200), primary_key=True)
    impressions: Mapped[int] = mapped_column(BigInteger)
    clicks: Mapped[int] = mapped_column(BigInteger)


EVENT_ROLLUPS: tuple[type[Base], ...] = (EventCampaignDaily, EventArticleDaily, EventArticleMonthly)
ROLLUPS: tuple[type[Base], ...] = (*ledger_rollups.LEDGER_ROLLUPS, *EVENT_ROLLUPS)


def add_events(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Roll up event counts just added (called by upsert_counts, same transaction)."""
    by_campaign: dict[tuple[date, str, str, str], int] = defaultdict(int)
    by_article: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    by_month: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["type"] not in FUNNEL_EVENTS:
            continue
        by_campaign[(r["day"], r["campaign"], r["variant"], r["type"])] += r["count"]
        slot = 0 if r["type"] == "impression" else 1
        by_article[(r["day"], r["article"])][slot] += r["count"]
        by_month[(month_of(r["day"]), r["article"])][slot] += r["count"]
    upsert_add(
        session,
        EventCampaignDaily,
        [
            {"day": d, "campaign": c, "variant": v, "type": t, "count": n}
            for (d, c, v, t), n in by_campaign.items()
        ],
        ["campaign", "variant", "type", "day"],
    )
    upsert_add(
        session,
        EventArticleDaily,
        [
            {"day": d, "article": art, "impressions": shown, "clicks": clicked}
            for (d, art), (shown, clicked) in by_article.items()
        ],
        ["day", "article"],
    )
    upsert_add(
        session,
        EventArticleMonthly,
        [
            {"month": m, "article": art, "impressions": shown, "clicks": clicked}
            for (m, art), (shown, clicked) in by_month.items()
        ],
        ["month", "article"],
    )


def rebuild(session: Session) -> dict[str, int]:
    """Recompute every rollup from the journal and event_counts; rows written per table."""
    from donations.appeals.models import EventCount
    from donations.sqlfuncs import month_start

    written = ledger_rollups.rebuild(session)
    for model in EVENT_ROLLUPS:
        session.execute(delete(model))

    def fill(model: type[Base], query: Any) -> None:
        columns = [c.name for c in query.selected_columns]
        result = session.execute(insert(model).from_select(columns, query))
        written[model.__tablename__] = result.rowcount  # type: ignore[attr-defined]

    funnel = EventCount.type.in_(FUNNEL_EVENTS)
    fill(
        EventCampaignDaily,
        select(
            EventCount.campaign,
            EventCount.variant,
            EventCount.type,
            EventCount.day,
            func.sum(EventCount.count).label("count"),
        )
        .where(funnel)
        .group_by(EventCount.campaign, EventCount.variant, EventCount.type, EventCount.day),
    )
    fill(
        EventArticleDaily,
        select(
            EventCount.day,
            EventCount.article,
            func.sum(case((EventCount.type == "impression", EventCount.count), else_=0)).label(
                "impressions"
            ),
            func.sum(case((EventCount.type == "click", EventCount.count), else_=0)).label("clicks"),
        )
        .where(funnel)
        .group_by(EventCount.day, EventCount.article),
    )
    ev = EventArticleDaily
    fill(
        EventArticleMonthly,
        select(
            month_start(ev.day).label("month"),
            ev.article,
            func.sum(ev.impressions).label("impressions"),
            func.sum(ev.clicks).label("clicks"),
        ).group_by(month_start(ev.day), ev.article),
    )
    return written


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup's rows, sorted (to compare what the writers kept with a rebuild)."""
    out = {}
    for model in ROLLUPS:
        columns = [c for c in model.__table__.columns]
        rows = session.execute(select(*columns)).all()
        out[model.__tablename__] = sorted(
            (tuple(str(v) if isinstance(v, date) else v for v in r) for r in rows), key=str
        )
    return out


def check(session: Session) -> dict[str, tuple[int, int]]:
    """Compare every rollup with a rebuild from the books, inside one snapshot of the data,
    changing nothing: {table: (rows kept, rows that differ)}; all zero differences = in step."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        kept = snapshot(session)
        rebuild(session)
        rebuilt = snapshot(session)
    finally:
        session.rollback()
    return {name: (len(rows), len(set(rows) ^ set(rebuilt[name]))) for name, rows in kept.items()}
