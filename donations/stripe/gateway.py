"""The only door to Stripe: typed requests at the SDK's pinned API version, answers as the
project's own small types (`donations.stripe.facts`).

Every request passes its params as a literal typed by the SDK's own TypedDicts
(`stripe.params.…`), so mypy fails CI on a parameter the pinned version removed or a misspelt
one. The localstripe emulator's dialect (`donations.stripe.localstripe`) overrides the few
calls it answers differently; nothing outside this package knows which one is in use.

Gathering for the books costs few round trips by expanding what it needs (Stripe expands at
most four levels, counting every segment of a path):
- an invoice → its payments → PaymentIntent (1 call), then the charge with its balance
  transaction (1 call): 2;
- a PaymentIntent or charge: 1 call, plus 1 (`/v1/invoice_payments` by payment) when it
  carries no contribution of its own, to find the invoice it paid: at most 2;
- a refund, a dispute: 1 call with the charge expanded, plus the same invoice look-up;
- a payout with its balance transactions: 1 call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import stripe
from stripe.params import CustomerCreateParams, RefundCreateParams

from donations.stripe.errors import (
    NotFoundAtStripe,
    SignatureError,
    StripeRejected,
    translate,
)
from donations.stripe.facts import (
    BalanceTxn,
    Card,
    Charge,
    Dispute,
    Invoice,
    InvoicePayment,
    PaymentAttempt,
    PaymentIntent,
    Payout,
    Refund,
    SetupIntent,
    Subscription,
    expanded,
    parse_charge,
    parse_dispute,
    parse_invoice,
    parse_payout,
    ref_id,
    to_plain,
)

log = logging.getLogger(__name__)

PRODUCT_ID = "donations-recurring"
# What a charge is gathered with: its money, its PaymentIntent (metadata) and its refunds'
# (`refunds` is includable: named on its own too). Stripe expands at most four levels, every
# segment of a path counted (`data` too).
CHARGE_EXPAND = [
    "balance_transaction",
    "payment_intent",
    "refunds",
    "refunds.data.balance_transaction",
    "refunds.data.failure_balance_transaction",
]
INVOICE_EXPAND = ["payments", "payments.data.payment.payment_intent"]


class StripeGateway:
    """A narrow interface over one StripeClient speaking the SDK's pinned API version."""

    dialect = "stripe"
    charge_expand = CHARGE_EXPAND
    refund_expand = ["balance_transaction", "failure_balance_transaction"]
    #: True for an emulator that needs the browser-side compatibility shim (Stripe.js stand-in).
    emulator = False

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        publishable_key: str,
        webhook_secrets: tuple[str, ...],
        webhook_tolerance: int = 300,
    ) -> None:
        self._client = client
        self._v1 = client.v1
        self.publishable_key = publishable_key
        self._webhook_secrets = webhook_secrets
        self._tolerance = webhook_tolerance

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the SDK's exceptions into the project's own (see errors.translate)."""
        try:
            yield
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    # webhooks ------------------------------------------------------------------------------
    def verify_webhook(self, payload: bytes, signature_header: str) -> None:
        """Raise SignatureError unless one configured secret verifies the raw body, signed
        neither more than the tolerance ago nor more than the tolerance ahead (the SDK checks
        only the past: a timestamp from the future would stay replayable)."""
        items = [part.strip() for part in signature_header.split(",")]
        stamps = [item[2:] for item in items if item.startswith("t=")]
        try:
            signed_at = int(stamps[0].strip()) if stamps else None
        except ValueError:
            signed_at = None
        if signed_at is None or signed_at > time.time() + self._tolerance:
            raise SignatureError("the signature's timestamp is missing or in the future")
        text = payload.decode("utf-8", errors="replace")
        for secret in self._webhook_secrets:
            try:
                stripe.WebhookSignature.verify_header(
                    text, signature_header, secret, tolerance=self._tolerance
                )
                return
            except stripe.SignatureVerificationError:
                continue
        raise SignatureError("no configured webhook secret verifies this signature")

    # one-off payments ----------------------------------------------------------------------
    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str]
    ) -> PaymentIntent:
        with self._errors():
            pi = self._v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency,
                    "metadata": dict(metadata),
                    # Card only, the card field's payment method: a server-side confirm then
                    # needs no return_url (`payment_method_types` is gone at this version).
                    "allowed_payment_method_types": ["card"],
                }
            )
        return PaymentIntent.parse(to_plain(pi))

    def confirm_payment_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Confirm on the server with the payment method the browser made (one call)."""
        with self._errors():
            pi = self._v1.payment_intents.confirm(
                intent_id, params={"payment_method": payment_method}
            )
        return PaymentIntent.parse(to_plain(pi))

    def intent_for_another_card(
        self, declined: PaymentIntent, metadata: Mapping[str, str]
    ) -> PaymentIntent:
        """The intent a donor's next card is confirmed on after a decline: Stripe takes a
        new payment method on the same one."""
        return declined

    def retrieve_payment_intent(self, intent_id: str) -> PaymentIntent:
        with self._errors():
            return PaymentIntent.parse(to_plain(self._v1.payment_intents.retrieve(intent_id)))

    def cancel_payment_intent(self, intent_id: str) -> None:
        with self._errors():
            self._v1.payment_intents.cancel(intent_id)

    def create_refund(
        self,
        payment_intent_id: str,
        amount: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Refund a PaymentIntent's charge: `amount`, or all that is left. The same
        `idempotency_key` again returns the first refund instead of making a second
        (https://docs.stripe.com/api/idempotent_requests). When Stripe refuses (already
        refunded, more than is left, charged back), its own message says why."""
        params: RefundCreateParams = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        options: stripe.RequestOptions = {}
        if idempotency_key:
            options["idempotency_key"] = idempotency_key
        try:
            refund = self._v1.refunds.create(params=params, options=options)
        except stripe.StripeError as exc:
            error = translate(exc)
            if isinstance(error, StripeRejected) and exc.http_status == 400 and exc.user_message:
                error = StripeRejected(str(exc.user_message))
            raise error from exc
        return Refund.parse(to_plain(refund))

    def payment_intent_of_charge(self, charge_id: str) -> str | None:
        """The PaymentIntent a charge belongs to (a subscription's charges are made by their
        invoices' PaymentIntents, which the books do not keep): 1 call."""
        with self._errors():
            raw = to_plain(self._v1.charges.retrieve(charge_id))
        return ref_id(raw.get("payment_intent"))

    # recurring -------------------------------------------------------------------------------
    def create_setup_intent(self, metadata: Mapping[str, str]) -> SetupIntent:
        with self._errors():
            seti = self._v1.setup_intents.create(
                params={
                    "metadata": dict(metadata),
                    "allowed_payment_method_types": ["card"],
                    "usage": "off_session",
                }
            )
        return SetupIntent.parse(to_plain(seti))

    def create_card_setup_intent(
        self, customer_id: str, metadata: Mapping[str, str]
    ) -> SetupIntent:
        """A SetupIntent for a new card of this customer (confirmed by Stripe.js's
        confirmCardSetup in the browser; Stripe attaches the card to the customer)."""
        with self._errors():
            seti = self._v1.setup_intents.create(
                params={
                    "customer": customer_id,
                    "allowed_payment_method_types": ["card"],
                    "usage": "off_session",
                    "metadata": dict(metadata),
                }
            )
        return SetupIntent.parse(to_plain(seti))

    def retrieve_setup_intent(self, intent_id: str) -> SetupIntent:
        with self._errors():
            return SetupIntent.parse(to_plain(self._v1.setup_intents.retrieve(intent_id)))

    def create_customer(
        self,
        *,
        email: str,
        name: str | None,
        payment_method: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        params: CustomerCreateParams = {"email": email, "metadata": dict(metadata)}
        if name:
            params["name"] = name
        if payment_method:
            params["payment_method"] = payment_method
            params["invoice_settings"] = {"default_payment_method": payment_method}
        with self._errors():
            customer = self._v1.customers.create(params=params)
        return str(customer.id)

    def delete_customer(self, customer_id: str) -> None:
        """Erase a customer at Stripe (their email, name and cards; Stripe cancels their
        subscriptions). Their charges stay, as the books need. Already gone is fine."""
        try:
            with self._errors():
                self._v1.customers.delete(customer_id)
        except NotFoundAtStripe:
            return

    def ensure_plan(self, amount: int, currency: str, interval: str) -> str:
        """A Plan per (amount, currency, interval), created once (the emulator has no Prices).

        Looked up every time rather than cached in the process: a plan deleted at Stripe (or
        an emulator reset) must not leave a cached id that makes every subscribe fail. A plan
        or product that is not there yet is the ordinary case: no warning is logged for it."""
        plan_id = f"donation-{currency}-{interval}-{amount}"
        if self._exists(lambda: self._v1.plans.retrieve(plan_id)):
            return plan_id
        with self._errors():
            if not self._exists(lambda: self._v1.products.retrieve(PRODUCT_ID)):
                self._v1.products.create(
                    params={"id": PRODUCT_ID, "name": "Recurring contribution"}
                )
            self._v1.plans.create(
                params={
                    "id": plan_id,
                    "amount": amount,
                    "currency": currency,
                    "interval": "year" if interval == "year" else "month",
                    "product": PRODUCT_ID,
                }
            )
        return plan_id

    def _exists(self, fetch: Any) -> bool:
        try:
            fetch()
            return True
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return False
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    def create_subscription(
        self, *, customer_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        with self._errors():
            sub = self._v1.subscriptions.create(
                params={
                    "customer": customer_id,
                    # One item, by plan (the emulator knows neither prices nor several items).
                    # The item carries the metadata too: the emulator copies the item's (not
                    # the subscription's) metadata onto invoice lines.
                    "items": [{"plan": plan_id, "metadata": dict(metadata)}],
                    "metadata": dict(metadata),
                }
            )
        return Subscription.parse(to_plain(sub))

    def cancel_subscription(self, sub_id: str) -> Subscription:
        with self._errors():
            return Subscription.parse(to_plain(self._v1.subscriptions.cancel(sub_id)))

    def retrieve_subscription(self, sub_id: str) -> Subscription:
        with self._errors():
            return Subscription.parse(to_plain(self._v1.subscriptions.retrieve(sub_id)))

    # donors' self-service ------------------------------------------------------------------
    def _first_item(self, sub_id: str) -> str:
        with self._errors():
            current = to_plain(self._v1.subscriptions.retrieve(sub_id))
        items = (current.get("items") or {}).get("data") or []
        if not items:
            raise StripeRejected("The subscription has no item to change.")
        return str(items[0]["id"])

    def change_subscription_amount(
        self, sub_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        """A new amount on the same interval, charged from the next renewal, no proration
        (https://docs.stripe.com/billing/subscriptions/prorations)."""
        item = self._first_item(sub_id)
        with self._errors():
            sub = self._v1.subscriptions.update(
                sub_id,
                params={
                    "items": [{"id": item, "plan": plan_id, "metadata": dict(metadata)}],
                    "proration_behavior": "none",
                },
            )
        return Subscription.parse(to_plain(sub))

    def change_subscription_interval(
        self, sub_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        """Monthly ↔ annual: Stripe starts a new period on the new plan and invoices it at once,
        crediting the unused time of the period already paid (its default proration)."""
        item = self._first_item(sub_id)
        with self._errors():
            sub = self._v1.subscriptions.update(
                sub_id,
                params={"items": [{"id": item, "plan": plan_id, "metadata": dict(metadata)}]},
            )
        return Subscription.parse(to_plain(sub))

    def set_cancel_at_period_end(self, sub_id: str, cancel: bool = True) -> Subscription:
        """Stop (or resume) renewing at the end of the period already paid for."""
        with self._errors():
            sub = self._v1.subscriptions.update(sub_id, params={"cancel_at_period_end": cancel})
        return Subscription.parse(to_plain(sub))

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> None:
        """Make a card the one the customer's invoices are charged to.

        Stripe attaches the card to the customer when a SetupIntent made for that customer is
        confirmed; a card attached to nobody (the emulator does not attach) is attached here.
        A card attached to someone else is refused."""
        with self._errors():
            pm = to_plain(self._v1.payment_methods.retrieve(payment_method_id))
            owner = ref_id(pm.get("customer"))
            if owner is None:
                self._v1.payment_methods.attach(payment_method_id, params={"customer": customer_id})
            elif owner != customer_id:
                raise StripeRejected("That card belongs to another customer.")
            self._v1.customers.update(
                customer_id,
                params={"invoice_settings": {"default_payment_method": payment_method_id}},
            )

    def default_card(self, customer_id: str) -> Card | None:
        """The card the customer's invoices are charged to (brand, last four, expiry)."""
        with self._errors():
            customer = to_plain(
                self._v1.customers.retrieve(
                    customer_id, params={"expand": ["invoice_settings.default_payment_method"]}
                )
            )
        pm = (customer.get("invoice_settings") or {}).get("default_payment_method")
        card = expanded(pm)
        if card is not None:
            return Card.parse(card)
        if isinstance(pm, str):
            with self._errors():
                return Card.parse(to_plain(self._v1.payment_methods.retrieve(pm)))
        return None

    # gathering for the books ---------------------------------------------------------------
    def charge(self, charge_id: str) -> Charge:
        """A charge with its balance transaction, refunds and the invoice it paid (≤ 2 calls)."""
        with self._errors():
            raw = to_plain(
                self._v1.charges.retrieve(charge_id, params={"expand": self.charge_expand})
            )
        charge = parse_charge(raw)
        if charge.refunds is None:  # more refunds than one page: list them all
            charge = replace(charge, refunds=tuple(self._refunds_of(charge.id)))
        return self._with_invoice(charge)

    def _refunds_of(self, charge_id: str) -> Iterator[Refund]:
        with self._errors():
            page = self._v1.refunds.list(
                params={
                    "charge": charge_id,
                    "limit": 100,
                    "expand": [f"data.{path}" for path in self.refund_expand],
                }
            )
            for r in page.auto_paging_iter():
                yield Refund.parse(to_plain(r))

    def _with_invoice(self, charge: Charge) -> Charge:
        """A charge of a subscription's invoice carries no contribution of its own: its
        invoice is found through the invoice payments of its PaymentIntent."""
        if charge.invoice is not None or charge.metadata.get("contribution_id"):
            return charge
        if not charge.payment_intent_id:
            return charge
        return replace(charge, invoice=self._invoice_paid_by(charge.payment_intent_id))

    def _invoice_paid_by(self, payment_intent_id: str) -> Invoice | None:
        with self._errors():
            page = self._v1.invoice_payments.list(
                params={
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
                    "expand": ["data.invoice"],
                    "limit": 10,
                }
            )
        payments = [to_plain(p) for p in page.data]
        payments.sort(key=lambda p: p.get("status") != "paid")  # a paid one first
        for payment in payments:
            invoice = expanded(payment.get("invoice"))
            if invoice is not None:
                return parse_invoice(invoice)
        return None

    def payment_intent(self, intent_id: str) -> PaymentAttempt:
        """A PaymentIntent with its latest charge and the invoice it pays (≤ 2 calls)."""
        with self._errors():
            raw = to_plain(
                self._v1.payment_intents.retrieve(
                    intent_id, params={"expand": ["latest_charge.balance_transaction"]}
                )
            )
        intent = PaymentIntent.parse(raw)
        invoice = None
        if not intent.metadata.get("contribution_id"):
            invoice = self._invoice_paid_by(intent.id)
        charge_raw = expanded(raw.get("latest_charge"))
        charge = parse_charge(charge_raw, intent=raw, invoice=invoice) if charge_raw else None
        return PaymentAttempt(intent, charge, invoice)

    def invoice(self, invoice_id: str, *, with_charge: bool = True) -> InvoicePayment:
        """An invoice with its PaymentIntent (1 call) and, when asked, the charge that paid it
        with its balance transaction (1 more)."""
        with self._errors():
            raw = to_plain(
                self._v1.invoices.retrieve(invoice_id, params={"expand": INVOICE_EXPAND})
            )
        invoice = parse_invoice(raw)
        payments = [p for p in ((raw.get("payments") or {}).get("data") or []) if p]
        payments.sort(key=lambda p: p.get("status") != "paid")  # a paid one first
        intents = [
            intent
            for p in payments
            if (intent := expanded((p.get("payment") or {}).get("payment_intent"))) is not None
        ]
        error = next((e for i in intents if (e := PaymentIntent.parse(i).error_message)), None)
        charge_id = next((c for i in intents if (c := ref_id(i.get("latest_charge")))), None)
        if not with_charge or charge_id is None:
            return InvoicePayment(invoice, None, error)
        with self._errors():
            charge_raw = to_plain(
                self._v1.charges.retrieve(charge_id, params={"expand": ["balance_transaction"]})
            )
        intent = next(i for i in intents if ref_id(i.get("latest_charge")) == charge_id)
        return InvoicePayment(
            invoice, parse_charge(charge_raw, intent=intent, invoice=invoice), error
        )

    def refund(self, refund_id: str) -> tuple[Refund, Charge]:
        """A refund and its charge with every refund of it (≤ 2 calls)."""
        with self._errors():
            raw = to_plain(
                self._v1.refunds.retrieve(
                    refund_id,
                    params={
                        "expand": [
                            *self.refund_expand,
                            *(
                                f"charge.{path}"
                                for path in self.charge_expand
                                if path.count(".") < 3
                            ),
                        ]
                    },
                )
            )
        refund = Refund.parse(raw)
        charge_raw = expanded(raw.get("charge"))
        if charge_raw is None:
            raise NotFoundAtStripe(f"refund {refund_id} has no charge")
        charge = parse_charge(charge_raw)
        if charge.refunds is None:
            charge = replace(charge, refunds=tuple(self._refunds_of(charge.id)))
        elif refund.id not in {r.id for r in charge.refunds}:
            charge = replace(charge, refunds=(*charge.refunds, refund))
        return refund, self._with_invoice(charge)

    def dispute(self, dispute_id: str) -> Dispute:
        """A dispute with its balance transactions and its charge (≤ 2 calls)."""
        with self._errors():
            raw = to_plain(
                self._v1.disputes.retrieve(
                    dispute_id,
                    params={"expand": ["charge.balance_transaction", "charge.payment_intent"]},
                )
            )
        charge_raw = expanded(raw.get("charge"))
        charge = self._with_invoice(parse_charge(charge_raw)) if charge_raw else None
        return parse_dispute(raw, charge)

    def payout(self, payout_id: str) -> Payout:
        """A payout as Stripe has it now, with its balance transactions (1 call)."""
        with self._errors():
            raw = to_plain(
                self._v1.payouts.retrieve(
                    payout_id,
                    params={"expand": ["balance_transaction", "failure_balance_transaction"]},
                )
            )
        return parse_payout(raw)

    def balance_transactions(self, since: datetime) -> Iterator[BalanceTxn]:
        """Every balance transaction created at or after `since` (newest first)."""
        start = int(since.replace(tzinfo=UTC).timestamp())
        with self._errors():
            page = self._v1.balance_transactions.list(
                params={"created": {"gte": start}, "limit": 100}
            )
            for raw in page.auto_paging_iter():
                yield BalanceTxn.parse(to_plain(raw))
