"""The ledger's own projections: daily rollups kept by `journal.post` in the posting's
transaction, so they hold exactly what the journal holds (bench/reports.py: 1M contributions).

- `ledger_daily`: journal lines summed per UTC day, line currency, entry kind and account
  (summary, daily series, trial balance).
- `campaign_payments_daily` / `article_payments_daily` (and monthly): the first payment of
  each contribution a reader started (renewals are not new decisions), per day and the
  donor's currency, by the campaign and variant or the article it is attributed to; `gross`
  is what the donor was charged.

`rebuild` recomputes them from the journal (after a bulk load, or to check them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, String, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from donations.db import Base
from donations.ledger import accounts as a


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


class ArticlePaymentsMonthly(Base):
    __tablename__ = "article_payments_monthly"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    article: Mapped[str] = mapped_column(String(200), primary_key=True)
    payments: Mapped[int] = mapped_column(BigInteger)
    gross: Mapped[int] = mapped_column(BigInteger)


LEDGER_ROLLUPS: tuple[type[Base], ...] = (
    LedgerDaily,
    CampaignPaymentsDaily,
    ArticlePaymentsDaily,
    ArticlePaymentsMonthly,
)


def month_of(day: date) -> date:
    return day.replace(day=1)


def upsert_add(
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
    lines: Iterable[tuple[str, str, int]],
    contribution_id: str | None,
) -> None:
    """Roll up one journal entry just posted (called by journal.post, same transaction)."""
    day = occurred_at.date()
    per_account: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for account, line_currency, amount in lines:
        per_account[(account, line_currency)][0] += amount
        per_account[(account, line_currency)][1] += 1
    upsert_add(
        session,
        LedgerDaily,
        [
            {
                "day": day,
                "currency": cur,
                "kind": kind,
                "account": acc,
                "amount": s,
                "lines": n,
            }
            for (acc, cur), (s, n) in per_account.items()
        ],
        ["day", "currency", "kind", "account"],
    )
    if kind in a.PAYMENT_KINDS and contribution_id is not None:
        from donations.checkout.models import Contribution

        contribution = session.get(Contribution, contribution_id)
        if contribution is None or contribution.parent_id is not None:
            return
        charged = -sum(
            total
            for (acc, cur), (total, _) in per_account.items()
            if acc in a.INCOME and cur == currency
        )
        _add_first_payment(session, day, currency, contribution, charged)


def _add_first_payment(
    session: Session, day: date, currency: str, contribution: Any, charged: int
) -> None:
    if contribution.campaign:
        upsert_add(
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
        upsert_add(
            session, ArticlePaymentsDaily, [{"day": day, **row}], ["day", "currency", "article"]
        )
        upsert_add(
            session,
            ArticlePaymentsMonthly,
            [{"month": month_of(day), **row}],
            ["month", "currency", "article"],
        )


def rebuild(session: Session) -> dict[str, int]:
    """Recompute the ledger's rollups from the journal; rows written per table."""
    from donations.checkout.models import Contribution
    from donations.ledger.models import JournalEntry, JournalLine
    from donations.sqlfuncs import month_start, utc_day

    for model in LEDGER_ROLLUPS:
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
            JournalLine.currency.label("currency"),
            JournalEntry.kind.label("kind"),
            JournalLine.account.label("account"),
            func.sum(JournalLine.amount).label("amount"),
            func.count().label("lines"),
        )
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .group_by(entry_day, JournalLine.currency, JournalEntry.kind, JournalLine.account),
    )
    # The first payment of each contribution: what the donor was charged, in their currency.
    first = (
        select(
            entry_day.label("day"),
            JournalEntry.currency.label("currency"),
            Contribution.campaign.label("campaign"),
            func.coalesce(Contribution.variant, "").label("variant"),
            Contribution.article.label("article"),
            (-func.sum(JournalLine.amount)).label("charged"),
        )
        .join(Contribution, Contribution.id == JournalEntry.contribution_id)
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .where(
            JournalEntry.kind.in_(a.PAYMENT_KINDS),
            JournalLine.account.in_(a.INCOME),
            JournalLine.currency == JournalEntry.currency,
            Contribution.parent_id.is_(None),
        )
        .group_by(
            JournalEntry.id,
            entry_day,
            JournalEntry.currency,
            Contribution.campaign,
            Contribution.variant,
            Contribution.article,
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
    paid = ArticlePaymentsDaily
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
