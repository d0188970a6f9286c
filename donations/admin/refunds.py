"""Staff refund a contribution: ask Stripe, record who asked, and change nothing in the books.

The refund's money reaches the books the way every refund does, through Stripe's events
(`charge.refunded`, `refund.created`…, booked by `ledger.booking`): that is the one path that
knows what Stripe actually did (a refund can be pending, or fail days later). So this use case
only checks what the books say is left, calls Stripe with no transaction open, and writes one
audit entry (the only row it writes) in a transaction of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from donations.admin import audit
from donations.admin.formatting import money
from donations.checkout.models import Contribution
from donations.db import Database
from donations.ledger.models import JournalEntry
from donations.stripe import StripeGateway
from donations.stripe.facts import Refund

AUDIT_ACTION = "contribution.refund"


class ContributionNotFound(LookupError):
    pass


class RefundRefused(ValueError):
    """A refund this service will not ask Stripe for; the message says why, to staff.

    `field` names the input at fault (`amount`), or None when the contribution itself is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Refundable:
    """What the books say about a contribution's money, for a refund."""

    contribution_id: str
    status: str
    currency: str
    total: int
    refunded: int
    payment_intent_id: str | None
    charge_id: str | None
    pending: int = 0  # asked of Stripe here, not yet in the books (their events still to come)

    @property
    def left(self) -> int:
        return max(0, self.total - self.refunded - self.pending)


def pending_refunds(session: Session, contribution_id: str) -> int:
    """What staff asked Stripe to refund here that the books do not hold yet: the audited
    requests whose refund no journal entry names (Stripe's events about it are on their way;
    one that failed at once is left out)."""
    asked: dict[str, int] = {}
    for entry in audit.recent(
        session, limit=500, target_type="contribution", target_id=contribution_id
    ):
        after = entry.after or {}
        if entry.action == AUDIT_ACTION and after.get("refund_status") not in (
            "failed",
            "canceled",
        ):
            refund_id, amount = after.get("refund"), after.get("amount")
            if isinstance(refund_id, str) and isinstance(amount, int):
                asked[refund_id] = amount
    if not asked:
        return 0
    booked = set(
        session.scalars(
            select(JournalEntry.stripe_object_id).where(
                JournalEntry.contribution_id == contribution_id,
                JournalEntry.stripe_object_id.in_(list(asked)),
            )
        )
    )
    return sum(amount for refund_id, amount in asked.items() if refund_id not in booked)


def refundable(session: Session, contribution_id: str) -> Refundable:
    """The contribution, if a refund of it may be asked for; else RefundRefused (or
    ContributionNotFound)."""
    c = session.get(Contribution, contribution_id) if len(contribution_id) <= 40 else None
    if c is None:
        raise ContributionNotFound(f"No contribution {contribution_id}.")
    if not c.is_paid:
        raise RefundRefused(
            f"This contribution is {c.status}: it was never paid, so nothing can be refunded."
        )
    if c.status == "disputed":
        raise RefundRefused(
            "This contribution is disputed: the money is held by the dispute and cannot be "
            "refunded until it is settled."
        )
    if c.status == "refunded" or c.refunded_amount >= c.total:
        raise RefundRefused("This contribution has already been fully refunded.")
    pending = pending_refunds(session, c.id)
    if c.refunded_amount + pending >= c.total:
        raise RefundRefused(
            "Refunds of all of this contribution have already been asked for; Stripe's "
            "confirmation is on its way."
        )
    if not c.stripe_payment_intent_id and not c.stripe_charge_id:
        raise RefundRefused("Stripe has no payment on record for this contribution.")
    return Refundable(
        c.id,
        c.status,
        c.currency,
        c.total,
        c.refunded_amount,
        c.stripe_payment_intent_id,
        c.stripe_charge_id,
        pending,
    )


def amount_to_refund(found: Refundable, amount: int | None) -> int:
    """`amount` (minor units), or all that is left when None; RefundRefused if it is not a
    positive amount within what is left."""
    if amount is None:
        return found.left
    if amount < 1:
        raise RefundRefused("The amount to refund must be more than zero.", "amount")
    if amount > found.left:
        raise RefundRefused(
            f"That is more than is left to refund ({money(found.left, found.currency)}).",
            "amount",
        )
    return amount


def request_refund(
    db: Database,
    gateway: StripeGateway,
    contribution_id: str,
    amount: int | None = None,
    *,
    idempotency_key: str | None = None,
) -> tuple[Refund, int]:
    """Ask Stripe to refund `amount` (all that is left when None) of a paid contribution and
    audit the request; the books change when Stripe's events arrive. Returns Stripe's refund
    and the amount asked for. Raises ContributionNotFound, RefundRefused (nothing was asked
    of Stripe) or the gateway's GatewayError (Stripe refused or could not be reached)."""
    with db.sessions() as session:
        found = refundable(session, contribution_id)
    asked = amount_to_refund(found, amount)
    payment_intent = found.payment_intent_id
    if payment_intent is None and found.charge_id is not None:
        # A subscription's charge: the contribution keeps the charge, the refund wants its
        # PaymentIntent (the invoice's).
        payment_intent = gateway.payment_intent_of_charge(found.charge_id)
    if payment_intent is None:
        raise RefundRefused("Stripe names no payment for this contribution's charge.")
    refund = gateway.create_refund(payment_intent, asked, idempotency_key=idempotency_key)
    with db.transaction() as session:
        if _audited(session, found.contribution_id, refund.id):
            return refund, asked  # the same request again (idempotency key): Stripe's answer
        audit.record(
            session,
            AUDIT_ACTION,
            "contribution",
            found.contribution_id,
            before=_state(found),
            after={
                **_state(found),
                "refund": refund.id,
                "refund_status": refund.status,
                "amount": asked,
            },
        )
    return refund, asked


def _audited(session: Session, contribution_id: str, refund_id: str) -> bool:
    """Whether this refund's request is in the audit log already."""
    entries = audit.recent(
        session, limit=500, target_type="contribution", target_id=contribution_id
    )
    return any(
        e.action == AUDIT_ACTION and (e.after or {}).get("refund") == refund_id for e in entries
    )


def _state(found: Refundable) -> dict[str, Any]:
    return {
        "status": found.status,
        "currency": found.currency,
        "total": found.total,
        "refunded_amount": found.refunded,
    }
