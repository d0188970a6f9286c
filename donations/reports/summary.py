"""Read-only report queries, derived from the journal only."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from donations.ledger import accounts as a
from donations.reports.rollups import LedgerDaily


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in UTC: both dates inclusive."""
    return datetime.combine(start, time.min), datetime.combine(end + timedelta(days=1), time.min)


def empty_totals() -> dict[str, Any]:
    return {
        "count": 0,
        "gross": 0,
        "fees": 0,
        "fee_covered": 0,
        "refunds": 0,
        "disputes": 0,
        "net": 0,
        "one_off": {"count": 0, "gross": 0},
        "recurring": {"count": 0, "gross": 0},
    }


def summary(session: Session, start: date, end: date) -> dict[str, dict[str, Any]]:
    """Per currency: payments counted and charged, Stripe fees, refunds and disputes, net.

    Each amount falls on the UTC day it happened (a refund on the refund's day).
    net = gross − fees − refunds − disputes.
    """
    d = LedgerDaily
    rows = session.execute(
        select(d.kind, d.account, d.currency, func.sum(d.amount), func.sum(d.lines))
        .where(d.day >= start, d.day <= end)
        .group_by(d.kind, d.account, d.currency)
    ).all()
    out: dict[str, dict[str, Any]] = defaultdict(empty_totals)
    for kind, account, currency, total, lines in rows:
        accumulate(out[currency], kind, account, int(total), int(lines))
    for c in out.values():
        c["net"] = net(c)
    return dict(sorted(out.items()))


def net(c: dict[str, Any]) -> int:
    """What the newsroom keeps: net = gross − fees − refunds − disputes."""
    return int(c["gross"] - c["fees"] - c["refunds"] - c["disputes"])


def accumulate(c: dict[str, Any], kind: str, account: str, total: int, lines: int) -> None:
    """Add one (entry kind, account) group of journal lines to a report's totals.

    One balance line per payment entry, so its line count counts payments; the other
    accounts' balances are the fees, covered fees, refunds and disputes themselves.
    """
    if kind in a.PAYMENT_KINDS and account == a.STRIPE_BALANCE:
        bucket = "one_off" if kind == a.PAYMENT_ONE_OFF else "recurring"
        c["gross"] += total
        c["count"] += lines
        c[bucket]["gross"] += total
        c[bucket]["count"] += lines
    elif account == a.COVERED_FEES:
        c["fee_covered"] -= total
    elif account == a.STRIPE_FEES:
        c["fees"] += total
    elif account == a.REFUNDS:
        c["refunds"] += total
    elif account == a.DISPUTES:
        c["disputes"] += total
