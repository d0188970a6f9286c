"""The localstripe emulator's dialect: only what it answers differently from Stripe.

Switched on by `STRIPE_EMULATOR=localstripe` (the demo and the test suite set it when they
start the emulator), never by where the API lives. localstripe answers in 2017 shapes and
knows 2017 parameters: each override below says which difference it bridges. The requests
it needs are outside the SDK's types on purpose (`payment_method_types` is gone from the
pinned version), so they are built as plain dicts and cast, here only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from stripe.params import PaymentIntentCreateParams, SetupIntentCreateParams

from donations.stripe.facts import (
    BalanceTxn,
    Invoice,
    InvoicePayment,
    PaymentIntent,
    SetupIntent,
    Subscription,
    expanded,
    parse_charge,
    parse_invoice,
    ref_id,
    to_plain,
)
from donations.stripe.gateway import StripeGateway


class LocalstripeGateway(StripeGateway):
    dialect = "localstripe"
    emulator = True
    # Its refunds have no `failure_balance_transaction` (nor can they fail): expanding it is 400.
    charge_expand = ["balance_transaction", "payment_intent", "refunds.data.balance_transaction"]
    refund_expand = ["balance_transaction"]

    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str]
    ) -> PaymentIntent:
        # The emulator knows neither `allowed_payment_method_types` nor automatic ones.
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "metadata": dict(metadata),
            "payment_method_types": ["card"],
        }
        with self._errors():
            pi = self._v1.payment_intents.create(params=cast(PaymentIntentCreateParams, params))
        return PaymentIntent.parse(to_plain(pi))

    def confirm_payment_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Two calls: the emulator answers 500 to confirm(payment_method=…)."""
        with self._errors():
            self._v1.payment_intents.update(intent_id, params={"payment_method": payment_method})
            return PaymentIntent.parse(to_plain(self._v1.payment_intents.confirm(intent_id)))

    def intent_for_another_card(
        self, declined: PaymentIntent, metadata: Mapping[str, str]
    ) -> PaymentIntent:
        """The emulator refuses to confirm an intent whose charge failed: a fresh one."""
        return self.create_payment_intent(declined.amount, declined.currency, metadata)

    def _setup_intent(self, params: dict[str, Any]) -> SetupIntent:
        with self._errors():
            seti = self._v1.setup_intents.create(
                params=cast(SetupIntentCreateParams, {**params, "payment_method_types": ["card"]})
            )
        return SetupIntent.parse(to_plain(seti))

    def create_setup_intent(self, metadata: Mapping[str, str]) -> SetupIntent:
        return self._setup_intent({"metadata": dict(metadata)})

    def create_card_setup_intent(
        self, customer_id: str, metadata: Mapping[str, str]
    ) -> SetupIntent:
        return self._setup_intent(
            {"customer": customer_id, "usage": "off_session", "metadata": dict(metadata)}
        )

    def change_subscription_amount(
        self, sub_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        """The emulator answers 500 to `proration_behavior`, ignores the older `prorate=false`
        and always leaves a pending "Unused time" credit of the whole old amount for the next
        invoice: the subscription's pending, uninvoiced items are deleted after the change,
        which leaves the same next invoice as Stripe's (the new amount, nothing else)."""
        changed = self.change_subscription_interval(sub_id, plan_id, metadata)
        if changed.customer_id:
            with self._errors():
                page = self._v1.invoice_items.list(params={"customer": changed.customer_id})
                for item in page.data:
                    d = to_plain(item)
                    if ref_id(d.get("subscription")) == sub_id and not d.get("invoice"):
                        self._v1.invoice_items.delete(d["id"])
        return changed

    # navigation in 2017 shapes: invoices name their PaymentIntent, PaymentIntents their invoice
    def _invoice_paid_by(self, payment_intent_id: str) -> Invoice | None:
        with self._errors():
            raw = to_plain(
                self._v1.payment_intents.retrieve(payment_intent_id, params={"expand": ["invoice"]})
            )
        invoice = expanded(raw.get("invoice"))
        return parse_invoice(invoice) if invoice is not None else None

    def invoice(self, invoice_id: str, *, with_charge: bool = True) -> InvoicePayment:
        with self._errors():
            raw = to_plain(
                self._v1.invoices.retrieve(
                    invoice_id,
                    params={"expand": ["payment_intent.latest_charge.balance_transaction"]},
                )
            )
        invoice = parse_invoice(raw)
        intent = expanded(raw.get("payment_intent"))
        if intent is None:
            return InvoicePayment(invoice, None)
        charge_raw = expanded(intent.get("latest_charge"))
        charge = parse_charge(charge_raw, intent=intent, invoice=invoice) if charge_raw else None
        return InvoicePayment(invoice, charge, PaymentIntent.parse(intent).error_message)

    def balance_transactions(self, since: datetime) -> Iterator[BalanceTxn]:
        """The emulator refuses `created` filters on this list (400): filtered here."""
        with self._errors():
            page = self._v1.balance_transactions.list(params={"limit": 100})
            for raw in page.auto_paging_iter():
                txn = BalanceTxn.parse(to_plain(raw))
                if txn.created >= since.replace(tzinfo=UTC).replace(tzinfo=None):
                    yield txn
