"""The only module that talks to Stripe.

Built from configuration around one `stripe.StripeClient` (its API base can point at the
localstripe emulator), it returns the project's own small types and turns Stripe's errors into
the project's own exceptions. Shapes differ between Stripe's API versions (localstripe answers
in 2017 shapes: `invoice.subscription`, expanded `pi.latest_charge`, `pi.charges`): the
normalisation lives here, in one place, so the rest of the code sees one shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

log = logging.getLogger(__name__)

PRODUCT_ID = "donations-recurring"


# --- errors -----------------------------------------------------------------------------------
class GatewayError(Exception):
    """Stripe could not do what was asked."""

    status = 502
    title = "Payment provider error"


class PaymentDeclined(GatewayError):
    """The card was declined (or failed authentication): the donor can try another card."""

    status = 402
    title = "Payment declined"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StripeUnavailable(GatewayError):
    """Stripe could not be reached, or answered with a server error."""

    status = 502
    title = "Payment provider unavailable"


class StripeRejected(GatewayError):
    """Stripe refused the request (a configuration or programming error on our side)."""

    status = 502
    title = "Payment provider refused the request"


class NotFoundAtStripe(GatewayError):
    status = 404
    title = "Not found at the payment provider"


class SignatureError(Exception):
    """A webhook's Stripe-Signature does not verify with any configured secret."""


# --- the project's own small types -----------------------------------------------------------
def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value else None


def _id(value: Any) -> str | None:
    """A reference that may be an id or an expanded object (localstripe expands some)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return str(value["id"])


def to_plain(obj: Any) -> dict[str, Any]:
    """An SDK object (or a dict) as plain JSON data."""
    if isinstance(obj, dict):
        return obj
    return json.loads(str(obj)) if obj is not None else {}


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str
    client_secret: str
    amount: int
    currency: str
    metadata: dict[str, str]
    charge_id: str | None
    invoice_id: str | None
    customer_id: str | None
    error_message: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> PaymentIntent:
        d = to_plain(raw)
        charge = d.get("latest_charge")
        if charge is None and d.get("charges", {}).get("data"):
            charge = d["charges"]["data"][0]
        error = d.get("last_payment_error") or {}
        return cls(
            id=d["id"],
            status=d["status"],
            client_secret=d.get("client_secret") or "",
            amount=int(d["amount"]),
            currency=d["currency"],
            metadata=dict(d.get("metadata") or {}),
            charge_id=_id(charge),
            invoice_id=_id(d.get("invoice")),
            customer_id=_id(d.get("customer")),
            error_message=error.get("message"),
        )


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    currency: str
    charge_id: str | None
    status: str
    created: datetime
    balance_transaction_id: str | None

    @classmethod
    def parse(cls, raw: Any) -> Refund:
        d = to_plain(raw)
        return cls(
            id=d["id"],
            amount=int(d["amount"]),
            currency=d["currency"],
            charge_id=_id(d.get("charge")),
            status=d.get("status") or "succeeded",
            created=_ts(d.get("created")) or datetime.now(UTC).replace(tzinfo=None),
            balance_transaction_id=_id(d.get("balance_transaction")),
        )


@dataclass(frozen=True)
class Charge:
    id: str
    amount: int
    currency: str
    status: str
    created: datetime
    payment_intent_id: str | None
    invoice_id: str | None
    customer_id: str | None
    balance_transaction_id: str | None
    amount_refunded: int
    metadata: dict[str, str]
    refunds: tuple[Refund, ...] = ()

    @classmethod
    def parse(cls, raw: Any) -> Charge:
        d = to_plain(raw)
        refunds = (d.get("refunds") or {}).get("data") or []
        return cls(
            id=d["id"],
            amount=int(d["amount"]),
            currency=d["currency"],
            status=d.get("status") or "",
            created=_ts(d.get("created")) or datetime.now(UTC).replace(tzinfo=None),
            payment_intent_id=_id(d.get("payment_intent")),
            invoice_id=_id(d.get("invoice")),
            customer_id=_id(d.get("customer")),
            balance_transaction_id=_id(d.get("balance_transaction")),
            amount_refunded=int(d.get("amount_refunded") or 0),
            metadata=dict(d.get("metadata") or {}),
            refunds=tuple(Refund.parse(r) for r in refunds),
        )


@dataclass(frozen=True)
class BalanceTransaction:
    id: str
    amount: int
    fee: int
    currency: str
    type: str
    source_id: str | None
    created: datetime

    @classmethod
    def parse(cls, raw: Any) -> BalanceTransaction:
        d = to_plain(raw)
        return cls(
            id=d["id"],
            amount=int(d["amount"]),
            fee=int(d.get("fee") or 0),
            currency=d["currency"],
            type=d.get("type") or "",
            source_id=_id(d.get("source")),
            created=_ts(d.get("created")) or datetime.now(UTC).replace(tzinfo=None),
        )


@dataclass(frozen=True)
class Invoice:
    id: str
    status: str
    subscription_id: str | None
    customer_id: str | None
    amount_paid: int
    currency: str
    charge_id: str | None
    payment_intent_id: str | None
    created: datetime
    billing_reason: str | None
    metadata: dict[str, str]  # the invoice's own, else its first line's

    @classmethod
    def parse(cls, raw: Any) -> Invoice:
        d = to_plain(raw)
        sub = d.get("subscription")
        if sub is None:  # API versions since 2025-03 moved it under `parent`
            sub = ((d.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        metadata = dict(d.get("metadata") or {})
        lines = (d.get("lines") or {}).get("data") or []
        if not metadata.get("contribution_id") and lines:
            metadata = {**dict(lines[0].get("metadata") or {}), **metadata}
        return cls(
            id=d["id"],
            status=d.get("status") or "",
            subscription_id=_id(sub),
            customer_id=_id(d.get("customer")),
            amount_paid=int(d.get("amount_paid") or 0),
            currency=d["currency"],
            charge_id=_id(d.get("charge")),
            payment_intent_id=_id(d.get("payment_intent")),
            created=_ts(d.get("created")) or datetime.now(UTC).replace(tzinfo=None),
            billing_reason=d.get("billing_reason"),
            metadata=metadata,
        )


@dataclass(frozen=True)
class SetupIntent:
    id: str
    status: str
    client_secret: str
    payment_method_id: str | None
    metadata: dict[str, str]

    @classmethod
    def parse(cls, raw: Any) -> SetupIntent:
        d = to_plain(raw)
        return cls(
            id=d["id"],
            status=d["status"],
            client_secret=d.get("client_secret") or "",
            payment_method_id=_id(d.get("payment_method")),
            metadata=dict(d.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Subscription:
    id: str
    status: str
    customer_id: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    canceled_at: datetime | None
    amount: int | None
    currency: str | None
    interval: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> Subscription:
        d = to_plain(raw)
        items = (d.get("items") or {}).get("data") or []
        plan = d.get("plan") or (items[0].get("plan") if items else None) or {}
        price = (items[0].get("price") if items else None) or {}
        period_end = d.get("current_period_end") or (
            items[0].get("current_period_end") if items else None
        )
        return cls(
            id=d["id"],
            status=d.get("status") or "",
            customer_id=_id(d.get("customer")),
            cancel_at_period_end=bool(d.get("cancel_at_period_end")),
            current_period_end=_ts(period_end),
            canceled_at=_ts(d.get("canceled_at") or d.get("ended_at")),
            amount=plan.get("amount") if plan else price.get("unit_amount"),
            currency=plan.get("currency") or price.get("currency"),
            interval=plan.get("interval") or (price.get("recurring") or {}).get("interval"),
            metadata=dict(d.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Card:
    """A card payment method, as a donor may see it."""

    id: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None

    @classmethod
    def parse(cls, raw: Any) -> Card:
        d = to_plain(raw)
        card = d.get("card") or {}
        return cls(
            id=d["id"],
            brand=str(card.get("brand") or "card"),
            last4=str(card.get("last4") or ""),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
        )


@dataclass(frozen=True)
class Dispute:
    """Built from the event payload: disputes cannot be re-fetched from the emulator."""

    id: str
    amount: int
    currency: str
    charge_id: str | None
    status: str
    created: datetime
    # (balance transaction id, amount, fee) in the order Stripe recorded them
    balance_transactions: tuple[BalanceTransaction, ...]

    @classmethod
    def parse(cls, raw: Any) -> Dispute:
        d = to_plain(raw)
        bts = tuple(
            BalanceTransaction.parse(bt)
            for bt in (d.get("balance_transactions") or [])
            if isinstance(bt, dict)
        )
        return cls(
            id=d["id"],
            amount=int(d["amount"]),
            currency=d["currency"],
            charge_id=_id(d.get("charge")),
            status=d.get("status") or "",
            created=_ts(d.get("created")) or datetime.now(UTC).replace(tzinfo=None),
            balance_transactions=bts,
        )


@dataclass(frozen=True)
class Payout:
    id: str
    amount: int
    currency: str
    status: str
    arrival_date: datetime | None
    created: datetime

    @classmethod
    def parse(cls, raw: Any) -> Payout:
        d = to_plain(raw)
        return cls(
            id=d["id"],
            amount=int(d["amount"]),
            currency=d["currency"],
            status=d.get("status") or "",
            arrival_date=_ts(d.get("arrival_date")),
            created=_ts(d.get("created")) or datetime.now(UTC).replace(tzinfo=None),
        )


# --- the gateway -----------------------------------------------------------------------------
def _translate(exc: stripe.StripeError) -> GatewayError:
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(exc.user_message or "Your card was declined.", exc.code)
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnavailable("Stripe could not be reached; please try again in a moment.")
    status = exc.http_status or 0
    if status == 402:
        return PaymentDeclined(exc.user_message or "Your card was declined.", exc.code)
    if status == 404 or getattr(exc, "code", None) == "resource_missing":
        return NotFoundAtStripe(exc.user_message or "No such object at Stripe.")
    if status >= 500 or status == 0 or isinstance(exc, stripe.RateLimitError):
        return StripeUnavailable("Stripe is not answering properly; please try again.")
    if isinstance(exc, stripe.AuthenticationError):
        return StripeRejected("The service's Stripe credentials were refused.")
    return StripeRejected("Stripe refused the request.")


class StripeGateway:
    """A narrow interface over one StripeClient."""

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        publishable_key: str,
        webhook_secrets: tuple[str, ...],
        webhook_tolerance: int = 300,
        emulator: bool = False,
    ) -> None:
        self._client = client
        # True when the client talks to localstripe: a few parameters differ (see below).
        self.emulator = emulator
        self._v1 = client.v1
        self.publishable_key = publishable_key
        self._webhook_secrets = webhook_secrets
        self._tolerance = webhook_tolerance

    @classmethod
    def from_settings(cls, settings: Any) -> StripeGateway:
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
        client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses=base,  # type: ignore[arg-type]
            # localstripe ignores Idempotency-Key, so an SDK retry would create a second
            # object there; against Stripe itself the SDK's idempotent retries are safe.
            max_network_retries=0 if settings.stripe_api_base else 2,
            http_client=stripe.RequestsClient(timeout=20),
        )
        return cls(
            client,
            publishable_key=settings.stripe_publishable_key,
            webhook_secrets=settings.stripe_webhook_secrets,
            webhook_tolerance=settings.webhook_tolerance,
            emulator=bool(settings.stripe_api_base),
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            err = _translate(exc)
            log.warning(
                "stripe call failed: %s (%s, http %s)",
                type(exc).__name__,
                getattr(exc, "code", None),
                getattr(exc, "http_status", None),
            )
            raise err from exc

    # webhooks
    def verify_webhook(self, payload: bytes, signature_header: str) -> None:
        """Raise SignatureError unless one configured secret verifies the raw body."""
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

    # one-off payments
    def create_payment_intent(
        self, amount: int, currency: str, metadata: Mapping[str, str]
    ) -> PaymentIntent:
        pi = self._call(
            self._v1.payment_intents.create,
            params={
                "amount": amount,
                "currency": currency,
                "metadata": dict(metadata),
                # Card only: with automatic payment methods a server-side confirm would need
                # a return_url, and the emulator does not know that parameter.
                "payment_method_types": ["card"],
            },
        )
        return PaymentIntent.parse(pi)

    def confirm_payment_intent(self, intent_id: str, payment_method: str) -> PaymentIntent:
        """Attach the browser's payment method and confirm on the server.

        Two calls, because the emulator answers 500 to confirm(payment_method=…).
        """
        self._call(
            self._v1.payment_intents.update, intent_id, params={"payment_method": payment_method}
        )
        return PaymentIntent.parse(self._call(self._v1.payment_intents.confirm, intent_id))

    def retrieve_payment_intent(self, intent_id: str) -> PaymentIntent:
        return PaymentIntent.parse(self._call(self._v1.payment_intents.retrieve, intent_id))

    def cancel_payment_intent(self, intent_id: str) -> None:
        self._call(self._v1.payment_intents.cancel, intent_id)

    # recurring
    def create_setup_intent(self, metadata: Mapping[str, str]) -> SetupIntent:
        seti = self._call(
            self._v1.setup_intents.create,
            params={"metadata": dict(metadata), "payment_method_types": ["card"]},
        )
        return SetupIntent.parse(seti)

    def retrieve_setup_intent(self, intent_id: str) -> SetupIntent:
        return SetupIntent.parse(self._call(self._v1.setup_intents.retrieve, intent_id))

    def create_customer(
        self,
        *,
        email: str,
        name: str | None,
        payment_method: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        params: dict[str, Any] = {"email": email, "metadata": dict(metadata)}
        if name:
            params["name"] = name
        if payment_method:
            params["payment_method"] = payment_method
            params["invoice_settings"] = {"default_payment_method": payment_method}
        return str(self._call(self._v1.customers.create, params=params).id)

    def delete_customer(self, customer_id: str) -> None:
        """Erase a customer at Stripe (their email, name and cards; Stripe cancels their
        subscriptions). Their charges stay, as the books need. Already gone is fine."""
        try:
            self._call(self._v1.customers.delete, customer_id)
        except NotFoundAtStripe:
            return

    def ensure_plan(self, amount: int, currency: str, interval: str) -> str:
        """A Plan per (amount, currency, interval), created once; the emulator has no Prices.

        Looked up every time rather than cached in the process: a plan deleted at Stripe (or
        an emulator reset) must not leave a cached id that makes every subscribe fail."""
        plan_id = f"donation-{currency}-{interval}-{amount}"
        try:
            self._call(self._v1.plans.retrieve, plan_id)
        except NotFoundAtStripe:
            try:
                self._call(self._v1.products.retrieve, PRODUCT_ID)
            except NotFoundAtStripe:
                self._call(
                    self._v1.products.create,
                    params={"id": PRODUCT_ID, "name": "Recurring contribution", "type": "service"},
                )
            self._call(
                self._v1.plans.create,
                params={
                    "id": plan_id,
                    "amount": amount,
                    "currency": currency,
                    "interval": interval,
                    "product": PRODUCT_ID,
                },
            )
        return plan_id

    def create_subscription(
        self, *, customer_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        sub = self._call(
            self._v1.subscriptions.create,
            params={
                "customer": customer_id,
                # One item, by plan: the emulator knows neither prices nor several items.
                # The item carries the metadata too: the emulator copies the item's (not the
                # subscription's) metadata onto invoice lines.
                "items": [{"plan": plan_id, "metadata": dict(metadata)}],
                "metadata": dict(metadata),
            },
        )
        return Subscription.parse(sub)

    def cancel_subscription(self, sub_id: str) -> Subscription:
        return Subscription.parse(self._call(self._v1.subscriptions.cancel, sub_id))

    def retrieve_subscription(self, sub_id: str) -> Subscription:
        return Subscription.parse(self._call(self._v1.subscriptions.retrieve, sub_id))

    # objects the webhooks re-fetch
    def retrieve_charge(self, charge_id: str) -> Charge:
        charge = Charge.parse(self._call(self._v1.charges.retrieve, charge_id))
        if not charge.refunds and charge.amount_refunded:
            charge = Charge(**{**charge.__dict__, "refunds": tuple(self.list_refunds(charge.id))})
        return charge

    def list_refunds(self, charge_id: str) -> list[Refund]:
        page = self._call(self._v1.refunds.list, params={"charge": charge_id, "limit": 100})
        return [Refund.parse(r) for r in page.auto_paging_iter()]

    def retrieve_refund(self, refund_id: str) -> Refund:
        return Refund.parse(self._call(self._v1.refunds.retrieve, refund_id))

    def create_refund(self, payment_intent_id: str, amount: int | None = None) -> Refund:
        params: dict[str, Any] = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        return Refund.parse(self._call(self._v1.refunds.create, params=params))

    def retrieve_invoice(self, invoice_id: str) -> Invoice:
        return Invoice.parse(self._call(self._v1.invoices.retrieve, invoice_id))

    def retrieve_balance_transaction(self, txn_id: str) -> BalanceTransaction:
        return BalanceTransaction.parse(self._call(self._v1.balance_transactions.retrieve, txn_id))

    def retrieve_payout(self, payout_id: str) -> Payout:
        return Payout.parse(self._call(self._v1.payouts.retrieve, payout_id))

    # reconciliation
    def list_events(self, since: datetime) -> Iterator[dict[str, Any]]:
        """Events created at or after `since` (any order: the emulator lists oldest first)."""
        page = self._call(
            self._v1.events.list,
            params={"created": {"gte": int(since.replace(tzinfo=UTC).timestamp())}, "limit": 100},
        )
        try:
            for event in page.auto_paging_iter():
                yield to_plain(event)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    def list_balance_transactions(self, since: datetime) -> Iterator[BalanceTransaction]:
        """Balance transactions since `since`; filtered here because the emulator refuses
        `created` filters on this list (it answers 400)."""
        page = self._call(self._v1.balance_transactions.list, params={"limit": 100})
        try:
            for raw in page.auto_paging_iter():
                txn = BalanceTransaction.parse(raw)
                if txn.created >= since:
                    yield txn
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    # donors' self-service ------------------------------------------------------------------
    def _put_on_plan(
        self, sub_id: str, plan_id: str, metadata: Mapping[str, str], extra: dict[str, Any]
    ) -> Subscription:
        current = to_plain(self._call(self._v1.subscriptions.retrieve, sub_id))
        items = (current.get("items") or {}).get("data") or []
        if not items:
            raise StripeRejected("The subscription has no item to change.")
        params: dict[str, Any] = {
            # The item keeps the metadata: invoice lines copy the item's (see create_subscription).
            "items": [{"id": items[0]["id"], "plan": plan_id, "metadata": dict(metadata)}],
            **extra,
        }
        return Subscription.parse(self._call(self._v1.subscriptions.update, sub_id, params=params))

    def change_subscription_amount(
        self, sub_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        """A new amount on the same interval, charged from the next renewal, no proration.

        Real Stripe takes `proration_behavior=none`
        (https://docs.stripe.com/billing/subscriptions/prorations). The emulator answers 500 to
        that parameter, ignores the older `prorate=false`, and always leaves a pending
        "Unused time" credit of the whole old amount for the next invoice: so there the
        subscription's pending, uninvoiced items are deleted after the change, which leaves
        the same next invoice as Stripe's (the new amount, nothing else).
        """
        if not self.emulator:
            return self._put_on_plan(sub_id, plan_id, metadata, {"proration_behavior": "none"})
        changed = self._put_on_plan(sub_id, plan_id, metadata, {})
        if changed.customer_id:
            page = self._call(self._v1.invoice_items.list, params={"customer": changed.customer_id})
            for item in page.data:
                d = to_plain(item)
                if _id(d.get("subscription")) == sub_id and not d.get("invoice"):
                    self._call(self._v1.invoice_items.delete, d["id"])
        return changed

    def change_subscription_interval(
        self, sub_id: str, plan_id: str, metadata: Mapping[str, str]
    ) -> Subscription:
        """Monthly ↔ annual: Stripe starts a new period on the new plan and invoices it at once,
        crediting the unused time of the period already paid (its default proration). The
        emulator does the same but credits the whole old amount instead of the unused part."""
        return self._put_on_plan(sub_id, plan_id, metadata, {})

    def set_cancel_at_period_end(self, sub_id: str, cancel: bool = True) -> Subscription:
        """Stop (or resume) renewing at the end of the period already paid for."""
        return Subscription.parse(
            self._call(
                self._v1.subscriptions.update, sub_id, params={"cancel_at_period_end": cancel}
            )
        )

    def create_card_setup_intent(
        self, customer_id: str, metadata: Mapping[str, str]
    ) -> SetupIntent:
        """A SetupIntent for a new card of this customer (confirmed by Stripe.js's
        confirmCardSetup in the browser)."""
        seti = self._call(
            self._v1.setup_intents.create,
            params={
                "customer": customer_id,
                "payment_method_types": ["card"],
                "usage": "off_session",
                "metadata": dict(metadata),
            },
        )
        return SetupIntent.parse(seti)

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> None:
        """Make a card the one the customer's invoices are charged to.

        Stripe attaches the card to the customer when a SetupIntent made for that customer is
        confirmed; the emulator does not, so a card attached to nobody is attached here (on
        Stripe this never happens). A card attached to someone else is refused.
        """
        pm = to_plain(self._call(self._v1.payment_methods.retrieve, payment_method_id))
        owner = _id(pm.get("customer"))
        if owner is None:
            self._call(
                self._v1.payment_methods.attach, payment_method_id, params={"customer": customer_id}
            )
        elif owner != customer_id:
            raise StripeRejected("That card belongs to another customer.")
        self._call(
            self._v1.customers.update,
            customer_id,
            params={"invoice_settings": {"default_payment_method": payment_method_id}},
        )

    def default_card(self, customer_id: str) -> Card | None:
        """The card the customer's invoices are charged to (brand, last four, expiry)."""
        customer = to_plain(self._call(self._v1.customers.retrieve, customer_id))
        pm_id = _id((customer.get("invoice_settings") or {}).get("default_payment_method"))
        if pm_id is None:
            return None
        return Card.parse(self._call(self._v1.payment_methods.retrieve, pm_id))
