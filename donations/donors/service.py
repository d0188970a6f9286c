"""A signed-in donor's account: their contributions, receipts, statements, and self-service
for recurring gifts.

Use cases take a Session (and the gateway when Stripe is involved), may flush, never commit.
Every change to a subscription goes through the Stripe gateway first; the row is then set from
Stripe's answer by the same function the webhooks use, so a later event changes nothing.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import has_request_context
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from donations.checkout.models import INTERVALS, Contribution, Donor, Subscription
from donations.checkout.service import stripe_metadata
from donations.db import utcnow
from donations.i18n import N_, current_language
from donations.i18n import money as _money
from donations.ledger import accounts
from donations.ledger.booking import apply_subscription_state
from donations.ledger.models import JournalEntry, JournalLine
from donations.mail.outbox import enqueue
from donations.money import CurrencyRule
from donations.stripe import StripeGateway
from donations.stripe.facts import Card

PAID = ("succeeded", "partially_refunded", "refunded", "disputed")
LIVE = ("active", "trialing", "past_due")
# What a statement lists: money the donor gave (+) and got back (−), from the ledger.
# Labels are marked for translation here and translated where shown (statement.html).
STATEMENT_KINDS = {
    accounts.PAYMENT_ONE_OFF: N_("Contribution"),
    accounts.PAYMENT_RECURRING: N_("Recurring contribution"),
    accounts.REFUND: N_("Refund"),
    accounts.REFUND_REVERSAL: N_("Refund reversed"),
    accounts.DISPUTE: N_("Disputed payment returned"),
    accounts.DISPUTE_REVERSAL: N_("Dispute reversed"),
}


class AccountError(Exception):
    """A request the donor can fix (the message says how)."""


class NotYours(AccountError):
    """Not found among this donor's things (answered as a 404)."""


# --- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overview:
    donor: Donor
    contributions: list[Contribution]
    subscriptions: list[Subscription]  # live ones, newest first
    supporter_kind: str | None


def overview(session: Session, donor_id: str, *, one_off_days: int, now: datetime) -> Overview:
    donor = session.get(Donor, donor_id)
    if donor is None:
        raise NotYours("No such donor.")
    contributions = list(
        session.scalars(
            select(Contribution)
            .where(Contribution.donor_id == donor_id)
            .order_by(Contribution.created_at.desc(), Contribution.id)
        )
    )
    subscriptions = list(
        session.scalars(
            select(Subscription)
            .where(Subscription.donor_id == donor_id, Subscription.status.in_(LIVE))
            .order_by(Subscription.created_at.desc())
        )
    )
    return Overview(
        donor,
        contributions,
        subscriptions,
        supporter_kind(
            session, donor_id, now=now, one_off_days=one_off_days, subscriptions=subscriptions
        ),
    )


def supporter_kind(
    session: Session,
    donor_id: str,
    *,
    now: datetime,
    one_off_days: int,
    subscriptions: list[Subscription] | None = None,
) -> str | None:
    """ "recurring" with a live subscription, "one_off" after a gift within the supporter
    window the appeals use, else None."""
    if subscriptions is None:
        subscriptions = list(
            session.scalars(
                select(Subscription).where(
                    Subscription.donor_id == donor_id, Subscription.status.in_(LIVE)
                )
            )
        )
    if subscriptions:
        return "recurring"
    recent = session.scalar(
        select(func.count())
        .select_from(Contribution)
        .where(
            Contribution.donor_id == donor_id,
            Contribution.status.in_(("succeeded", "partially_refunded")),
            Contribution.succeeded_at >= now - timedelta(days=one_off_days),
        )
    )
    return "one_off" if recent else None


def latest_gift(contributions: list[Contribution]) -> datetime | None:
    """When the donor last gave successfully (a one-off supporter's window starts there)."""
    times = [
        c.succeeded_at
        for c in contributions
        if c.succeeded_at is not None and c.status in ("succeeded", "partially_refunded")
    ]
    return max(times, default=None)


def receipt(session: Session, donor_id: str, contribution_id: str) -> Contribution:
    """A paid contribution of this donor's (any other: NotYours, answered 404)."""
    found = session.get(Contribution, contribution_id)
    if found is None or found.donor_id != donor_id or found.status not in PAID:
        raise NotYours("No such receipt.")
    return found


@dataclass(frozen=True)
class StatementLine:
    day: date
    label: str
    contribution_id: str | None
    amount: int  # minor units, negative for money returned
    currency: str


@dataclass
class Statement:
    start: date
    end: date
    lines: list[StatementLine] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # per currency, never summed across


def _donor_entries(donor_id: str) -> Any:
    """This donor's payments, refunds and disputes with their amounts in the donor's currency
    (what they were charged or got back: the entry's lines on the donor-facing accounts)."""
    amount = -func.sum(JournalLine.amount)
    return (
        select(JournalEntry, amount.label("amount"))
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .join(Contribution, Contribution.id == JournalEntry.contribution_id)
        .where(
            Contribution.donor_id == donor_id,
            JournalEntry.kind.in_(list(STATEMENT_KINDS)),
            JournalLine.account.in_(accounts.DONOR_ACCOUNTS),
            JournalLine.currency == JournalEntry.currency,
        )
        .group_by(JournalEntry.id)
    )


def default_statement_range(session: Session, donor_id: str, today: date) -> tuple[date, date]:
    """The previous calendar year if the donor gave in it, else the current one."""
    last_year = date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    gave = session.execute(
        _donor_entries(donor_id)
        .where(
            JournalEntry.occurred_at >= datetime.combine(last_year[0], time.min),
            JournalEntry.occurred_at < datetime.combine(date(today.year, 1, 1), time.min),
        )
        .limit(1)
    ).first()
    return last_year if gave else (date(today.year, 1, 1), date(today.year, 12, 31))


def statement(session: Session, donor_id: str, start: date, end: date) -> Statement:
    """Every payment (renewals included) and refund of the donor between two UTC days,
    inclusive, each on the day it happened; totals per currency."""
    rows = session.execute(
        _donor_entries(donor_id)
        .where(
            JournalEntry.occurred_at >= datetime.combine(start, time.min),
            JournalEntry.occurred_at < datetime.combine(end + timedelta(days=1), time.min),
        )
        .order_by(JournalEntry.occurred_at, JournalEntry.id)
    ).all()
    result = Statement(start, end)
    totals: dict[str, int] = defaultdict(int)
    for entry, amount in rows:
        result.lines.append(
            StatementLine(
                day=entry.occurred_at.date(),
                label=STATEMENT_KINDS[entry.kind],
                contribution_id=entry.contribution_id,
                amount=int(amount),
                currency=entry.currency,
            )
        )
        totals[entry.currency] += int(amount)
    result.totals = dict(sorted(totals.items()))
    return result


# --- self-service ---------------------------------------------------------------------------
def own_subscription(session: Session, donor_id: str, sub_id: str) -> Subscription:
    sub = session.get(Subscription, sub_id, with_for_update=True)
    if sub is None or sub.donor_id != donor_id:
        raise NotYours("No such recurring contribution.")
    return sub


def live_subscription(session: Session, donor_id: str, sub_id: str) -> Subscription:
    sub = own_subscription(session, donor_id, sub_id)
    if sub.status not in LIVE:
        raise AccountError(_("This recurring contribution has ended; there is nothing to change."))
    return sub


def _rfc3339(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _notify(session: Session, sub: Subscription, change: str, **payload: Any) -> None:
    first = session.get(Contribution, sub.contribution_id)
    enqueue(
        session,
        kind="subscription_changed",
        # One message per change the donor made (two different changes are two messages).
        dedupe_key=f"subscription_changed:{sub.id}:{change}:{secrets.token_hex(8)}",
        donor_id=sub.donor_id,
        contribution_id=sub.contribution_id,
        # The language the donor is using now (the page's); else the one they gave in.
        lang=current_language() if has_request_context() else (first.lang if first else None),
        payload={"change": change, **{k: v for k, v in payload.items() if v is not None}},
    )


def cancel(
    session: Session, gateway: StripeGateway, donor_id: str, sub_id: str, *, now: bool
) -> str:
    """Cancel now, or at the end of the period already paid for; answers what happened."""
    sub = live_subscription(session, donor_id, sub_id)
    if now:
        stripe_sub = gateway.cancel_subscription(sub.id)
        apply_subscription_state(sub, stripe_sub, deleted=True)
        _notify(session, sub, "canceled", effective=_rfc3339(sub.canceled_at))
        session.flush()
        return _("Your recurring contribution is canceled. You will not be charged again.")
    if sub.cancel_at_period_end:
        return _("Your recurring contribution already ends at the end of this period.")
    stripe_sub = gateway.set_cancel_at_period_end(sub.id, True)
    apply_subscription_state(sub, stripe_sub)
    _notify(session, sub, "cancel_at_period_end", effective=_rfc3339(sub.current_period_end))
    session.flush()
    end = sub.current_period_end
    if end is None:
        return _("Your recurring contribution will end. You will not be charged again.")
    return _(
        "Your recurring contribution will end on %(date)s. You will not be charged again.",
        date=format_date(end, "long"),
    )


def parse_amount(raw: str, currency: str) -> int:
    """A typed amount in major units ("7.50", "7,50") as minor units, exactly."""
    from decimal import Decimal, InvalidOperation

    from donations.money import exponent

    text = (raw or "").strip().replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise AccountError(_("Enter an amount, for example 10 or 7.50.")) from None
    if not value.is_finite() or value <= 0:
        raise AccountError(_("Enter an amount, for example 10 or 7.50."))
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise AccountError(_("That amount has too many decimal places."))
    return int(minor)


def money(minor: int, currency: str) -> str:
    """Money in a message to the donor, as the page's language writes it."""
    return _money(minor, currency)


def _check_amount(rule: CurrencyRule, amount: int) -> None:
    if not rule.minimum <= amount <= rule.maximum:
        raise AccountError(
            _(
                "Choose an amount between %(minimum)s and %(maximum)s.",
                minimum=money(rule.minimum, rule.code),
                maximum=money(rule.maximum, rule.code),
            )
        )


def change_plan(
    session: Session,
    gateway: StripeGateway,
    rule: CurrencyRule,
    donor_id: str,
    sub_id: str,
    *,
    amount: int,
    interval: str,
) -> str:
    """A new amount (from the next payment, no proration) and/or a new interval (a new period
    billed from today, with the unused part of the current one credited)."""
    sub = live_subscription(session, donor_id, sub_id)
    if interval not in INTERVALS.values():
        raise AccountError(_("Choose monthly or annual."))
    if sub.cancel_at_period_end:
        raise AccountError(_("This recurring contribution is ending; start a new one instead."))
    _check_amount(rule, amount)
    if amount == sub.amount and interval == sub.interval:
        raise AccountError(_("That is what you give already."))
    first = session.get(Contribution, sub.contribution_id)
    plan_id = gateway.ensure_plan(amount, sub.currency, interval)
    metadata = stripe_metadata(first) if first else {}
    switched = interval != sub.interval
    if switched:
        stripe_sub = gateway.change_subscription_interval(sub.id, plan_id, metadata)
    else:
        stripe_sub = gateway.change_subscription_amount(sub.id, plan_id, metadata)
    apply_subscription_state(sub, stripe_sub)
    given = money(amount, sub.currency)
    if switched:
        _notify(
            session,
            sub,
            "interval",
            amount=amount,
            currency=sub.currency,
            interval=interval,
            effective=_rfc3339(utcnow()),
        )
        session.flush()
        if interval == "month":
            return _("Your contribution is now %(amount)s monthly, starting today.", amount=given)
        return _("Your contribution is now %(amount)s annual, starting today.", amount=given)
    _notify(
        session,
        sub,
        "amount",
        amount=amount,
        currency=sub.currency,
        interval=interval,
        effective=_rfc3339(sub.current_period_end),
    )
    session.flush()
    if interval == "month":
        return _(
            "Your contribution is now %(amount)s monthly, from your next payment.", amount=given
        )
    return _("Your contribution is now %(amount)s annual, from your next payment.", amount=given)


def _customer_of(gateway: StripeGateway, sub: Subscription) -> str:
    customer_id = gateway.retrieve_subscription(sub.id).customer_id
    if not customer_id:
        raise AccountError(_("This recurring contribution has no card on file to replace."))
    return customer_id


def card_setup_intent(session: Session, gateway: StripeGateway, donor_id: str, sub_id: str) -> str:
    """A SetupIntent for a new card; answers its client secret for confirmCardSetup."""
    sub = live_subscription(session, donor_id, sub_id)
    seti = gateway.create_card_setup_intent(
        _customer_of(gateway, sub), {"donor_id": donor_id, "subscription_id": sub.id}
    )
    return seti.client_secret


def current_card(
    session: Session, gateway: StripeGateway, donor_id: str, sub_id: str
) -> Card | None:
    sub = live_subscription(session, donor_id, sub_id)
    return gateway.default_card(_customer_of(gateway, sub))


def update_card(
    session: Session, gateway: StripeGateway, donor_id: str, sub_id: str, setup_intent_id: str
) -> str:
    """Make the card of a succeeded SetupIntent (made above, for this donor and subscription)
    the customer's default: the next renewal is charged to it."""
    sub = live_subscription(session, donor_id, sub_id)
    seti = gateway.retrieve_setup_intent(setup_intent_id)
    if seti.metadata.get("donor_id") != donor_id or seti.metadata.get("subscription_id") != sub.id:
        raise NotYours("No such card setup.")
    if seti.status != "succeeded" or not seti.payment_method_id:
        raise AccountError(_("The new card has not been confirmed yet. Please try again."))
    gateway.set_default_payment_method(_customer_of(gateway, sub), seti.payment_method_id)
    _notify(session, sub, "card_updated", effective=_rfc3339(utcnow()))
    session.flush()
    return _("Your card is updated: your next payment will be charged to the new card.")


def alternatives(sub: Subscription, rule: CurrencyRule) -> dict[str, int | None]:
    """What the cancel page offers first: half the amount (not below the minimum), and the
    annual (or monthly) equivalent."""
    lower = max(rule.minimum, sub.amount // 2)
    if sub.interval == "month":
        other = min(rule.maximum, max(rule.minimum, sub.amount * 12))
    else:
        other = min(rule.maximum, max(rule.minimum, -(-sub.amount // 12)))
    return {"lower": lower if lower < sub.amount else None, "other_interval": other}
