"""The daily series of one currency, from the journal exactly as the summary reads it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from donations.ledger import accounts as a
from donations.ledger.rollups import LedgerDaily
from donations.reports.summary import accumulate, empty_totals, net

# The entry kinds and accounts that move gross, fees, refunds or disputes (payouts don't).
KINDS = (
    *a.PAYMENT_KINDS,
    a.STRIPE_FEE,
    a.REFUND,
    a.REFUND_REVERSAL,
    a.DISPUTE,
    a.DISPUTE_REVERSAL,
)
ACCOUNTS = (*a.INCOME, a.STRIPE_FEES, a.REFUNDS, a.DISPUTES)


def daily(session: Session, start: date, end: date, currency: str) -> list[dict[str, Any]]:
    """One point per UTC day in [start, end], zero days included: payments, gross and net,
    each amount on the day it happened (net = gross − fees − refunds − disputes)."""
    d = LedgerDaily
    rows = session.execute(
        select(d.day, d.kind, d.account, func.sum(d.amount), func.sum(d.lines))
        .where(
            d.day >= start,
            d.day <= end,
            d.currency == currency,
            d.kind.in_(KINDS),
            d.account.in_(ACCOUNTS),
        )
        .group_by(d.day, d.kind, d.account)
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
