"""What the report queries share: UTC days in SQL, the statuses that count, first payments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Select, and_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from donations.ledger.models import JournalEntry, JournalLine

# A contribution whose money arrived at some point (status only moves forward from here).
EVER_PAID = ("succeeded", "partially_refunded", "refunded", "disputed")


class utc_day(GenericFunction[date]):
    """The UTC calendar day of a naive-UTC timestamp column, as a DATE on every database."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    # SQLite has no DATE type: CAST would give a number; date() gives 'YYYY-MM-DD'.
    return f"date({compiler.process(element.clauses, **kw)})"


def first_payments(lo: datetime | None = None, hi: datetime | None = None) -> Select:
    """One row per payment of a contribution a reader started (renewals excluded), with its
    attribution and what Stripe's balance received; occurred in [lo, hi) when given.

    Renewals repeat their parent's attribution but are not new decisions by a reader, so
    conversion reports count and sum the first payment only.
    """
    query = (
        select(
            Contribution.article.label("article"),
            Contribution.campaign.label("campaign"),
            Contribution.variant.label("variant"),
            JournalEntry.currency.label("currency"),
            JournalLine.amount.label("amount"),
        )
        .select_from(JournalEntry)
        .join(Contribution, Contribution.id == JournalEntry.contribution_id)
        .join(
            JournalLine,
            and_(JournalLine.entry_id == JournalEntry.id, JournalLine.account == a.STRIPE_BALANCE),
        )
        .where(
            JournalEntry.kind.in_(a.PAYMENT_KINDS),
            Contribution.parent_id.is_(None),
            Contribution.status.in_(EVER_PAID),
        )
    )
    if lo is not None:
        query = query.where(JournalEntry.occurred_at >= lo)
    if hi is not None:
        query = query.where(JournalEntry.occurred_at < hi)
    return query


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None when the denominator is zero."""
    return numerator / denominator if denominator else None
