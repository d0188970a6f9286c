"""Recurring revenue per currency from the subscriptions table."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from donations.checkout.models import Subscription
from donations.reports.summary import day_bounds

# Subscriptions that bring revenue now. As in Stripe's own MRR, past_due counts (Stripe is
# still retrying the card) and trialing does not (nothing is charged yet).
# https://docs.stripe.com/billing/subscriptions/overview#subscription-statuses
ACTIVE = ("active", "past_due")
# Subscriptions whose first payment never succeeded never started: not "new".
NEVER_STARTED = ("incomplete", "incomplete_expired")


def recurring(session: Session, start: date, end: date) -> dict[str, dict[str, int]]:
    """Per currency: subscriptions active now and their MRR in minor units (annual ones count
    a twelfth, rounded half up once per currency), and how many were created and canceled
    on the UTC days [start, end]."""
    lo, hi = day_bounds(start, end)
    active = Subscription.status.in_(ACTIVE)
    started = Subscription.status.not_in(NEVER_STARTED)
    created = and_(Subscription.created_at >= lo, Subscription.created_at < hi, started)
    canceled_then = and_(Subscription.canceled_at >= lo, Subscription.canceled_at < hi)

    def when(condition: Any, value: Any = 1) -> Any:
        return func.sum(case((condition, value), else_=0))

    rows = session.execute(
        select(
            Subscription.currency,
            when(active),
            when(and_(active, Subscription.interval == "month"), Subscription.amount),
            when(and_(active, Subscription.interval == "year"), Subscription.amount),
            when(created),
            when(canceled_then),
        )
        .group_by(Subscription.currency)
        .order_by(Subscription.currency)
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for currency, n_active, monthly, annual, new, canceled in rows:
        figures = {
            "active": int(n_active),
            "mrr": int(monthly) + monthly_share(int(annual)),
            "new": int(new),
            "canceled": int(canceled),
        }
        if any(figures.values()):
            out[currency] = figures
    return out


def monthly_share(annual: int) -> int:
    """A twelfth of an annual amount in minor units, rounded half up."""
    return (annual + 6) // 12
