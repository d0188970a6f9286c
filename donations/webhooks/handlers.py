"""Verified Stripe events → inbox → handlers → ledger, idempotently and in any order.

`process_event` runs inside the caller's transaction: the event id is recorded in the same
transaction as the entries it causes, so a replayed or concurrent duplicate changes nothing.
Handlers re-fetch objects from Stripe rather than trusting payload shapes (the emulator
answers in 2017 shapes); disputes are the exception, since the emulator has none to fetch.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from donations.checkout.models import INTERVALS, Contribution, Subscription
from donations.db import new_id, utcnow
from donations.ledger import accounts, journal, postings
from donations.mail.outbox import enqueue
from donations.stripe_gateway import (
    BalanceTransaction,
    Charge,
    Dispute,
    Invoice,
    NotFoundAtStripe,
    Payout,
    Refund,
    StripeGateway,
)
from donations.stripe_gateway import Subscription as StripeSubscription
from donations.webhooks.models import StripeEvent

log = logging.getLogger(__name__)
FREQUENCY_OF_INTERVAL = {interval: frequency for frequency, interval in INTERVALS.items()}

DUPLICATE = "duplicate"
HANDLED_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "charge.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "invoice.payment_succeeded",
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
        "payout.paid",
        "payout.failed",
    }
)


class MalformedEvent(ValueError):
    """The JSON is not a Stripe event."""


def check_event_shape(event: Any) -> None:
    if not isinstance(event, dict):
        raise MalformedEvent("an event is a JSON object")
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        raise MalformedEvent("event.id must be a Stripe event id (evt_…)")
    if not isinstance(event.get("type"), str):
        raise MalformedEvent("event.type must be a string")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("event.data.object must be an object")
    if not isinstance(data["object"].get("id", ""), str):
        raise MalformedEvent("event.data.object.id must be a string")
    if event["type"] in HANDLED_TYPES and not data["object"].get("id"):
        # Every object Stripe sends has one, and every handler starts from it.
        raise MalformedEvent("event.data.object.id is missing")


def _created(event: dict[str, Any]) -> datetime:
    ts = event.get("created")
    # Up to the year 9999 (datetime's range); anything else is not Stripe's.
    if isinstance(ts, int) and 0 < ts < 253_402_300_800:
        return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)
    return utcnow()


def process_event(
    session: Session, gateway: StripeGateway, event: dict[str, Any], *, source: str = "webhook"
) -> str:
    """Record the event once and book its effects; answers what was done (or DUPLICATE)."""
    check_event_shape(event)
    if session.get(StripeEvent, event["id"]) is not None:
        return DUPLICATE
    record = StripeEvent(id=event["id"], type=event["type"], created=_created(event), source=source)
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        return DUPLICATE  # a concurrent delivery of the same event got there first
    books = Books(session, gateway, event_id=event["id"])
    try:
        outcome = books.dispatch(event["type"], event["data"]["object"])
    except NotFoundAtStripe as exc:
        # The object is gone at Stripe (e.g. test data flushed): nothing to book from it.
        outcome = f"ignored: {exc}"
    except (KeyError, TypeError, ValueError) as exc:
        # A payload the handlers must read (disputes, payouts) lacks what Stripe always sends.
        raise MalformedEvent(f"{event['type']} payload is missing or has a bad {exc}") from exc
    record.outcome = outcome[:500]
    return outcome


def apply_subscription_state(
    sub: Subscription, stripe_sub: StripeSubscription, *, deleted: bool = False
) -> None:
    """Copy Stripe's state of a subscription onto its row (Stripe is authoritative;
    "canceled" is final). Webhooks and donors' self-service both go through here, so an event
    that arrives after a change the service made itself finds the row already as it says."""
    if sub.status != "canceled":
        sub.status = "canceled" if deleted else stripe_sub.status
    sub.cancel_at_period_end = stripe_sub.cancel_at_period_end
    sub.current_period_end = stripe_sub.current_period_end
    if stripe_sub.amount:
        sub.amount = stripe_sub.amount
    if stripe_sub.interval in ("month", "year"):
        sub.interval = stripe_sub.interval
    if sub.status == "canceled" and sub.canceled_at is None:
        sub.canceled_at = stripe_sub.canceled_at or utcnow()


class Books:
    """Booking use cases shared by the webhook and by reconciliation."""

    def __init__(self, session: Session, gateway: StripeGateway, *, event_id: str | None) -> None:
        self.session = session
        self.gateway = gateway
        self.event_id = event_id

    # dispatch -------------------------------------------------------------------------------
    def dispatch(self, type_: str, obj: dict[str, Any]) -> str:
        match type_:
            case "payment_intent.succeeded":
                pi = self.gateway.retrieve_payment_intent(obj["id"])
                if pi.invoice_id:
                    return self.book_invoice(pi.invoice_id)
                if not pi.charge_id:
                    return "ignored: payment intent has no charge"
                return self.book_charge(pi.charge_id)
            case "charge.succeeded":
                return self.book_charge(obj["id"])
            case "payment_intent.payment_failed" | "payment_intent.canceled":
                return self.payment_failed(obj["id"], type_)
            case "invoice.payment_succeeded" | "invoice.paid":
                return self.book_invoice(obj["id"])
            case "invoice.payment_failed":
                return self.invoice_failed(obj["id"])
            case (
                "customer.subscription.created"
                | "customer.subscription.updated"
                | "customer.subscription.deleted"
            ):
                return self.sync_subscription(obj, deleted=type_.endswith("deleted"))
            case "charge.refunded":
                return self.book_refunds(obj["id"])
            case "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed":
                return self.book_refund_object(obj["id"])
            case "charge.dispute.created" | "charge.dispute.funds_withdrawn":
                return self.book_dispute(Dispute.parse(obj))
            case "charge.dispute.closed" | "charge.dispute.funds_reinstated":
                return self.close_dispute(Dispute.parse(obj))
            case "payout.paid":
                return self.book_payout(obj["id"], obj)
            case "payout.failed":
                return self.payout_failed(obj["id"], obj)
            case _:
                return "acknowledged: not a type this service books"

    # finding contributions -------------------------------------------------------------------
    def _contribution(self, contribution_id: str | None) -> Contribution | None:
        if not contribution_id:
            return None
        return self.session.scalar(
            select(Contribution).where(Contribution.id == contribution_id).with_for_update()
        )

    def _by(self, column: Any, value: str | None) -> Contribution | None:
        if not value:
            return None
        return self.session.scalar(select(Contribution).where(column == value).with_for_update())

    def contribution_for_charge(self, charge: Charge) -> Contribution | None:
        found = self._by(Contribution.stripe_charge_id, charge.id)
        if found is None and charge.invoice_id:
            found = self._by(Contribution.stripe_invoice_id, charge.invoice_id)
        if found is None and charge.payment_intent_id:
            found = self._by(Contribution.stripe_payment_intent_id, charge.payment_intent_id)
            if found is None:
                pi = self.gateway.retrieve_payment_intent(charge.payment_intent_id)
                found = self._contribution(pi.metadata.get("contribution_id"))
        if found is None:
            found = self._contribution(charge.metadata.get("contribution_id"))
        return found

    # payments -------------------------------------------------------------------------------
    def book_charge(self, charge_id: str) -> str:
        charge = self.gateway.retrieve_charge(charge_id)
        if charge.invoice_id:
            return self.book_invoice(charge.invoice_id)
        if charge.status != "succeeded":
            return f"ignored: charge is {charge.status}"
        contribution = self.contribution_for_charge(charge)
        if contribution is None:
            return "ignored: charge belongs to no contribution"
        return self.book_payment(contribution, charge)

    def book_payment(self, contribution: Contribution, charge: Charge) -> str:
        """Book a succeeded charge of a contribution: the payment, Stripe's fee, any refunds."""
        if contribution.stripe_charge_id is None:
            contribution.stripe_charge_id = charge.id
        if contribution.advance("succeeded"):
            contribution.succeeded_at = charge.created
            contribution.failure_message = None  # an earlier declined card no longer matters
        gift, covered = postings.split_charge(
            charge.amount, contribution.total, contribution.amount, contribution.fee_covered
        )
        posted = journal.post(
            self.session,
            key=f"payment:{charge.id}",
            kind=accounts.PAYMENT_RECURRING
            if contribution.is_recurring
            else accounts.PAYMENT_ONE_OFF,
            currency=charge.currency,
            occurred_at=charge.created,
            stripe_object_id=charge.id,
            contribution_id=contribution.id,
            event_id=self.event_id,
            lines=postings.payment(
                charge.amount, gift, covered, recurring=contribution.is_recurring
            ),
            memo=f"{contribution.frequency} contribution {contribution.id}",
        )
        if posted:
            self._queue_receipt(contribution, charge, gift, covered)
        if charge.balance_transaction_id:
            self.book_fee(charge.balance_transaction_id, contribution.id)
        if charge.amount_refunded or charge.refunds:
            self._book_charge_refunds(contribution, charge)
        return "booked payment" if posted else "payment already booked"

    def _queue_receipt(
        self, contribution: Contribution, charge: Charge, gift: int, covered: int
    ) -> None:
        """One receipt per booked payment, in the booking's transaction (the dedupe key stops a
        replayed or concurrent event); a renewal's says so. Sent after commit."""
        if contribution.donor_id is None:
            return
        enqueue(
            self.session,
            kind="renewal_receipt" if contribution.parent_id else "receipt",
            dedupe_key=f"receipt:{contribution.id}",
            donor_id=contribution.donor_id,
            contribution_id=contribution.id,
            lang=contribution.lang,
            payload={
                "charged": charge.amount,
                "gift": gift,
                "covered": covered,
                "currency": charge.currency,
                "paid_at": charge.created.isoformat(),
            },
        )

    def book_fee(
        self,
        txn_id: str,
        contribution_id: str | None,
        *,
        fee: int | None = None,
        currency: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """Stripe's fee comes from the balance transaction, booked as its own entry."""
        if journal.is_posted(self.session, f"fee:{txn_id}"):
            return
        if fee is None or currency is None or occurred_at is None:
            txn = self.gateway.retrieve_balance_transaction(txn_id)
            fee, currency, occurred_at = txn.fee, txn.currency, txn.created
        journal.post(
            self.session,
            key=f"fee:{txn_id}",
            kind=accounts.STRIPE_FEE,
            currency=currency,
            occurred_at=occurred_at,
            stripe_object_id=txn_id,
            contribution_id=contribution_id,
            event_id=self.event_id,
            lines=postings.stripe_fee(fee),
            memo="Stripe fee",
        )

    def book_fee_of(self, txn: BalanceTransaction) -> str:
        self.book_fee(txn.id, None, fee=txn.fee, currency=txn.currency, occurred_at=txn.created)
        return "booked fee"

    def payment_failed(self, intent_id: str, type_: str) -> str:
        contribution = self._by(Contribution.stripe_payment_intent_id, intent_id)
        if contribution is None:
            pi = self.gateway.retrieve_payment_intent(intent_id)
            if pi.invoice_id:
                return self.invoice_failed(pi.invoice_id)
            contribution = self._contribution(pi.metadata.get("contribution_id"))
        if contribution is None:
            return "ignored: payment intent belongs to no contribution"
        pi = self.gateway.retrieve_payment_intent(intent_id)
        if pi.status == "succeeded":
            return "ignored: the payment intent has since succeeded"
        status = "canceled" if type_.endswith("canceled") else "failed"
        contribution.failure_message = (pi.error_message or "")[:300] or None
        return f"marked {status}" if contribution.advance(status) else "status unchanged"

    # recurring ------------------------------------------------------------------------------
    def subscription_contribution(
        self, subscription_id: str | None, metadata: dict[str, str], customer_id: str | None
    ) -> Contribution | None:
        """The contribution that started a subscription."""
        if subscription_id:
            sub = self.session.get(Subscription, subscription_id)
            if sub is not None:
                return self._contribution(sub.contribution_id)
        found = self._contribution(metadata.get("contribution_id"))
        if found is None and subscription_id:
            found = self.session.scalar(
                select(Contribution)
                .where(
                    Contribution.stripe_subscription_id == subscription_id,
                    Contribution.parent_id.is_(None),
                )
                .with_for_update()
            )
        if found is None and subscription_id:
            stripe_sub = self.gateway.retrieve_subscription(subscription_id)
            found = self._contribution(stripe_sub.metadata.get("contribution_id"))
        return found

    def _renewal_terms(self, first: Contribution, invoice: Invoice) -> tuple[str, int, int, int]:
        """(frequency, gift, covered fee, total) of a renewal: the first contribution's, unless
        the donor has since changed the amount or the interval (self-service)."""
        frequency = first.frequency
        if first.stripe_subscription_id:
            sub = self.session.get(Subscription, first.stripe_subscription_id)
            if sub is not None:
                frequency = FREQUENCY_OF_INTERVAL.get(sub.interval, frequency)
        if invoice.amount_paid == first.total:
            return frequency, first.amount, first.fee_covered, first.total
        return frequency, invoice.amount_paid, 0, invoice.amount_paid

    def book_invoice(self, invoice_id: str) -> str:
        """Each paid invoice is one contribution: the first is the one that started the
        subscription, every later one a renewal linked to it."""
        invoice = self.gateway.retrieve_invoice(invoice_id)
        if invoice.status != "paid" or invoice.amount_paid <= 0:
            return f"ignored: invoice is {invoice.status} for {invoice.amount_paid}"
        contribution = self._by(Contribution.stripe_invoice_id, invoice.id)
        if contribution is None:
            first = self.subscription_contribution(
                invoice.subscription_id, invoice.metadata, invoice.customer_id
            )
            if first is None:
                return "ignored: invoice belongs to no contribution"
            if first.stripe_subscription_id is None and invoice.subscription_id:
                first.stripe_subscription_id = invoice.subscription_id
            if first.stripe_invoice_id is None and invoice.billing_reason in (
                None,
                "subscription_create",
            ):
                first.stripe_invoice_id = invoice.id
                contribution = first
            else:
                frequency, amount, covered, total = self._renewal_terms(first, invoice)
                contribution = Contribution(
                    id=new_id("ctb"),
                    status="pending",
                    frequency=frequency,
                    currency=first.currency,
                    amount=amount,
                    fee_covered=covered,
                    total=total,
                    donor_id=first.donor_id,
                    article=first.article,
                    campaign=first.campaign,
                    variant=first.variant,
                    placement=first.placement,
                    lang=first.lang,
                    stripe_subscription_id=invoice.subscription_id,
                    stripe_invoice_id=invoice.id,
                    parent_id=first.id,
                    created_at=invoice.created,
                )
                self.session.add(contribution)
                self.session.flush()
        charge_id = invoice.charge_id
        if charge_id is None and invoice.payment_intent_id:
            charge_id = self.gateway.retrieve_payment_intent(invoice.payment_intent_id).charge_id
        if charge_id is None:
            return "ignored: paid invoice without a charge"
        charge = self.gateway.retrieve_charge(charge_id)
        outcome = self.book_payment(contribution, charge)
        return outcome + (" (renewal)" if contribution.parent_id else "")

    def invoice_failed(self, invoice_id: str) -> str:
        invoice = self.gateway.retrieve_invoice(invoice_id)
        first = self.subscription_contribution(
            invoice.subscription_id, invoice.metadata, invoice.customer_id
        )
        if first is None:
            return "ignored: invoice belongs to no contribution"
        if first.stripe_invoice_id in (None, invoice.id) and first.status == "pending":
            first.advance("failed")
            return "marked failed (first invoice)"
        return "renewal payment failed; Stripe retries it by its own schedule"

    def sync_subscription(self, obj: dict[str, Any], *, deleted: bool) -> str:
        try:
            stripe_sub = self.gateway.retrieve_subscription(obj["id"])
        except NotFoundAtStripe:
            stripe_sub = StripeSubscription.parse(obj)
        first = self.subscription_contribution(
            stripe_sub.id, stripe_sub.metadata, stripe_sub.customer_id
        )
        if first is None:
            return "ignored: subscription belongs to no contribution"
        sub = self.session.get(Subscription, stripe_sub.id)
        if sub is None:
            sub = Subscription(
                id=stripe_sub.id,
                contribution_id=first.id,
                donor_id=first.donor_id,
                status=stripe_sub.status,
                currency=stripe_sub.currency or first.currency,
                amount=stripe_sub.amount or first.total,
                interval=stripe_sub.interval
                or ("year" if first.frequency == "annual" else "month"),
            )
            self.session.add(sub)
        if first.stripe_subscription_id is None:
            first.stripe_subscription_id = stripe_sub.id
        apply_subscription_state(sub, stripe_sub, deleted=deleted)
        if sub.status == "canceled" and first.status == "pending":
            first.advance("canceled")
        return f"subscription {sub.status}"

    # refunds --------------------------------------------------------------------------------
    def book_refund_object(self, refund_id: str) -> str:
        refund = self.gateway.retrieve_refund(refund_id)
        charge_id = refund.charge_id
        if charge_id is None:
            return "ignored: refund without a charge"
        return self.book_refunds(charge_id)

    def book_refunds(self, charge_id: str) -> str:
        """Book every refund of a charge; the payment first if it is not booked yet, so the
        books converge whatever order the events came in."""
        charge = self.gateway.retrieve_charge(charge_id)
        contribution = self.contribution_for_charge(charge)
        if contribution is None:
            return "ignored: charge belongs to no contribution"
        if charge.status == "succeeded" and not journal.is_posted(
            self.session, f"payment:{charge.id}"
        ):
            if charge.invoice_id:
                self.book_invoice(charge.invoice_id)
                contribution = self.contribution_for_charge(charge) or contribution
            else:
                self.book_payment(contribution, charge)
        return self._book_charge_refunds(contribution, charge)

    def _book_charge_refunds(self, contribution: Contribution, charge: Charge) -> str:
        refunds = charge.refunds or tuple(self.gateway.list_refunds(charge.id))
        booked = 0
        for refund in refunds:
            booked += self._book_refund(contribution, refund)
        refunded = self._refunded_total(contribution, charge.currency)
        contribution.refunded_amount = refunded
        if refunded >= contribution.total and refunded > 0:
            contribution.advance("refunded")
        elif refunded > 0:
            contribution.advance("partially_refunded")
        return f"booked {booked} refund(s); {refunded} refunded in all"

    def _refunded_total(self, contribution: Contribution, currency: str) -> int:
        return journal.account_total(
            self.session, accounts.REFUNDS, currency, contribution_id=contribution.id
        )

    def _book_refund(self, contribution: Contribution, refund: Refund) -> int:
        if refund.status in ("failed", "canceled"):
            if journal.is_posted(self.session, f"refund:{refund.id}"):
                return int(
                    journal.post(
                        self.session,
                        key=f"refund_reversal:{refund.id}",
                        kind=accounts.REFUND_REVERSAL,
                        currency=refund.currency,
                        occurred_at=utcnow(),
                        stripe_object_id=refund.id,
                        contribution_id=contribution.id,
                        event_id=self.event_id,
                        lines=postings.refund_reversal(refund.amount),
                        memo="refund failed",
                    )
                )
            return 0
        posted = journal.post(
            self.session,
            key=f"refund:{refund.id}",
            kind=accounts.REFUND,
            currency=refund.currency,
            occurred_at=refund.created,
            stripe_object_id=refund.id,
            contribution_id=contribution.id,
            event_id=self.event_id,
            lines=postings.refund(refund.amount),
            memo=f"refund of {contribution.id}",
        )
        if refund.balance_transaction_id:
            self.book_fee(refund.balance_transaction_id, contribution.id)
        return int(posted)

    # disputes -------------------------------------------------------------------------------
    def _dispute_contribution(self, dispute: Dispute) -> tuple[Contribution | None, Charge | None]:
        if not dispute.charge_id:
            return None, None
        charge = self.gateway.retrieve_charge(dispute.charge_id)
        contribution = self.contribution_for_charge(charge)
        if contribution is not None and not journal.is_posted(self.session, f"payment:{charge.id}"):
            if charge.invoice_id:
                self.book_invoice(charge.invoice_id)
                contribution = self.contribution_for_charge(charge) or contribution
            else:
                self.book_payment(contribution, charge)
        return contribution, charge

    def book_dispute(self, dispute: Dispute) -> str:
        contribution, _ = self._dispute_contribution(dispute)
        if contribution is None:
            return "ignored: dispute belongs to no contribution"
        posted = journal.post(
            self.session,
            key=f"dispute:{dispute.id}",
            kind=accounts.DISPUTE,
            currency=dispute.currency,
            occurred_at=dispute.created,
            stripe_object_id=dispute.id,
            contribution_id=contribution.id,
            event_id=self.event_id,
            lines=postings.dispute(dispute.amount),
            memo=f"dispute of {contribution.id}",
        )
        # The withdrawal's balance transaction carries Stripe's dispute fee.
        for txn in dispute.balance_transactions:
            if txn.amount < 0:
                self.book_fee(
                    txn.id,
                    contribution.id,
                    fee=txn.fee,
                    currency=txn.currency,
                    occurred_at=txn.created,
                )
        contribution.advance("disputed")
        return "booked dispute" if posted else "dispute already booked"

    def close_dispute(self, dispute: Dispute) -> str:
        contribution, _ = self._dispute_contribution(dispute)
        if contribution is None:
            return "ignored: dispute belongs to no contribution"
        self.book_dispute(dispute)  # a closure that arrives first books the dispute too
        if dispute.status != "won":
            return f"dispute closed: {dispute.status}"
        journal.post(
            self.session,
            key=f"dispute_reversal:{dispute.id}",
            kind=accounts.DISPUTE_REVERSAL,
            currency=dispute.currency,
            occurred_at=max(
                (t.created for t in dispute.balance_transactions if t.amount > 0),
                default=utcnow(),
            ),
            stripe_object_id=dispute.id,
            contribution_id=contribution.id,
            event_id=self.event_id,
            lines=postings.dispute_reversal(dispute.amount),
            memo=f"dispute won for {contribution.id}",
        )
        for txn in dispute.balance_transactions:
            if txn.amount > 0 and txn.fee:
                self.book_fee(
                    txn.id,
                    contribution.id,
                    fee=txn.fee,
                    currency=txn.currency,
                    occurred_at=txn.created,
                )
        return "dispute won: reinstated"

    # payouts --------------------------------------------------------------------------------
    def _payout(self, payout_id: str, obj: dict[str, Any]) -> Payout:
        try:
            return self.gateway.retrieve_payout(payout_id)
        except NotFoundAtStripe:
            return Payout.parse(obj)

    def book_payout(self, payout_id: str, obj: dict[str, Any]) -> str:
        payout = self._payout(payout_id, obj)
        posted = journal.post(
            self.session,
            key=f"payout:{payout.id}",
            kind=accounts.PAYOUT,
            currency=payout.currency,
            occurred_at=payout.arrival_date or payout.created,
            stripe_object_id=payout.id,
            event_id=self.event_id,
            lines=postings.payout(payout.amount),
            memo="payout to the bank",
        )
        return "booked payout" if posted else "payout already booked"

    def payout_failed(self, payout_id: str, obj: dict[str, Any]) -> str:
        if not journal.is_posted(self.session, f"payout:{payout_id}"):
            return "payout failed before it was booked: nothing to reverse"
        payout = self._payout(payout_id, obj)
        journal.post(
            self.session,
            key=f"payout_reversal:{payout.id}",
            kind=accounts.PAYOUT_REVERSAL,
            currency=payout.currency,
            occurred_at=utcnow(),
            stripe_object_id=payout.id,
            event_id=self.event_id,
            lines=postings.payout_reversal(payout.amount),
            memo="payout failed",
        )
        return "reversed failed payout"
