"""Booking rules: what Stripe says happened → journal entries and contribution states.

Each Stripe event (or each balance transaction reconcile finds) is handled in three steps:

1. **gather** (`gather`): the Stripe adapter fetches what Stripe says *now* about the money,
   expanding what it needs, into one small facts object. Only Stripe calls, no database;
   an object Stripe doesn't know yields `Nothing` (the event body is never booked from).
2. **decide**: `donations.ledger.postings` turns facts into balanced lines (pure functions).
3. **write** (`Books.apply`): one transaction posts the entries, each unique on the Stripe
   object or balance transaction that caused it, and settles the contribution's status.

Every money movement is booked from its balance transaction (amount, fee, net, currency), so
for every currency `assets:stripe_balance` equals the sum of the `net` of Stripe's balance
transactions. Any arrival order converges to the same books: a refund or a dispute that comes
before its payment books the payment first, and every rule is idempotent by its key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from donations.checkout.models import INTERVALS, Contribution, Subscription
from donations.db import new_id, utcnow
from donations.ledger import accounts, journal, postings
from donations.stripe import NotFoundAtStripe, StripeGateway
from donations.stripe.facts import (
    BalanceTxn,
    Charge,
    Dispute,
    Invoice,
    InvoicePayment,
    PaymentAttempt,
    Payout,
    Refund,
)
from donations.stripe.facts import Subscription as StripeSubscription

# (session, contribution, charge, gift, covered fee) of a payment just booked
OnPayment = Callable[[Session, Contribution, Charge, int, int], None]
FREQUENCY_OF_INTERVAL = {interval: frequency for frequency, interval in INTERVALS.items()}


# --- facts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChargeState:
    """A charge as Stripe has it: its payment and, when gathered, its refunds."""

    charge: Charge


@dataclass(frozen=True)
class PaymentFailed:
    attempt: PaymentAttempt
    canceled: bool


@dataclass(frozen=True)
class InvoiceFailed:
    payment: InvoicePayment


@dataclass(frozen=True)
class SubscriptionState:
    subscription: StripeSubscription
    deleted: bool


@dataclass(frozen=True)
class DisputeState:
    dispute: Dispute


@dataclass(frozen=True)
class PayoutState:
    payout: Payout


@dataclass(frozen=True)
class Nothing:
    """Nothing to book, and why."""

    reason: str


Facts = (
    ChargeState
    | PaymentFailed
    | InvoiceFailed
    | SubscriptionState
    | DisputeState
    | PayoutState
    | Nothing
)

# The event types this service books; the README lists them for the webhook endpoint.
HANDLED_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.succeeded",
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "invoice_payment.paid",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
        "payout.created",
        "payout.updated",
        "payout.paid",
        "payout.failed",
        "payout.canceled",
    }
)


def _invoice_state(payment: InvoicePayment) -> Facts:
    invoice = payment.invoice
    if not invoice.paid or invoice.amount_paid <= 0:
        return Nothing(f"invoice is {invoice.status} for {invoice.amount_paid}")
    if payment.charge is None:
        return Nothing("paid invoice without a charge")
    return ChargeState(payment.charge)


def gather(gateway: StripeGateway, type_: str, obj: dict[str, Any]) -> Facts:
    """What Stripe says now about the object of an event (Stripe calls only)."""
    object_id = str(obj.get("id") or "")
    try:
        match type_:
            case "payment_intent.succeeded":
                attempt = gateway.payment_intent(object_id)
                if attempt.charge is None:
                    return Nothing("payment intent has no charge")
                return ChargeState(attempt.charge)
            case "charge.succeeded" | "charge.refunded":
                return ChargeState(gateway.charge(object_id))
            case "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed":
                return ChargeState(gateway.refund(object_id)[1])
            case "payment_intent.payment_failed" | "payment_intent.canceled":
                return PaymentFailed(gateway.payment_intent(object_id), type_.endswith("canceled"))
            case "invoice.paid" | "invoice.payment_succeeded":
                return _invoice_state(gateway.invoice(object_id))
            case "invoice_payment.paid":
                invoice_id = obj.get("invoice")
                invoice_id = invoice_id.get("id") if isinstance(invoice_id, dict) else invoice_id
                if not isinstance(invoice_id, str) or not invoice_id:
                    return Nothing("invoice payment without an invoice")
                return _invoice_state(gateway.invoice(invoice_id))
            case "invoice.payment_failed":
                return InvoiceFailed(gateway.invoice(object_id, with_charge=False))
            case (
                "customer.subscription.created"
                | "customer.subscription.updated"
                | "customer.subscription.deleted"
            ):
                return SubscriptionState(
                    gateway.retrieve_subscription(object_id), type_.endswith("deleted")
                )
            case _ if type_.startswith("charge.dispute."):
                return DisputeState(gateway.dispute(object_id))
            case _ if type_.startswith("payout."):
                return PayoutState(gateway.payout(object_id))
            case _:
                return Nothing("acknowledged: not a type this service books")
    except NotFoundAtStripe as exc:
        return Nothing(f"not found at Stripe: {exc}")


def gather_for_balance_transaction(gateway: StripeGateway, txn: BalanceTxn) -> Facts:
    """What reconcile books for a balance transaction: the state of its source object."""
    source = txn.source_id or ""
    try:
        if source.startswith(("ch_", "py_")):
            return ChargeState(gateway.charge(source))
        if source.startswith(("re_", "pyr_")):
            return ChargeState(gateway.refund(source)[1])
        if source.startswith(("dp_", "du_")):
            return DisputeState(gateway.dispute(source))
        if source.startswith("po_"):
            return PayoutState(gateway.payout(source))
    except NotFoundAtStripe as exc:
        return Nothing(f"not found at Stripe: {exc}")
    return Nothing(f"a {txn.type} transaction is not about contributions")


# --- writing ------------------------------------------------------------------------------------
def settle_status(session: Session, contribution: Contribution) -> None:
    """A paid contribution's status follows its money in the books: disputed while a dispute
    holds money back, refunded (or partially) by what went back, else succeeded. Unpaid ones
    keep the status their events gave them."""
    totals = journal.contribution_totals(session, contribution.id)
    currency = contribution.currency
    paid = -sum(totals.get((acc, currency), 0) for acc in accounts.INCOME)
    if paid <= 0:
        return
    refunded = totals.get((accounts.REFUNDS, currency), 0)
    disputed = totals.get((accounts.DISPUTES, currency), 0)
    contribution.refunded_amount = max(refunded, 0)
    if disputed > 0:
        contribution.status = "disputed"
    elif refunded >= paid:
        contribution.status = "refunded"
    elif refunded > 0:
        contribution.status = "partially_refunded"
    else:
        contribution.status = "succeeded"


class Books:
    """Applies gathered facts to the books inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        *,
        event_id: str | None = None,
        on_payment: OnPayment | None = None,
    ) -> None:
        self.session = session
        self.event_id = event_id
        # Told of each payment booked for the first time, in the same transaction (receipts).
        self.on_payment = on_payment
        self.posted: list[str] = []  # keys of the entries this instance posted

    def apply(self, facts: Facts) -> str:
        match facts:
            case ChargeState(charge):
                return self.charge_state(charge)
            case PaymentFailed(attempt, canceled):
                return self.payment_failed(attempt, canceled)
            case InvoiceFailed(payment):
                return self.invoice_failed(payment.invoice)
            case SubscriptionState(subscription, deleted):
                return self.subscription_state(subscription, deleted)
            case DisputeState(dispute):
                return self.dispute_state(dispute)
            case PayoutState(payout):
                return self.payout_state(payout)
            case Nothing(reason):
                return reason if reason.startswith("acknowledged") else f"ignored: {reason}"
        raise TypeError(f"unknown facts {facts!r}")

    def _post(self, **kw: Any) -> bool:
        posted = journal.post(self.session, event_id=self.event_id, **kw)
        if posted:
            self.posted.append(kw["key"])
        return posted

    # finding contributions -------------------------------------------------------------------
    def _locked(self, column: Any, value: str | None) -> Contribution | None:
        if not value:
            return None
        return self.session.scalar(select(Contribution).where(column == value).with_for_update())

    def contribution_for_charge(self, charge: Charge) -> Contribution | None:
        """The contribution a charge paid: a renewal through its invoice, a one-off through
        its PaymentIntent or the contribution id it carries."""
        if charge.invoice is not None:
            return self.invoice_contribution(charge.invoice, charge.amount)
        found = self._locked(Contribution.stripe_charge_id, charge.id)
        if found is None:
            found = self._locked(Contribution.stripe_payment_intent_id, charge.payment_intent_id)
        if found is None:
            found = self._locked(Contribution.id, charge.metadata.get("contribution_id"))
        return found

    def subscription_contribution(
        self, subscription_id: str | None, metadata: dict[str, str]
    ) -> Contribution | None:
        """The contribution that started a subscription (locked: every change to one
        subscription's rows goes through this lock, so concurrent events queue)."""
        if subscription_id:
            sub = self.session.get(Subscription, subscription_id)
            if sub is not None:
                return self._locked(Contribution.id, sub.contribution_id)
        found = self._locked(Contribution.id, metadata.get("contribution_id"))
        if found is not None and found.parent_id is not None:  # a renewal's own id
            found = self._locked(Contribution.id, found.parent_id)
        if found is None and subscription_id:
            found = self.session.scalar(
                select(Contribution)
                .where(
                    Contribution.stripe_subscription_id == subscription_id,
                    Contribution.parent_id.is_(None),
                )
                .with_for_update()
            )
        return found

    def invoice_contribution(self, invoice: Invoice, charged: int) -> Contribution | None:
        """Each paid invoice is one contribution: the first is the one that started the
        subscription, every later one a renewal linked to it (made here, once)."""
        found = self._locked(Contribution.stripe_invoice_id, invoice.id)
        if found is not None:
            return found
        first = self.subscription_contribution(invoice.subscription_id, invoice.metadata)
        if first is None:
            return None
        # Holding the first contribution's lock, look again: a concurrent event about the
        # same invoice may have made its row while this one waited.
        found = self._locked(Contribution.stripe_invoice_id, invoice.id)
        if found is not None:
            return found
        if first.stripe_subscription_id is None and invoice.subscription_id:
            first.stripe_subscription_id = invoice.subscription_id
        if first.stripe_invoice_id is None and invoice.billing_reason in (
            None,
            "subscription_create",
        ):
            first.stripe_invoice_id = invoice.id
            return first
        frequency, amount, covered, total = self._renewal_terms(first, charged)
        renewal = Contribution(
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
        self.session.add(renewal)
        self.session.flush()
        return renewal

    def _renewal_terms(self, first: Contribution, charged: int) -> tuple[str, int, int, int]:
        """(frequency, gift, covered fee, total) of a renewal charged `charged`: the first
        contribution's, unless the donor has since changed the amount or the interval."""
        frequency = first.frequency
        if first.stripe_subscription_id:
            sub = self.session.get(Subscription, first.stripe_subscription_id)
            if sub is not None:
                frequency = FREQUENCY_OF_INTERVAL.get(sub.interval, frequency)
        if charged == first.total:
            return frequency, first.amount, first.fee_covered, first.total
        return frequency, charged, 0, charged

    # payments --------------------------------------------------------------------------------
    def charge_state(self, charge: Charge) -> str:
        """Book a charge's payment (if it succeeded) and, when known, its refunds."""
        contribution = self.contribution_for_charge(charge)
        if contribution is None:
            return "ignored: charge belongs to no contribution"
        outcome = "charge not paid"
        if charge.status == "succeeded":
            outcome = self.book_payment(contribution, charge)
        if charge.refunds:
            booked = sum(self._book_refund(contribution, charge, r) for r in charge.refunds)
            outcome += f"; {booked} refund entr{'y' if booked == 1 else 'ies'} booked"
        settle_status(self.session, contribution)
        if contribution.parent_id:
            outcome += " (renewal)"
        return outcome

    def book_payment(self, contribution: Contribution, charge: Charge) -> str:
        """The payment as its balance transaction settled it, then Stripe's fee."""
        if journal.is_posted(self.session, f"payment:{charge.id}"):
            return "payment already booked"
        txn = charge.txn
        if txn is None:
            return "ignored: the charge has no balance transaction yet"
        if contribution.stripe_charge_id is None:
            contribution.stripe_charge_id = charge.id
        gift, covered = postings.split_charge(
            charge.amount, contribution.total, contribution.amount, contribution.fee_covered
        )
        posted = self._post(
            key=f"payment:{charge.id}",
            kind=accounts.PAYMENT_RECURRING
            if contribution.is_recurring
            else accounts.PAYMENT_ONE_OFF,
            currency=charge.currency,
            occurred_at=charge.created,
            stripe_object_id=charge.id,
            balance_transaction_id=txn.id,
            contribution_id=contribution.id,
            lines=postings.payment(
                charge.amount,
                gift,
                covered,
                currency=charge.currency,
                settled=txn.amount,
                settlement_currency=txn.currency,
                recurring=contribution.is_recurring,
            ),
            memo=f"{contribution.frequency} contribution {contribution.id}",
        )
        self.book_fee(txn, contribution.id)
        if not posted:
            return "payment already booked"
        if not contribution.is_paid:
            contribution.succeeded_at = charge.created
            contribution.failure_message = None  # an earlier declined card no longer matters
        if self.on_payment is not None:
            self.on_payment(self.session, contribution, charge, gift, covered)
        return "booked payment"

    def book_fee(self, txn: BalanceTxn, contribution_id: str | None) -> bool:
        """Stripe's fee on a balance transaction, booked as its own entry."""
        if txn.fee == 0:
            return False
        return self._post(
            key=f"fee:{txn.id}",
            kind=accounts.STRIPE_FEE,
            currency=txn.currency,
            occurred_at=txn.created,
            stripe_object_id=txn.id,
            balance_transaction_id=txn.id,
            contribution_id=contribution_id,
            lines=postings.stripe_fee(txn.fee, txn.currency),
            memo=f"Stripe fee ({txn.type})",
        )

    def _at_payment_rate(self, charge: Charge, amount: int, settlement_currency: str) -> int | None:
        """`amount` of the charge at the rate its payment settled at (None when that is not
        known in this currency: then no exchange difference is booked)."""
        if charge.txn is None or charge.txn.currency != settlement_currency:
            return None
        return postings.at_payment_rate(amount, charge.amount, charge.txn.amount)

    # refunds ---------------------------------------------------------------------------------
    def _book_refund(self, contribution: Contribution, charge: Charge, refund: Refund) -> int:
        """A refund as its balance transaction took it, and back when it failed."""
        booked = 0
        if refund.txn is not None:
            settled = -refund.txn.amount
            at_rate = self._at_payment_rate(charge, refund.amount, refund.txn.currency)
            booked += self._post(
                key=f"refund:{refund.id}",
                kind=accounts.REFUND,
                currency=refund.currency,
                occurred_at=refund.created,
                stripe_object_id=refund.id,
                balance_transaction_id=refund.txn.id,
                contribution_id=contribution.id,
                lines=postings.returned(
                    accounts.REFUNDS,
                    refund.amount,
                    currency=refund.currency,
                    settled=settled,
                    at_rate=settled if at_rate is None else at_rate,
                    settlement_currency=refund.txn.currency,
                ),
                memo=f"refund of {contribution.id}",
            )
            booked += self.book_fee(refund.txn, contribution.id)
        back = refund.failure_txn
        if refund.status in ("failed", "canceled") and back is not None and refund.txn is not None:
            at_rate = self._at_payment_rate(charge, refund.amount, back.currency)
            booked += self._post(
                key=f"refund_reversal:{refund.id}",
                kind=accounts.REFUND_REVERSAL,
                currency=refund.currency,
                occurred_at=back.created,
                stripe_object_id=refund.id,
                balance_transaction_id=back.id,
                contribution_id=contribution.id,
                lines=postings.returned_back(
                    accounts.REFUNDS,
                    refund.amount,
                    currency=refund.currency,
                    settled=back.amount,
                    at_rate=back.amount if at_rate is None else at_rate,
                    settlement_currency=back.currency,
                ),
                memo="refund failed",
            )
            booked += self.book_fee(back, contribution.id)
        return booked

    def payment_failed(self, attempt: PaymentAttempt, canceled: bool) -> str:
        if attempt.invoice is not None:
            return self.invoice_failed(attempt.invoice)
        intent = attempt.intent
        contribution = self._locked(Contribution.stripe_payment_intent_id, intent.id)
        if contribution is None:
            contribution = self._locked(Contribution.id, intent.metadata.get("contribution_id"))
        if contribution is None:
            return "ignored: payment intent belongs to no contribution"
        if intent.status == "succeeded" or contribution.is_paid:
            return "ignored: the contribution has been paid since"
        if contribution.stripe_payment_intent_id not in (None, intent.id):
            return "ignored: the donor has since tried another card"
        contribution.failure_message = (intent.error_message or "")[:300] or None
        status = "canceled" if canceled else "failed"
        return f"marked {status}" if contribution.advance(status) else "status unchanged"

    # recurring ------------------------------------------------------------------------------
    def invoice_failed(self, invoice: Invoice) -> str:
        """A declined first payment ends the contribution `failed`; Stripe retries renewals
        on its own schedule (and cancels the subscription when it gives up)."""
        first = self.subscription_contribution(invoice.subscription_id, invoice.metadata)
        if first is None:
            return "ignored: invoice belongs to no contribution"
        if invoice.paid:
            return "ignored: the invoice has been paid since"
        if first.stripe_invoice_id in (None, invoice.id) and not first.is_paid:
            first.advance("failed")
            return "marked failed (first invoice)"
        return "renewal payment failed; Stripe retries it by its own schedule"

    def subscription_state(self, stripe_sub: StripeSubscription, deleted: bool) -> str:
        first = self.subscription_contribution(stripe_sub.id, stripe_sub.metadata)
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
        ended = deleted or stripe_sub.status == "canceled"
        apply_subscription_state(sub, stripe_sub, deleted=ended)
        if sub.status == "canceled" and not first.is_paid:
            first.advance("canceled")
        return f"subscription {sub.status}"

    # disputes --------------------------------------------------------------------------------
    def dispute_state(self, dispute: Dispute) -> str:
        """Book a dispute from its balance transactions: the withdrawal with its fee, the
        reinstatement when won. An inquiry moves no money and books nothing."""
        charge = dispute.charge
        if charge is None:
            return "ignored: dispute without a charge"
        contribution = self.contribution_for_charge(charge)
        if contribution is None:
            return "ignored: dispute belongs to no contribution"
        if charge.status == "succeeded":
            self.book_payment(contribution, charge)  # a dispute that arrives first
        if not dispute.txns:
            settle_status(self.session, contribution)
            return f"dispute {dispute.status}: no money moved"
        booked = 0
        withdrawals = [t for t in dispute.txns if t.amount < 0]
        reinstatements = [t for t in dispute.txns if t.amount > 0]
        for i, txn in enumerate(withdrawals):
            settled = -txn.amount
            at_rate = self._at_payment_rate(charge, dispute.amount, txn.currency)
            booked += self._post(
                key=f"dispute:{dispute.id}" + (f":{txn.id}" if i else ""),
                kind=accounts.DISPUTE,
                currency=dispute.currency,
                occurred_at=txn.created,
                stripe_object_id=dispute.id,
                balance_transaction_id=txn.id,
                contribution_id=contribution.id,
                lines=postings.returned(
                    accounts.DISPUTES,
                    dispute.amount,
                    currency=dispute.currency,
                    settled=settled,
                    at_rate=settled if at_rate is None else at_rate,
                    settlement_currency=txn.currency,
                ),
                memo=f"dispute of {contribution.id}",
            )
            booked += self.book_fee(txn, contribution.id)
        for i, txn in enumerate(reinstatements):
            at_rate = self._at_payment_rate(charge, dispute.amount, txn.currency)
            booked += self._post(
                key=f"dispute_reversal:{dispute.id}" + (f":{txn.id}" if i else ""),
                kind=accounts.DISPUTE_REVERSAL,
                currency=dispute.currency,
                occurred_at=txn.created,
                stripe_object_id=dispute.id,
                balance_transaction_id=txn.id,
                contribution_id=contribution.id,
                lines=postings.returned_back(
                    accounts.DISPUTES,
                    dispute.amount,
                    currency=dispute.currency,
                    settled=txn.amount,
                    at_rate=txn.amount if at_rate is None else at_rate,
                    settlement_currency=txn.currency,
                ),
                memo=f"dispute won for {contribution.id}",
            )
            booked += self.book_fee(txn, contribution.id)
        settle_status(self.session, contribution)
        return f"dispute {dispute.status}: {booked} entr{'y' if booked == 1 else 'ies'} booked"

    # payouts --------------------------------------------------------------------------------
    def payout_state(self, payout: Payout) -> str:
        """A payout by its re-fetched status: out of the Stripe balance when created (its
        balance transaction), in the bank only once `paid`, back in the balance when it
        failed or was canceled (its failure balance transaction)."""
        txn = payout.txn
        if txn is None:
            return f"ignored: payout {payout.status} has no balance transaction yet"
        # Facts are gathered before the transaction: events about one payout are booked one
        # at a time, and a payout whose failure is booked is never then booked as paid.
        journal.lock(self.session, f"payout:{payout.id}")
        created = journal.lines_of(self.session, f"payout:{payout.id}")
        # Booked before payouts went through transit: straight to the bank when paid.
        legacy_paid = accounts.BANK in created
        booked = 0
        booked += self._post(
            key=f"payout:{payout.id}",
            kind=accounts.PAYOUT,
            currency=txn.currency,
            occurred_at=txn.created,
            stripe_object_id=payout.id,
            balance_transaction_id=txn.id,
            lines=postings.payout(-txn.amount, txn.currency),
            memo=f"payout {payout.id}",
        )
        booked += self.book_fee(txn, None)
        amount = -txn.amount
        returned = journal.is_posted(self.session, f"payout_reversal:{payout.id}")
        if payout.status == "paid" and not legacy_paid and not returned:
            booked += self._post(
                key=f"payout_paid:{payout.id}",
                kind=accounts.PAYOUT_PAID,
                currency=txn.currency,
                occurred_at=payout.arrival_date or utcnow(),
                stripe_object_id=payout.id,
                lines=postings.payout_paid(amount, txn.currency),
                memo="payout arrived at the bank",
            )
        back = payout.failure_txn
        if payout.status in ("failed", "canceled") and back is not None and not returned:
            in_bank = legacy_paid or journal.is_posted(self.session, f"payout_paid:{payout.id}")
            if in_bank:
                booked += self._post(
                    key=f"payout_paid_reversal:{payout.id}",
                    kind=accounts.PAYOUT_PAID_REVERSAL,
                    currency=txn.currency,
                    occurred_at=back.created,
                    stripe_object_id=payout.id,
                    lines=postings.payout_paid_reversal(amount, txn.currency),
                    memo="the bank returned the payout",
                )
            booked += self._post(
                key=f"payout_reversal:{payout.id}",
                kind=accounts.PAYOUT_REVERSAL,
                currency=back.currency,
                occurred_at=back.created,
                stripe_object_id=payout.id,
                balance_transaction_id=back.id,
                lines=postings.payout_returned(back.amount, back.currency),
                memo=f"payout {payout.status}",
            )
            booked += self.book_fee(back, None)
        return f"payout {payout.status}: {booked} entr{'y' if booked == 1 else 'ies'} booked"

    # reconciliation --------------------------------------------------------------------------
    def other_activity(self, txn: BalanceTxn) -> bool:
        """Book a balance transaction that is not about contributions (reconcile), so that
        the books' Stripe balance stays Stripe's."""
        return self._post(
            key=f"other:{txn.id}",
            kind=accounts.OTHER_ACTIVITY,
            currency=txn.currency,
            occurred_at=txn.created,
            stripe_object_id=txn.source_id or txn.id,
            balance_transaction_id=txn.id,
            lines=postings.other_activity(
                txn.net, txn.currency, fee_type=txn.type in accounts.STRIPE_FEE_TYPES
            ),
            memo=f"{txn.type} {txn.source_id or ''} (not a contribution)"[:200],
        )

    def correct(self, txn: BalanceTxn, difference: int, occurred_at: datetime) -> bool:
        """Book what Stripe's balance moved by and no rule explains (reconcile --apply)."""
        n = 1
        while journal.is_posted(self.session, f"correction:{txn.id}:{n}"):
            n += 1
        return self._post(
            key=f"correction:{txn.id}:{n}",
            kind=accounts.CORRECTION,
            currency=txn.currency,
            occurred_at=occurred_at,
            stripe_object_id=txn.source_id or txn.id,
            balance_transaction_id=txn.id,
            lines=postings.correction(difference, txn.currency),
            memo=f"reconcile: {txn.type} {txn.id} differs by {difference}",
        )


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
