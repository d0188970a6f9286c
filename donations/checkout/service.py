"""Checkout use cases: start a contribution, confirm a one-off payment, start a subscription.

Each takes a Session and the Stripe gateway, may flush, and never commits (but
`start_contribution`, which asks Stripe before it opens its own transaction). A contribution's
status is never set here: only webhooks (or reconciliation) move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from donations.checkout.models import INTERVALS, Contribution, Donor, Subscription
from donations.db import Database, new_id
from donations.money import CurrencyRule
from donations.stripe import PaymentDeclined, StripeGateway
from donations.stripe.facts import PaymentIntent

UNPAID_SUBSCRIPTION = frozenset({"incomplete", "incomplete_expired", "past_due", "unpaid"})
ATTRIBUTION_FIELDS = ("article", "campaign", "variant", "placement", "impression")


class CheckoutError(Exception):
    status = 409
    title = "Conflict"


class NotFound(CheckoutError):
    status = 404
    title = "Not found"


class Conflict(CheckoutError):
    status = 409
    title = "Conflict"


@dataclass(frozen=True)
class Started:
    contribution: Contribution
    intent: str  # "payment_intent" | "setup_intent"
    client_secret: str


def stripe_metadata(contribution: Contribution) -> dict[str, str]:
    """What every Stripe object carries to tie it back to the contribution and its attribution."""
    meta = {"contribution_id": contribution.id, "frequency": contribution.frequency}
    for name in ATTRIBUTION_FIELDS:
        value = getattr(contribution, name)
        if value:
            meta[name] = str(value)[:500]
    return meta


def donor_for_email(session: Session, email: str, name: str | None) -> Donor:
    """The donor with this email (case-insensitive), created on their first contribution."""
    normalized = email.strip().lower()
    donor = session.scalar(select(Donor).where(Donor.email == normalized))
    if donor is None:
        donor = Donor(id=new_id("don"), email=normalized, name=name or None)
        session.add(donor)
        session.flush()
    elif name and not donor.name:
        donor.name = name
    return donor


def start_contribution(
    db: Database,
    gateway: StripeGateway,
    rule: CurrencyRule,
    *,
    amount: int,
    frequency: str,
    email: str,
    name: str | None = None,
    cover_fees: bool = False,
    attribution: dict[str, Any] | None = None,
    lang: str | None = None,
) -> Started:
    """Create the contribution and its Stripe intent (PaymentIntent one-off, else SetupIntent).

    Stripe is asked first, with no transaction open (SQLite's one write lock is not held
    through a Stripe round trip), then the contribution is stored with its intent in one
    transaction: if Stripe fails nothing is stored; if the database fails, Stripe keeps an
    intent nobody can confirm (its client secret was never answered).
    """
    total, fee_covered = rule.charge_for(amount, cover_fees)
    contribution = Contribution(
        id=new_id("ctb"),
        status="pending",
        frequency=frequency,
        currency=rule.code,
        amount=amount,
        fee_covered=fee_covered,
        total=total,
        lang=lang or None,
        **{k: (attribution or {}).get(k) or None for k in ATTRIBUTION_FIELDS},
    )
    metadata = stripe_metadata(contribution)
    if frequency == "one_off":
        pi = gateway.create_payment_intent(total, rule.code, metadata)
        contribution.stripe_payment_intent_id = pi.id
        started = Started(contribution, "payment_intent", pi.client_secret)
    else:
        seti = gateway.create_setup_intent(metadata)
        contribution.stripe_setup_intent_id = seti.id
        started = Started(contribution, "setup_intent", seti.client_secret)
    with db.transaction() as session:
        contribution.donor_id = donor_for_email(session, email, name).id
        session.add(contribution)
    return started


def get_contribution(session: Session, contribution_id: str, *, lock: bool = False) -> Contribution:
    query = select(Contribution).where(Contribution.id == contribution_id)
    if lock:
        query = query.with_for_update()
    contribution = session.scalar(query)
    if contribution is None:
        raise NotFound(f"No contribution {contribution_id!r}.")
    return contribution


def confirm_payment(
    session: Session, gateway: StripeGateway, contribution_id: str, payment_method: str
) -> tuple[Contribution, PaymentIntent | None, PaymentDeclined | None]:
    """Attach the card the browser tokenised to a one-off PaymentIntent and confirm it.

    Server-side confirmation (a Stripe-documented flow) works the same against Stripe and the
    emulator; 3-D Secure answers `requires_action` and the browser finishes it with
    `stripe.confirmCardPayment(client_secret)`. A decline is answered, not raised, so the
    caller commits what changed (a fresh intent) before reporting it.
    """
    contribution = get_contribution(session, contribution_id, lock=True)
    if contribution.frequency != "one_off" or not contribution.stripe_payment_intent_id:
        raise Conflict("Only one-off contributions are confirmed this way; use /subscribe.")
    pi = gateway.retrieve_payment_intent(contribution.stripe_payment_intent_id)
    if pi.status in ("succeeded", "processing", "requires_capture"):
        return contribution, pi, None  # already paid: confirming again would charge twice
    if pi.status == "canceled":
        raise Conflict("This contribution was canceled; please start a new one.")
    if pi.status == "requires_payment_method" and pi.error_message:
        # A declined attempt: the intent the new card is tried on (the same one at Stripe).
        pi = gateway.intent_for_another_card(pi, stripe_metadata(contribution))
        if pi.id != contribution.stripe_payment_intent_id:
            contribution.stripe_payment_intent_id = pi.id
            session.flush()
    try:
        return contribution, gateway.confirm_payment_intent(pi.id, payment_method), None
    except PaymentDeclined as declined:
        return contribution, None, declined


def subscribe(
    session: Session, gateway: StripeGateway, contribution_id: str
) -> tuple[Contribution, bool]:
    """Create the Stripe subscription once the SetupIntent has succeeded.

    Answers (contribution, created). The row is locked so that two concurrent calls create
    one subscription; a repeated call creates nothing.
    """
    contribution = get_contribution(session, contribution_id, lock=True)
    if not contribution.is_recurring or not contribution.stripe_setup_intent_id:
        raise Conflict("Only monthly and annual contributions have a subscription.")
    if contribution.stripe_subscription_id:
        return contribution, False
    seti = gateway.retrieve_setup_intent(contribution.stripe_setup_intent_id)
    if seti.status != "succeeded" or not seti.payment_method_id:
        raise Conflict(
            f"The card has not been set up yet (SetupIntent is {seti.status}); "
            "confirm it with Stripe.js first."
        )
    donor = contribution.donor
    metadata = stripe_metadata(contribution)
    customer_id = gateway.create_customer(
        email=donor.email if donor and donor.email else "",
        name=donor.name if donor else None,
        payment_method=seti.payment_method_id,
        metadata={"donor_id": donor.id} if donor else {},
    )
    interval = INTERVALS[contribution.frequency]
    plan_id = gateway.ensure_plan(contribution.total, contribution.currency, interval)
    stripe_sub = gateway.create_subscription(
        customer_id=customer_id, plan_id=plan_id, metadata=metadata
    )
    if stripe_sub.status in UNPAID_SUBSCRIPTION:
        # Stripe creates the subscription even when its first payment fails
        # (payment_behavior=allow_incomplete): don't leave it to retry a card that failed.
        gateway.cancel_subscription(stripe_sub.id)
        raise PaymentDeclined(
            "Your card was declined for the first payment. Please try another card.",
            "card_declined",
        )
    if donor is not None and donor.stripe_customer_id is None:
        donor.stripe_customer_id = customer_id
    contribution.stripe_subscription_id = stripe_sub.id
    if session.get(Subscription, stripe_sub.id) is None:
        session.add(
            Subscription(
                id=stripe_sub.id,
                contribution_id=contribution.id,
                donor_id=contribution.donor_id,
                status=stripe_sub.status,
                currency=contribution.currency,
                amount=contribution.total,
                interval=interval,
                cancel_at_period_end=stripe_sub.cancel_at_period_end,
                current_period_end=stripe_sub.current_period_end,
            )
        )
    session.flush()
    return contribution, True
