"""Read-only report queries, derived from the journal only (its daily rollup)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from donations.ledger import accounts as a
from donations.ledger.rollups import LedgerDaily


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


def empty_settlement() -> dict[str, int]:
    return {
        "gross": 0,
        "fees": 0,
        "refunds": 0,
        "disputes": 0,
        "exchange": 0,
        "net": 0,
        "payouts": 0,
    }


def _rows(session: Session, start: date, end: date) -> list[Any]:
    d = LedgerDaily
    return list(
        session.execute(
            select(d.kind, d.account, d.currency, func.sum(d.amount), func.sum(d.lines))
            .where(d.day >= start, d.day <= end)
            .group_by(d.kind, d.account, d.currency)
        ).all()
    )


def summary(session: Session, start: date, end: date) -> dict[str, dict[str, Any]]:
    """Per donors' currency: payments counted and charged, Stripe fees settled in that same
    currency, refunds and disputes, net. Each amount falls on the UTC day it happened (a
    refund on the refund's day). net = gross − fees − refunds − disputes."""
    return currencies_of(_rows(session, start, end))


def currencies_of(rows: list[Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(empty_totals)
    donors = {currency for _, account, currency, _, _ in rows if account in a.DONOR_ACCOUNTS}
    for kind, account, currency, total, lines in rows:
        if currency in donors:
            accumulate(out[currency], kind, account, int(total), int(lines))
    for c in out.values():
        c["net"] = net(c)
    return dict(sorted(out.items()))


def settlement(session: Session, start: date, end: date) -> dict[str, dict[str, int]]:
    """How Stripe's balance moved, per settlement currency, from the balance transactions'
    own amounts: gross charged, fees, refunds and disputes valued at their payments' rates,
    the exchange difference booked (gains positive), payouts.
    net = gross − fees − refunds − disputes + exchange."""
    return settlement_of(_rows(session, start, end))


def settlement_of(rows: list[Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(empty_settlement)
    moved = {currency for _, account, currency, _, _ in rows if account == a.STRIPE_BALANCE}
    returned = {
        a.REFUND: "refunds",
        a.REFUND_REVERSAL: "refunds",
        a.DISPUTE: "disputes",
        a.DISPUTE_REVERSAL: "disputes",
    }
    for kind, account, currency, total, _ in rows:
        if currency not in moved:
            continue
        s, total = out[currency], int(total)
        if account == a.STRIPE_FEES:
            s["fees"] += total
        elif account == a.EXCHANGE_DIFFERENCES:
            s["exchange"] -= total
        if kind in a.PAYMENT_KINDS and account == a.STRIPE_BALANCE:
            s["gross"] += total
        elif kind in returned and account in (a.STRIPE_BALANCE, a.EXCHANGE_DIFFERENCES):
            s[returned[kind]] -= total
        elif kind in a.PAYOUT_KINDS and account == a.STRIPE_BALANCE:
            s["payouts"] -= total
    for s in out.values():
        s["net"] = s["gross"] - s["fees"] - s["refunds"] - s["disputes"] + s["exchange"]
    return dict(sorted(out.items()))


def net(c: dict[str, Any]) -> int:
    """What the newsroom keeps: net = gross − fees − refunds − disputes."""
    return int(c["gross"] - c["fees"] - c["refunds"] - c["disputes"])


def accumulate(c: dict[str, Any], kind: str, account: str, total: int, lines: int) -> None:
    """Add one (entry kind, account) group of journal lines to a donors'-currency report.

    A payment entry has one gift line (its count counts payments) and maybe a covered-fee
    line: together what the donor was charged. Fees, refunds and disputes are their accounts'
    own balances (fees in the currency they settled in)."""
    if kind in a.PAYMENT_KINDS and account in a.INCOME:
        bucket = c["one_off" if kind == a.PAYMENT_ONE_OFF else "recurring"]
        c["gross"] -= total
        bucket["gross"] -= total
        if account == a.COVERED_FEES:
            c["fee_covered"] -= total
        else:
            c["count"] += lines
            bucket["count"] += lines
    elif account == a.STRIPE_FEES:
        c["fees"] += total
    elif account == a.REFUNDS:
        c["refunds"] += total
    elif account == a.DISPUTES:
        c["disputes"] += total
