"""The project's own small types for what Stripe says, and their parsing from Stripe's JSON.

Every dialect (Stripe's API at the pinned version, the localstripe emulator's 2017 shapes)
gathers into these types; nothing outside `donations.stripe` sees Stripe's shapes. Parsing is
tolerant of a reference being an id or an expanded object, since expansion differs by dialect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def to_plain(obj: Any) -> dict[str, Any]:
    """An SDK object (or a dict) as plain JSON data."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return dict(json.loads(str(obj)))


def ts(value: Any) -> datetime | None:
    """A Stripe timestamp as a naive UTC datetime (the database's convention)."""
    if not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ref_id(value: Any) -> str | None:
    """A reference that may be an id or an expanded object."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("id"):
        return str(value["id"])
    return None


def expanded(value: Any) -> dict[str, Any] | None:
    """The object behind a reference when it came expanded, else None."""
    return value if isinstance(value, dict) and value.get("id") else None


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()} if isinstance(value, dict) else {}


# --- money at Stripe ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BalanceTxn:
    """One movement of the Stripe balance, in the account's settlement currency."""

    id: str
    type: str
    amount: int  # gross, settlement currency (negative for money out)
    fee: int  # Stripe's fees in it (negative when Stripe gives a fee back)
    net: int  # amount − fee: what the balance moved by
    currency: str
    exchange_rate: Decimal | None  # presentment → settlement, None when the same currency
    created: datetime
    source_id: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> BalanceTxn:
        amount = int(d["amount"])
        fee = int(d.get("fee") or 0)
        rate = d.get("exchange_rate")
        return cls(
            id=str(d["id"]),
            type=str(d.get("type") or ""),
            amount=amount,
            fee=fee,
            # The emulator's transactions have no `net`: it is amount − fee by definition.
            net=int(d["net"]) if d.get("net") is not None else amount - fee,
            currency=str(d["currency"]).lower(),
            exchange_rate=Decimal(str(rate)) if rate not in (None, "") else None,
            created=ts(d.get("created")) or now(),
            source_id=ref_id(d.get("source")),
        )


def maybe_txn(value: Any) -> BalanceTxn | None:
    d = expanded(value)
    return BalanceTxn.parse(d) if d is not None else None


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int  # in the charge's (the donor's) currency
    currency: str
    status: str  # pending | requires_action | succeeded | failed | canceled
    created: datetime
    charge_id: str | None
    payment_intent_id: str | None
    txn: BalanceTxn | None  # None: not expanded or none yet
    txn_id: str | None
    failure_txn: BalanceTxn | None  # the money coming back when the refund failed
    failure_txn_id: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Refund:
        return cls(
            id=str(d["id"]),
            amount=int(d["amount"]),
            currency=str(d["currency"]).lower(),
            status=str(d.get("status") or "succeeded"),
            created=ts(d.get("created")) or now(),
            charge_id=ref_id(d.get("charge")),
            payment_intent_id=ref_id(d.get("payment_intent")),
            txn=maybe_txn(d.get("balance_transaction")),
            txn_id=ref_id(d.get("balance_transaction")),
            failure_txn=maybe_txn(d.get("failure_balance_transaction")),
            failure_txn_id=ref_id(d.get("failure_balance_transaction")),
        )


@dataclass(frozen=True)
class Invoice:
    """A subscription's invoice: who it is for and whether it was paid."""

    id: str
    status: str  # draft | open | paid | uncollectible | void
    amount_paid: int
    amount_due: int
    currency: str
    subscription_id: str | None
    customer_id: str | None
    billing_reason: str | None
    created: datetime
    attempted: bool
    # The contribution's metadata: the invoice's own, over the subscription's copy and the
    # first line's (where each dialect puts it).
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def paid(self) -> bool:
        return self.status == "paid"


@dataclass(frozen=True)
class Charge:
    """A card payment with what the books need about it."""

    id: str
    amount: int  # what the donor was charged, in their currency
    currency: str
    status: str  # succeeded | pending | failed
    created: datetime
    payment_intent_id: str | None
    customer_id: str | None
    # contribution_id and attribution: the charge's own metadata over its PaymentIntent's
    metadata: dict[str, str]
    amount_refunded: int
    txn: BalanceTxn | None
    txn_id: str | None
    # None: not gathered (the booking leaves refunds to their own events); () = none
    refunds: tuple[Refund, ...] | None = None
    invoice: Invoice | None = None  # the subscription invoice it paid, if any
    failure_message: str | None = None


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str
    client_secret: str
    amount: int
    currency: str
    metadata: dict[str, str]
    charge_id: str | None
    customer_id: str | None
    error_message: str | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> PaymentIntent:
        charge = d.get("latest_charge")
        if charge is None and (d.get("charges") or {}).get("data"):  # emulator (2017 shape)
            charge = d["charges"]["data"][0]
        error = d.get("last_payment_error") or {}
        return cls(
            id=str(d["id"]),
            status=str(d["status"]),
            client_secret=str(d.get("client_secret") or ""),
            amount=int(d["amount"]),
            currency=str(d["currency"]).lower(),
            metadata=_metadata(d.get("metadata")),
            charge_id=ref_id(charge),
            customer_id=ref_id(d.get("customer")),
            error_message=error.get("message") if isinstance(error, dict) else None,
        )


@dataclass(frozen=True)
class PaymentAttempt:
    """A PaymentIntent, its charge and the subscription invoice it pays, if any."""

    intent: PaymentIntent
    charge: Charge | None
    invoice: Invoice | None


@dataclass(frozen=True)
class InvoicePayment:
    """An invoice with its payment's charge (None while unpaid) and the error of a decline."""

    invoice: Invoice
    charge: Charge | None
    error_message: str | None = None


@dataclass(frozen=True)
class Dispute:
    id: str
    amount: int  # in the charge's currency
    currency: str
    status: str
    created: datetime
    charge: Charge | None
    charge_id: str | None
    # Withdrawal (negative) and reinstatement (positive), in the order Stripe recorded them.
    # An inquiry has none: no money moves.
    txns: tuple[BalanceTxn, ...]

    @property
    def won(self) -> bool:
        return self.status == "won"


@dataclass(frozen=True)
class Payout:
    id: str
    amount: int  # settlement currency, positive
    currency: str
    status: str  # pending | in_transit | paid | failed | canceled
    created: datetime
    arrival_date: datetime | None
    txn: BalanceTxn | None  # the money leaving the balance
    failure_txn: BalanceTxn | None  # the money coming back (failed or canceled)


@dataclass(frozen=True)
class SetupIntent:
    id: str
    status: str
    client_secret: str
    payment_method_id: str | None
    metadata: dict[str, str]

    @classmethod
    def parse(cls, d: dict[str, Any]) -> SetupIntent:
        return cls(
            id=str(d["id"]),
            status=str(d["status"]),
            client_secret=str(d.get("client_secret") or ""),
            payment_method_id=ref_id(d.get("payment_method")),
            metadata=_metadata(d.get("metadata")),
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
    def parse(cls, d: dict[str, Any]) -> Subscription:
        items = (d.get("items") or {}).get("data") or []
        first = items[0] if items else {}
        plan = first.get("plan") or d.get("plan") or {}
        price = first.get("price") or {}
        # Periods live on the items since 2025-03 (the emulator still has them on the root).
        period_end = first.get("current_period_end") or d.get("current_period_end")
        amount = plan.get("amount") if plan.get("amount") is not None else price.get("unit_amount")
        return cls(
            id=str(d["id"]),
            status=str(d.get("status") or ""),
            customer_id=ref_id(d.get("customer")),
            cancel_at_period_end=bool(d.get("cancel_at_period_end")),
            current_period_end=ts(period_end),
            canceled_at=ts(d.get("canceled_at") or d.get("ended_at")),
            amount=int(amount) if amount is not None else None,
            currency=plan.get("currency") or price.get("currency") or d.get("currency"),
            interval=plan.get("interval") or (price.get("recurring") or {}).get("interval"),
            metadata=_metadata(d.get("metadata")),
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
    def parse(cls, d: dict[str, Any]) -> Card:
        card = d.get("card") or {}
        return cls(
            id=str(d["id"]),
            brand=str(card.get("brand") or "card"),
            last4=str(card.get("last4") or ""),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
        )


# --- parsing shared by the dialects -----------------------------------------------------------
def parse_invoice(d: dict[str, Any]) -> Invoice:
    parent = d.get("parent") or {}
    details = parent.get("subscription_details") or {}
    # At the pinned version the subscription is under `parent`; the emulator has it on the root.
    subscription = details.get("subscription") or d.get("subscription")
    lines = (d.get("lines") or {}).get("data") or []
    line_meta = _metadata(lines[0].get("metadata")) if lines else {}
    metadata = {**line_meta, **_metadata(details.get("metadata")), **_metadata(d.get("metadata"))}
    return Invoice(
        id=str(d["id"]),
        status=str(d.get("status") or ""),
        amount_paid=int(d.get("amount_paid") or 0),
        amount_due=int(d.get("amount_due") or 0),
        currency=str(d["currency"]).lower(),
        subscription_id=ref_id(subscription),
        customer_id=ref_id(d.get("customer")),
        billing_reason=d.get("billing_reason"),
        created=ts(d.get("created")) or now(),
        attempted=bool(d.get("attempted")),
        metadata=metadata,
    )


def parse_charge(
    d: dict[str, Any],
    *,
    intent: dict[str, Any] | None = None,
    invoice: Invoice | None = None,
    refunds: tuple[Refund, ...] | None = None,
) -> Charge:
    intent = intent or expanded(d.get("payment_intent")) or {}
    if refunds is None and isinstance(d.get("refunds"), dict):
        listed = d["refunds"]
        if not listed.get("has_more"):
            refunds = tuple(Refund.parse(r) for r in listed.get("data") or [] if expanded(r))
    return Charge(
        id=str(d["id"]),
        amount=int(d["amount"]),
        currency=str(d["currency"]).lower(),
        status=str(d.get("status") or ""),
        created=ts(d.get("created")) or now(),
        payment_intent_id=ref_id(d.get("payment_intent")),
        customer_id=ref_id(d.get("customer")),
        metadata={**_metadata(intent.get("metadata")), **_metadata(d.get("metadata"))},
        amount_refunded=int(d.get("amount_refunded") or 0),
        txn=maybe_txn(d.get("balance_transaction")),
        txn_id=ref_id(d.get("balance_transaction")),
        refunds=refunds,
        invoice=invoice,
        failure_message=d.get("failure_message"),
    )


def parse_dispute(d: dict[str, Any], charge: Charge | None) -> Dispute:
    txns = tuple(BalanceTxn.parse(t) for t in (d.get("balance_transactions") or []) if expanded(t))
    return Dispute(
        id=str(d["id"]),
        amount=int(d["amount"]),
        currency=str(d["currency"]).lower(),
        status=str(d.get("status") or ""),
        created=ts(d.get("created")) or now(),
        charge=charge,
        charge_id=ref_id(d.get("charge")),
        txns=txns,
    )


def parse_payout(
    d: dict[str, Any], txn: BalanceTxn | None = None, failure_txn: BalanceTxn | None = None
) -> Payout:
    return Payout(
        id=str(d["id"]),
        amount=int(d["amount"]),
        currency=str(d["currency"]).lower(),
        status=str(d.get("status") or ""),
        created=ts(d.get("created")) or now(),
        arrival_date=ts(d.get("arrival_date")),
        txn=txn or maybe_txn(d.get("balance_transaction")),
        failure_txn=failure_txn or maybe_txn(d.get("failure_balance_transaction")),
    )
