"""Daily rollups that keep the reports fast at newsroom scale (bench/reports.py: 1M
contributions, 10M event counts), each maintained by its writer in the writer's own transaction:

- `ledger_daily`: journal lines summed per UTC day, currency, entry kind and account. Posted by
  `journal.post`, so it holds exactly what the journal holds (summary, daily, trial balance).
- `campaign_payments_daily` / `article_payments_daily`: the first payment of each contribution
  a reader started (renewals are not new decisions), per day and currency, by the campaign and
  variant or the article it is attributed to. Posted by `journal.post` with the payment.
- `event_campaign_daily` / `event_article_daily`: appeal event counts per day by campaign and
  variant, and by article. Added by `appeals.events.upsert_counts` with the counts themselves.

`rebuild` recomputes all of them from the journal and the event counts (after a bulk load, or
to check them: tests compare a rebuild with what the writers maintained).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, String, case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from donations.db import Base
from donations.ledger import accounts as a

# Event types the funnel reports read (views and dismissals stay in event_counts only).
FUNNEL_EVENTS = ("impression", "click")


class LedgerDaily(Base):
    __tablename__ = "ledger_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(BigInteger)


class CampaignPaymentsDaily(Base):
    __tablename__ = "campaign_payments_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    variant: Mapped[str] = mapped_column(String(100), primary_key=True)  # "" when unknown
    payments: Mapped[int] = mapped_column(BigInteger)
    gross: Mapped[int] = mapped_column(BigInteger)


class ArticlePaymentsDaily(Base):
    __tablename__ = "article_payments_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    article: Mapped[str] = mapped_column(String(200), primary_key=True)
    payments: Mapped[int] = mapped_column(BigInteger)
    gross: Mapped[int] = mapped_column(BigInteger)


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


class ArticlePaymentsMonthly(Base):
    __tablename__ = "article_payments_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    article: Mapped[str] = mapped_column(String(200), primary_key=True)
    payments: Mapped[int] = mapped_column(BigInteger)
    gross: Mapped[int] = mapped_column(BigInteger)


ROLLUPS: tuple[type[Base], ...] = (
    LedgerDaily,
    CampaignPaymentsDaily,
    ArticlePaymentsDaily,
    ArticlePaymentsMonthly,
    EventCampaignDaily,
    EventArticleDaily,
    EventArticleMonthly,
)


def month_of(day: date) -> date:
    return day.replace(day=1)


def _add(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: list[str]
) -> None:
    """Insert rows or add their measures to the existing ones (one statement, key order sorted
    so concurrent writers lock rows in the same order)."""
    if not rows:
        return
    measures = [c for c in rows[0] if c not in keys]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model)
    table = model.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={m: table.c[m] + stmt.excluded[m] for m in measures},
    )
    session.execute(stmt, sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys)))


def add_entry(
    session: Session,
    *,
    kind: str,
    currency: str,
    occurred_at: datetime,
    lines: Iterable[tuple[str, int]],
    contribution_id: str | None,
) -> None:
    """Roll up one journal entry just posted (called by journal.post, same transaction)."""
    day = occurred_at.date()
    per_account: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for account, amount in lines:
        per_account[account][0] += amount
        per_account[account][1] += 1
    _add(
        session,
        LedgerDaily,
        [
            {
                "day": day,
                "currency": currency,
                "kind": kind,
                "account": acc,
                "amount": s,
                "lines": n,
            }
            for acc, (s, n) in per_account.items()
        ],
        ["day", "currency", "kind", "account"],
    )
    if kind in a.PAYMENT_KINDS and contribution_id is not None:
        from donations.checkout.models import Contribution

        contribution = session.get(Contribution, contribution_id)
        if contribution is None or contribution.parent_id is not None:
            return
        charged = per_account.get(a.STRIPE_BALANCE, [0, 0])[0]
        _add_first_payment(session, day, currency, contribution, charged)


def _add_first_payment(
    session: Session, day: date, currency: str, contribution: Any, charged: int
) -> None:
    if contribution.campaign:
        _add(
            session,
            CampaignPaymentsDaily,
            [
                {
                    "day": day,
                    "currency": currency,
                    "campaign": contribution.campaign,
                    "variant": contribution.variant or "",
                    "payments": 1,
                    "gross": charged,
                }
            ],
            ["day", "currency", "campaign", "variant"],
        )
    if contribution.article:
        row = {
            "currency": currency,
            "article": contribution.article,
            "payments": 1,
            "gross": charged,
        }
        _add(session, ArticlePaymentsDaily, [{"day": day, **row}], ["day", "currency", "article"])
        _add(
            session,
            ArticlePaymentsMonthly,
            [{"month": month_of(day), **row}],
            ["month", "currency", "article"],
        )


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
    _add(
        session,
        EventCampaignDaily,
        [
            {"day": d, "campaign": c, "variant": v, "type": t, "count": n}
            for (d, c, v, t), n in by_campaign.items()
        ],
        ["campaign", "variant", "type", "day"],
    )
    _add(
        session,
        EventArticleDaily,
        [
            {"day": d, "article": art, "impressions": shown, "clicks": clicked}
            for (d, art), (shown, clicked) in by_article.items()
        ],
        ["day", "article"],
    )
    _add(
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
    from donations.checkout.models import Contribution
    from donations.ledger.models import JournalEntry, JournalLine
    from donations.reports.common import month_start, utc_day

    for model in ROLLUPS:
        session.execute(delete(model))
    entry_day = utc_day(JournalEntry.occurred_at)
    written: dict[str, int] = {}

    def fill(model: type[Base], query: Any) -> None:
        columns = [c.name for c in query.selected_columns]
        result = session.execute(insert(model).from_select(columns, query))
        written[model.__tablename__] = result.rowcount  # type: ignore[attr-defined]

    fill(
        LedgerDaily,
        select(
            entry_day.label("day"),
            JournalEntry.currency.label("currency"),
            JournalEntry.kind.label("kind"),
            JournalLine.account.label("account"),
            func.sum(JournalLine.amount).label("amount"),
            func.count().label("lines"),
        )
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .group_by(entry_day, JournalEntry.currency, JournalEntry.kind, JournalLine.account),
    )
    first = (
        select(
            entry_day.label("day"),
            JournalEntry.currency.label("currency"),
            Contribution.campaign.label("campaign"),
            func.coalesce(Contribution.variant, "").label("variant"),
            Contribution.article.label("article"),
            JournalLine.amount.label("charged"),
        )
        .join(Contribution, Contribution.id == JournalEntry.contribution_id)
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .where(
            JournalEntry.kind.in_(a.PAYMENT_KINDS),
            JournalLine.account == a.STRIPE_BALANCE,
            Contribution.parent_id.is_(None),
        )
        .subquery()
    )
    fill(
        CampaignPaymentsDaily,
        select(
            first.c.day,
            first.c.currency,
            first.c.campaign,
            first.c.variant,
            func.count().label("payments"),
            func.sum(first.c.charged).label("gross"),
        )
        .where(first.c.campaign.isnot(None), first.c.campaign != "")
        .group_by(first.c.day, first.c.currency, first.c.campaign, first.c.variant),
    )
    fill(
        ArticlePaymentsDaily,
        select(
            first.c.day,
            first.c.currency,
            first.c.article,
            func.count().label("payments"),
            func.sum(first.c.charged).label("gross"),
        )
        .where(first.c.article.isnot(None), first.c.article != "")
        .group_by(first.c.day, first.c.currency, first.c.article),
    )
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
    ev, paid = EventArticleDaily, ArticlePaymentsDaily
    fill(
        EventArticleMonthly,
        select(
            month_start(ev.day).label("month"),
            ev.article,
            func.sum(ev.impressions).label("impressions"),
            func.sum(ev.clicks).label("clicks"),
        ).group_by(month_start(ev.day), ev.article),
    )
    fill(
        ArticlePaymentsMonthly,
        select(
            month_start(paid.day).label("month"),
            paid.currency,
            paid.article,
            func.sum(paid.payments).label("payments"),
            func.sum(paid.gross).label("gross"),
        ).group_by(month_start(paid.day), paid.currency, paid.article),
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
