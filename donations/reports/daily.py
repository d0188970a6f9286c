"""The daily series of one currency, from the journal exactly as the summary reads it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from donations.ledger import accounts as a
from donations.ledger.models import JournalEntry, JournalLine
from donations.reports.common import utc_day
from donations.reports.summary import accumulate, day_bounds, empty_totals, net

# The entry kinds and accounts that move gross, fees, refunds or disputes (payouts don't).
KINDS = (
    *a.PAYMENT_KINDS,
    a.STRIPE_FEE,
    a.REFUND,
    a.REFUND_REVERSAL,
    a.DISPUTE,
    a.DISPUTE_REVERSAL,
)
ACCOUNTS = (a.STRIPE_BALANCE, a.STRIPE_FEES, a.REFUNDS, a.DISPUTES)


def daily(session: Session, start: date, end: date, currency: str) -> list[dict[str, Any]]:
    """One point per UTC day in [start, end], zero days included: payments, gross and net,
    each amount on the day it happened (net = gross − fees − refunds − disputes)."""
    lo, hi = day_bounds(start, end)
    day = utc_day(JournalEntry.occurred_at)
    rows = session.execute(
        select(
            day,
            JournalEntry.kind,
            JournalLine.account,
            func.sum(JournalLine.amount),
            func.count(JournalLine.id),
        )
        .join(JournalEntry, JournalLine.entry_id == JournalEntry.id)
        .where(
            JournalEntry.kind.in_(KINDS),
            JournalEntry.occurred_at >= lo,
            JournalEntry.occurred_at < hi,
            JournalEntry.currency == currency,
            JournalLine.account.in_(ACCOUNTS),
        )
        .group_by(day, JournalEntry.kind, JournalLine.account)
    ).all()
    totals: dict[date, dict[str, Any]] = {}
    for when, kind, account, total, lines in rows:
        day_of = when if isinstance(when, date) else date.fromisoformat(str(when))
        accumulate(totals.setdefault(day_of, empty_totals()), kind, account, int(total), int(lines))
    series = []
    for offset in range((end - start).days + 1):
        when = start + timedelta(days=offset)
        t = totals.get(when) or empty_totals()
        series.append({"date": when, "count": t["count"], "gross": t["gross"], "net": net(t)})
    return series
