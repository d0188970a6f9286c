"""The stand-in's state and what Stripe does with it: payments, subscription invoices,
refunds, disputes, payouts, the balance and the events. One re-entrant lock guards it all."""

from __future__ import annotations

import copy
import operator
import threading
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar

from .model import (
    API_VERSION,
    CARDS,
    DECLINED,
    DEFAULT_RATES,
    DEFAULTS,
    INCLUDABLE,
    TEMPLATES,
    Obj,
    StripeError,
    add_interval,
    as_int,
    bad,
    build,
    missing,
    new_id,
    now,
    round_even,
)

F = TypeVar("F", bound=Callable[..., Any])
_CMP = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_OPEN_DISPUTE = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")


def locked(fn: F) -> F:
    """A public operation: runs under the lock and hands back a copy of its result."""

    @wraps(fn)
    def run(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return copy.deepcopy(fn(self, *args, **kwargs))

    return run  # type: ignore[return-value]


def created_ok(obj: Obj, spec: Any) -> bool:
    """Stripe's `created=…` / `created[gte]=…` (gt, gte, lt, lte) list filter."""
    if spec is None:
        return True
    if not isinstance(spec, dict):
        return bool(obj["created"] == as_int(spec, "created"))
    for op, value in spec.items():
        if op not in _CMP:
            raise bad(f"Received unknown parameter: created[{op}]", f"created[{op}]")
        if not _CMP[op](obj["created"], as_int(value, f"created[{op}]")):
            return False
    return True


class Ledger:
    fee_rate: Decimal = Decimal("0.029")
    fee_fixed: int = 30
    dispute_fee: int = 1500

    def __init__(self, settlement_currency: str = "usd") -> None:
        self._lock = threading.RLock()
        self._ctx = threading.local()  # the API request being served, for events' `request`
        self._initial_currency = settlement_currency.lower()
        self.events: list[Obj] = []
        self.requests: list[tuple[str, str]] = []
        self._reset_state()

    def _reset_state(self) -> None:
        self.settlement_currency = self._initial_currency
        self._rates = dict(DEFAULT_RATES)
        self._objects: dict[str, Obj] = {}
        self._order: list[str] = []  # ids in creation order
        self._txn_payout: dict[str, str] = {}  # balance transaction → the payout that took it
        self._pm_kind: dict[str, str] = {}  # payment method → ok | charge_fail | decline | 3ds
        self._delivered: set[str] = set()
        self._idempotent: dict[tuple[str, str], tuple[Obj, int, Obj]] = {}
        self._invoice_seq = 0
        self.events.clear()
        self.requests.clear()

    def set_rate(self, currency: str, rate: float) -> None:
        """The rate from `currency` to the current settlement currency."""
        with self._lock:
            self._rates[(currency.lower(), self.settlement_currency)] = Decimal(str(rate))

    def _settle(self, amount: int, currency: str) -> tuple[int, Decimal | None]:
        """`amount` in the settlement currency at today's rate, and the rate (None: same)."""
        if currency == self.settlement_currency:
            return amount, None
        rate = self._rates.get((currency, self.settlement_currency))
        if rate is None:
            message = f"stand-in: no rate {currency}→{self.settlement_currency}; set_rate() it"
            raise StripeError(500, message, type="api_error")
        return round_even(amount * rate), rate

    # objects and events ----------------------------------------------------------------------
    def _put(self, obj: Obj) -> Obj:
        self._objects[obj["id"]] = obj
        self._order.append(obj["id"])
        return obj

    def _new(self, kind: str, prefix: str | None, **fields: Any) -> Obj:
        return self._put(build(kind, prefix, **fields))

    def _get(self, ident: Any, kind: str, param: str | None = None) -> Obj:
        obj = self._objects.get(ident) if isinstance(ident, str) else None
        if obj is None or obj.get("object") != kind or obj.get("deleted"):
            raise missing(kind, ident, param)
        return obj

    def _all(self, kind: str, **equal: Any) -> list[Obj]:
        """Objects of a kind whose fields equal `equal`'s, newest first."""
        found = [self._objects[i] for i in reversed(self._order)]
        return [o for o in found if o["object"] == kind and equal.items() <= o.items()]

    @locked
    def get(self, object_id: str) -> Obj:
        return self._objects[object_id]

    @locked
    def list_all(self, kind: str, **equal: Any) -> list[Obj]:
        """Every object of a kind (e.g. "charge") whose fields equal `equal`'s, oldest first."""
        return list(reversed(self._all(kind, **equal)))

    def _emit(self, type_: str, obj: Obj, before: Obj | None = None) -> None:
        data: Obj = {"object": copy.deepcopy(obj)}
        if before is not None:
            changed = {k: v for k, v in before.items() if v != obj.get(k)}
            data["previous_attributes"] = copy.deepcopy(changed)
        request = getattr(self._ctx, "request", None) or {"id": None, "idempotency_key": None}
        event = self._new("event", "evt", type=type_, data=data, request=dict(request))
        event.update(api_version=API_VERSION, pending_webhooks=1)
        self.events.append(event)
        self._on_event(event)

    def _on_event(self, event: Obj) -> None:
        """Hook: the server queues automatic deliveries here."""

    # money -----------------------------------------------------------------------------------
    def _txn(self, type_: str, source: str, amount: int, category: str, **extra: Any) -> Obj:
        """A balance transaction. extra: fee (+ fee_desc), rate, currency, description."""
        fee, rate = extra.get("fee", 0), extra.get("rate")
        currency = extra.get("currency") or self.settlement_currency
        txn = self._new("balance_transaction", "txn", type=type_, source=source, amount=amount)
        txn.update(currency=currency, fee=fee, net=amount - fee, reporting_category=category)
        txn.update(exchange_rate=None if rate is None else float(rate), fee_details=[])
        txn.update(status="available", available_on=txn["created"], description=extra.get("desc"))
        if fee:
            details = {"application": None, "description": extra["fee_desc"], "type": "stripe_fee"}
            txn["fee_details"] = [{"amount": fee, "currency": currency, **details}]
        return txn

    def _balance(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for txn in self._all("balance_transaction"):
            totals[txn["currency"]] = totals.get(txn["currency"], 0) + txn["net"]
        return totals

    @locked
    def balance(self) -> dict[str, int]:
        return self._balance()

    @locked
    def balance_transactions(self) -> list[Obj]:
        return self._all("balance_transaction")[::-1]

    # payment methods and payments ------------------------------------------------------------
    def _payment_method(self, ref: Any, param: str = "payment_method") -> Obj:
        """An existing payment method, or a fresh one for a test alias (`pm_card_visa`…)."""
        if not (isinstance(ref, str) and ref.startswith("pm_card_")):
            return self._get(ref, "payment_method", param)
        brand, last4, kind = CARDS.get(ref.removeprefix("pm_card_"), CARDS["visa"])
        card = copy.deepcopy(TEMPLATES["payment_method"]["card"])
        card.update(brand=brand, display_brand=brand, last4=last4, exp_month=12, exp_year=2034)
        card.update(fingerprint=new_id("f", 16)[2:], generated_from=None, wallet=None)
        card["networks"] = {"available": [brand], "preferred": None}
        pm = self._new("payment_method", "pm", card=card, customer=None)
        self._pm_kind[pm["id"]] = kind
        return pm

    def _card_error(self, error: Obj, **extra: Any) -> StripeError:
        details = {k: v for k, v in error.items() if k not in ("type", "code", "message")}
        details.pop("doc_url", None)
        return StripeError(
            402, DECLINED, type="card_error", code="card_declined", **details | extra
        )

    def _attach(self, pm: Obj, customer: Obj) -> None:
        if pm["customer"] == customer["id"]:
            return
        if pm["customer"]:
            message = "The payment method you provided has already been attached to a customer."
            raise bad(message, "payment_method")
        if self._pm_kind.get(pm["id"]) == "decline":
            raise self._card_error(DEFAULTS["card_error"])
        pm["customer"] = customer["id"]
        self._emit("payment_method.attached", pm)

    def _new_pi(self, amount: int, currency: str, **fields: Any) -> Obj:
        pi = self._new("payment_intent", "pi", amount=amount, currency=currency, **fields)
        pi["status"] = "requires_" + ("confirmation" if pi["payment_method"] else "payment_method")
        pi["client_secret"] = f"{pi['id']}_secret_{new_id('s', 25)[2:]}"
        return pi

    def _charge(self, pi: Obj, pm: Obj, ok: bool) -> Obj:
        card, amount, status = pm["card"], pi["amount"], "succeeded" if ok else "failed"
        details = copy.deepcopy(TEMPLATES["charge"]["payment_method_details"])
        details["card"].update({k: card[k] for k in ("brand", "last4", "exp_month", "exp_year")})
        details["card"].update(fingerprint=card["fingerprint"], network=card["brand"], wallet=None)
        details["card"].update(installments=None, three_d_secure=None)
        details["card"]["amount_authorized"] = amount if ok else None
        details["card"]["overcapture"]["maximum_amount_capturable"] = amount
        charge = self._new("charge", "ch", amount=amount, currency=pi["currency"], status=status)
        charge.update({k: copy.deepcopy(pi[k]) for k in ("customer", "description", "metadata")})
        charge.update(payment_intent=pi["id"], payment_method=pm["id"], paid=ok, captured=ok)
        charge.update(payment_method_details=details, receipt_email=pi["receipt_email"])
        charge.update(billing_details=copy.deepcopy(pm["billing_details"]))
        charge.update(amount_captured=amount if ok else 0)
        charge["outcome"] = copy.deepcopy(DEFAULTS["outcome"][status])
        charge.update(failure_code=None if ok else "card_declined")
        charge["failure_message"] = None if ok else DECLINED
        charge["receipt_url"] = f"https://pay.stripe.com/receipts/payment/{new_id('r', 40)[2:]}"
        if ok:
            settled, rate = self._settle(amount, charge["currency"])
            fee = round_even(settled * Decimal(str(self.fee_rate))) + self.fee_fixed
            money = {"fee": fee, "fee_desc": "Stripe processing fees", "rate": rate}
            txn = self._txn("charge", charge["id"], settled, "charge", **money)
            charge["balance_transaction"] = txn["id"]
        return charge

    def _confirm(self, pi: Obj, pm: Obj, kind: str | None = None) -> str:
        """Charge `pm` for `pi`: succeeded | declined | requires_action."""
        kind = kind or self._pm_kind.get(pm["id"], "ok")
        pi.update(payment_method=pm["id"], last_payment_error=None, next_action=None)
        if kind == "3ds":
            sdk = {"type": "three_d_secure_redirect", "source": new_id("src")}
            pi.update(status="requires_action")
            pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": sdk}
            self._emit("payment_intent.requires_action", pi)
            return "requires_action"
        charge = self._charge(pi, pm, ok=kind == "ok")
        pi["latest_charge"] = charge["id"]
        if kind == "ok":
            pi.update(status="succeeded", amount_received=pi["amount"])
            self._emit("charge.succeeded", charge)
            self._emit("payment_intent.succeeded", pi)
            return "succeeded"
        error = {**DEFAULTS["card_error"], "charge": charge["id"], "payment_method": pm}
        pi.update(status="requires_payment_method", payment_method=None)
        pi["last_payment_error"] = copy.deepcopy(error)
        self._emit("charge.failed", charge)
        self._emit("payment_intent.payment_failed", pi)
        return "declined"

    # subscriptions and their invoices --------------------------------------------------------
    def _price(self, plan: Obj) -> Obj:
        keys = ("id", "created", "active", "currency", "product", "nickname", "metadata")
        price = build("price", None, **copy.deepcopy({k: plan[k] for k in keys}))
        price.update(unit_amount=plan["amount"], unit_amount_decimal=str(plan["amount"]))
        price["recurring"].update(interval=plan["interval"], interval_count=plan["interval_count"])
        return price

    def _item(self, sub_id: str, spec: Obj, plan: Obj, start: int) -> Obj:
        item = build("subscription_item", "si", subscription=sub_id, plan=copy.deepcopy(plan))
        item.update(price=self._price(plan), metadata=dict(spec.get("metadata") or {}))
        item["quantity"] = as_int(spec.get("quantity") or 1, "quantity")
        end = add_interval(start, plan["interval"], plan["interval_count"])
        item.update(current_period_start=start, current_period_end=end)
        return item

    def _line(self, inv_id: str, sub: Obj, item: Obj) -> Obj:
        """The invoice line of one subscription item for its current period."""
        plan, quantity = item["plan"], item["quantity"]
        name = (self._objects.get(plan["product"]) or {}).get("name", "Plan")
        price = f"{plan['amount'] / 100:.2f} {plan['currency'].upper()} / {plan['interval']}"
        line = build("line_item", "il", amount=plan["amount"] * quantity, currency=plan["currency"])
        line.update(description=f"{quantity} × {name} (at {price})", subtotal=line["amount"])
        line.update(invoice=inv_id, metadata=copy.deepcopy(sub["metadata"]), subscription=sub["id"])
        period = {"start": item["current_period_start"], "end": item["current_period_end"]}
        line.update(period=period, quantity=quantity)
        details = {"invoice_item": None, "proration": False, "subscription": sub["id"]}
        details.update(proration_details={"credited_items": None}, subscription_item=item["id"])
        line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None}
        line["parent"]["subscription_item_details"] = details
        priced = {"price": plan["id"], "product": plan["product"]}
        line["pricing"].update(price_details=priced, unit_amount_decimal=str(plan["amount"]))
        return line

    def _payer(self, sub: Obj) -> str | None:
        settings = self._objects[sub["customer"]].get("invoice_settings") or {}
        return sub["default_payment_method"] or settings.get("default_payment_method")

    def _bill(self, sub: Obj, reason: str, inv_id: str, period: tuple, decline: bool) -> Obj:
        """Invoice the subscription's period, finalize the invoice, charge it off session."""
        lines = [self._line(inv_id, sub, item) for item in sub["items"]["data"]]
        customer, due = self._objects[sub["customer"]], sum(line["amount"] for line in lines)
        url, currency = f"/v1/invoices/{inv_id}/lines", sub["currency"]
        invoice = self._new("invoice", None, id=inv_id, customer=customer["id"], currency=currency)
        invoice.update(customer_email=customer["email"], customer_name=customer["name"])
        invoice.update(billing_reason=reason, period_start=period[0], period_end=period[1])
        invoice["lines"] = {"object": "list", "data": lines, "has_more": False, "url": url}
        invoice.update(subtotal=due, subtotal_excluding_tax=due, total_excluding_tax=due)
        invoice.update(total=due, amount_due=due, amount_paid=0, amount_remaining=due)
        invoice.update(status="draft", attempted=False, attempt_count=0)
        invoice["status_transitions"] = dict.fromkeys(invoice["status_transitions"])
        details = {"subscription": sub["id"], "metadata": copy.deepcopy(sub["metadata"])}
        invoice["parent"] = {"type": "subscription_details", "quote_details": None}
        invoice["parent"]["subscription_details"] = {**details, "subscription_proration_date": None}
        self._emit("invoice.created", invoice)
        self._invoice_seq += 1
        invoice.update(status="open", number=f"STANDIN-{self._invoice_seq:04d}", effective_at=now())
        invoice["status_transitions"]["finalized_at"] = invoice["effective_at"]
        self._emit("invoice.finalized", invoice)
        payer = self._payer(sub)
        what = "Subscription " + ("creation" if reason == "subscription_create" else "update")
        pi = self._new_pi(due, currency, customer=customer["id"], payment_method=payer)
        pi["description"] = what
        pay = self._new("invoice_payment", "inpay", invoice=inv_id, amount_requested=due)
        pay.update(amount_paid=None, currency=currency, is_default=True, status="open")
        pay.update(payment={"type": "payment_intent", "payment_intent": pi["id"]})
        pay["status_transitions"] = {"canceled_at": None, "paid_at": None}
        invoice.update(attempted=True, attempt_count=1)
        outcome = "declined"
        if payer:
            outcome = self._confirm(pi, self._objects[payer], "decline" if decline else None)
        if outcome == "succeeded":
            self._invoice_paid(invoice, pay)
        elif outcome == "requires_action":
            self._emit("invoice.payment_action_required", invoice)
        else:
            if reason != "subscription_create":
                invoice["next_payment_attempt"] = now() + 3 * 86400
            self._emit("invoice.payment_failed", invoice)
        return invoice

    def _invoice_paid(self, invoice: Obj, pay: Obj) -> None:
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["paid_at"] = at = now()
        pay.update(status="paid", amount_paid=pay["amount_requested"])
        pay["status_transitions"]["paid_at"] = at
        self._emit("invoice_payment.paid", pay)
        self._emit("invoice.paid", invoice)
        self._emit("invoice.payment_succeeded", invoice)

    def _plan_of(self, spec: Any, param: str) -> Obj:
        ref = (spec.get("plan") or spec.get("price")) if isinstance(spec, dict) else None
        if not ref:
            raise bad(f"Missing required param: {param}.", param, "parameter_missing")
        return self._get(ref, "plan", param)

    def _subscribe(self, customer: Obj, specs: list, **fields: Any) -> Obj:
        at, sub_id, inv_id = now(), new_id("sub"), new_id("in")
        plans = [self._plan_of(s, f"items[{i}][plan]") for i, s in enumerate(specs)]
        if len({p["currency"] for p in plans}) > 1:
            raise bad("All prices on a subscription must have the same currency.", "items")
        items = [self._item(sub_id, s, p, at) for s, p in zip(specs, plans, strict=True)]
        sub = self._new("subscription", None, id=sub_id, customer=customer["id"], **fields)
        sub["items"].update(data=items, url=f"/v1/subscription_items?subscription={sub_id}")
        sub.update(currency=plans[0]["currency"], billing_cycle_anchor=at, start_date=at)
        sub.update(latest_invoice=inv_id, status="incomplete")
        if self._pm_kind.get(self._payer(sub) or "") == "ok":  # the first payment will pass
            sub["status"] = "active"
        self._emit("customer.subscription.created", sub)
        self._bill(sub, "subscription_create", inv_id, (at, at), decline=False)
        return sub

    def _end(self, sub: Obj) -> None:
        before, at = copy.deepcopy(sub), now()
        sub.update(status="canceled", canceled_at=sub["canceled_at"] or at, ended_at=at)
        details = sub["cancellation_details"]
        details["reason"] = details["reason"] or "cancellation_requested"
        self._emit("customer.subscription.deleted", sub, before)

    @locked
    def renew(self, subscription_id: str, *, decline: bool = False) -> Obj:
        """The period ends: the next one is invoiced and charged; returns the invoice. (A
        subscription set to cancel at period end ends instead, and is returned.)"""
        sub = self._get(subscription_id, "subscription")
        if sub["status"] not in ("active", "past_due"):
            raise bad(f"Subscription {subscription_id} is {sub['status']}: it does not renew.")
        if sub["cancel_at_period_end"]:
            self._end(sub)
            return sub
        before, inv_id, first = copy.deepcopy(sub), new_id("in"), sub["items"]["data"][0]
        period = (first["current_period_start"], first["current_period_end"])
        for item in sub["items"]["data"]:
            plan, start = item["plan"], item["current_period_end"]
            end = add_interval(start, plan["interval"], plan["interval_count"])
            item.update(current_period_start=start, current_period_end=end)
        sub["latest_invoice"] = inv_id
        self._emit("customer.subscription.updated", sub, before)
        invoice = self._bill(sub, "subscription_cycle", inv_id, period, decline=decline)
        status = "active" if invoice["status"] == "paid" else "past_due"
        if sub["status"] != status:
            before = copy.deepcopy(sub)
            sub["status"] = status
            self._emit("customer.subscription.updated", sub, before)
        return invoice

    # refunds ---------------------------------------------------------------------------------
    def _refund(self, charge: Obj, amount: int | None = None, **fields: Any) -> Obj:
        ident, remaining = charge["id"], charge["amount"] - charge["amount_refunded"]
        if charge["status"] != "succeeded":
            raise bad(f"Charge {ident} has not succeeded: nothing to refund.", "charge")
        if any(not d["is_charge_refundable"] for d in self._all("dispute", charge=ident)):
            message = f"Charge {ident} has been charged back; cannot issue a refund."
            raise bad(message, "charge", "charge_disputed")
        if remaining <= 0:
            message = f"Charge {ident} has already been refunded."
            raise bad(message, "charge", "charge_already_refunded")
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            message = f"Refund amount ({amount}) is greater than unrefunded amount on charge"
            raise bad(f"{message} ({remaining})", "amount", "amount_too_large")
        before, (settled, rate) = copy.deepcopy(charge), self._settle(amount, charge["currency"])
        refund = self._new("refund", "re", amount=amount, charge=ident, currency=charge["currency"])
        refund.update(payment_intent=charge["payment_intent"], status="succeeded", **fields)
        refund["payment_method"] = charge["payment_method"]
        desc = f"REFUND FOR CHARGE ({charge['description'] or ident})"
        txn = self._txn("refund", refund["id"], -settled, "refund", rate=rate, desc=desc)
        refund["balance_transaction"] = txn["id"]
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit("charge.refunded", charge, before)
        self._emit("refund.created", refund)
        return refund

    @locked
    def refund(self, charge_id: str, amount: int | None = None) -> Obj:
        return self._refund(self._get(charge_id, "charge"), amount)

    @locked
    def fail_refund(self, refund_id: str) -> Obj:
        refund = self._get(refund_id, "refund")
        if refund["status"] not in ("succeeded", "pending"):
            raise bad(f"Refund {refund_id} is {refund['status']}: it cannot fail now.")
        before, charge = copy.deepcopy(refund), self._objects[refund["charge"]]
        txn = self._objects[refund["balance_transaction"]]
        desc = f"REFUND FAILURE FOR CHARGE ({charge['id']})"
        money = {"rate": txn["exchange_rate"], "currency": txn["currency"], "desc": desc}
        failure = self._txn("refund_failure", refund_id, -txn["amount"], "refund_failure", **money)
        refund.update(status="failed", failure_reason="expired_or_canceled_card")
        refund["failure_balance_transaction"] = failure["id"]
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = False
        self._emit("refund.failed", refund)
        self._emit("refund.updated", refund, before)
        self._emit("charge.refund.updated", refund, before)
        return refund

    # disputes --------------------------------------------------------------------------------
    @locked
    def dispute(self, charge_id: str, *, inquiry: bool = False) -> Obj:
        charge = self._get(charge_id, "charge")
        if charge["status"] != "succeeded" or self._all("dispute", charge=charge_id):
            raise bad(f"Charge {charge_id} cannot be disputed (again).")
        brand, kind = charge["payment_method_details"]["card"]["brand"], "needs_response"
        dispute = self._new("dispute", "dp", amount=charge["amount"], currency=charge["currency"])
        dispute.update(charge=charge_id, payment_intent=charge["payment_intent"])
        dispute.update(reason="general" if inquiry else "fraudulent", is_charge_refundable=inquiry)
        dispute.update(status="warning_" + kind if inquiry else kind, balance_transactions=[])
        case = "inquiry" if inquiry else "chargeback"
        card = {"brand": brand, "network": brand, "case_type": case, "network_reason_code": None}
        card["network_reason_code"] = None if inquiry else "10.4"
        dispute["payment_method_details"] = {"type": "card", "card": card}
        dispute["evidence_details"].update(due_by=dispute["created"] + 7 * 86400)
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute)
        if not inquiry:
            settled, rate = self._settle(dispute["amount"], dispute["currency"])
            money = {"fee": self.dispute_fee, "fee_desc": "Dispute fee", "rate": rate}
            desc = f"Chargeback withdrawal for {charge_id}"
            txn = self._txn("adjustment", dispute["id"], -settled, "dispute", **money, desc=desc)
            dispute["balance_transactions"].append(copy.deepcopy(txn))
            self._emit("charge.dispute.funds_withdrawn", dispute)
        return dispute

    @locked
    def close_dispute(self, dispute_id: str, *, won: bool) -> Obj:
        dispute = self._get(dispute_id, "dispute")
        if dispute["status"] not in _OPEN_DISPUTE:
            raise bad(f"Dispute {dispute_id} is already closed ({dispute['status']}).")
        dispute["is_charge_refundable"] = False
        if dispute["payment_method_details"]["card"]["case_type"] == "inquiry":
            dispute.update(status="warning_closed", is_charge_refundable=True)
        elif won:
            dispute["status"] = "won"
            settled, rate = self._settle(dispute["amount"], dispute["currency"])
            desc = f"Chargeback reversal for {dispute['charge']}"
            money = {"rate": rate, "desc": desc}
            txn = self._txn("adjustment", dispute_id, settled, "dispute_reversal", **money)
            dispute["balance_transactions"].append(copy.deepcopy(txn))
            self._emit("charge.dispute.funds_reinstated", dispute)
        else:
            dispute["status"] = "lost"
        self._emit("charge.dispute.closed", dispute)
        return dispute

    # payouts ---------------------------------------------------------------------------------
    def _payout(self, amount: int | None, automatic: bool = False, **fields: Any) -> Obj:
        currency = self.settlement_currency
        available = self._balance().get(currency, 0)
        amount = available if amount is None else amount
        if not 0 < amount <= available:
            message = f"Insufficient funds: {amount} asked, {available} available."
            raise bad(message, "amount", "balance_insufficient")
        payout = self._new("payout", "po", amount=amount, currency=currency, **fields)
        payout.update(automatic=automatic, destination=new_id("ba"), status="pending")
        payout.update(arrival_date=payout["created"] + 2 * 86400)
        payout["reconciliation_status"] = "in_progress" if automatic else "not_applicable"
        txn = self._txn("payout", payout["id"], -amount, "payout", desc="STRIPE PAYOUT")
        payout["balance_transaction"] = txn["id"]
        for t in self._all("balance_transaction") if automatic else [txn]:
            self._txn_payout.setdefault(t["id"], payout["id"])  # what the payout paid out
        self._emit("payout.created", payout)
        return payout

    @locked
    def create_payout(self, amount: int | None = None) -> Obj:
        """Without an amount: an automatic payout of the whole available balance."""
        return self._payout(amount, automatic=amount is None)

    def _settle_payout(self, payout_id: str, status: str, **fields: Any) -> Obj:
        """paid, or money back: failed (even once paid) or canceled (while pending)."""
        payout = self._get(payout_id, "payout")
        allowed = {"paid": ("pending", "in_transit"), "canceled": ("pending",)}
        if payout["status"] not in allowed.get(status, ("pending", "in_transit", "paid")):
            raise bad(f"Payout {payout_id} is {payout['status']}.", code="payout_not_pending")
        before = copy.deepcopy(payout)
        payout.update(status=status, **fields)
        if status != "paid":
            back = {"currency": payout["currency"], "desc": f"Payout {status}"}
            kind = "payout_failure" if status == "failed" else "payout_cancel"
            txn = self._txn(kind, payout_id, payout["amount"], "payout_reversal", **back)
            payout["failure_balance_transaction"] = txn["id"]
        elif payout["automatic"]:
            payout["reconciliation_status"] = "completed"
        self._emit(f"payout.{status}", payout)
        if status != "paid":
            self._emit("payout.updated", payout, before)
        return payout

    @locked
    def pay_payout(self, payout_id: str) -> Obj:
        trace = {"status": "supported", "value": new_id("t", 12)}
        return self._settle_payout(payout_id, "paid", trace_id=trace)

    @locked
    def fail_payout(self, payout_id: str) -> Obj:
        message = "The bank account has been closed."
        return self._settle_payout(
            payout_id, "failed", failure_code="account_closed", failure_message=message
        )

    @locked
    def cancel_payout(self, payout_id: str) -> Obj:
        return self._settle_payout(payout_id, "canceled")

    # expansion and lists ---------------------------------------------------------------------
    def _include(self, obj: Obj, name: str) -> Any:
        ident = obj["id"]
        if name == "payments":
            data, url = self._all("invoice_payment", invoice=ident), "/v1/invoice_payments"
            url += f"?invoice={ident}"
        else:
            data, url = self._all("refund", charge=ident), f"/v1/charges/{ident}/refunds"
        return {"object": "list", "data": copy.deepcopy(data), "has_more": False, "url": url}

    def _expand(self, obj: Obj, paths: list[str]) -> Obj:
        out = copy.deepcopy(obj)
        for path in paths:
            self._expand_at(out, path.split("."), path, 0)
        return out

    def _expand_at(self, node: Any, parts: list[str], path: str, depth: int) -> None:
        """Expand `parts` under `node`: an id becomes its object, an includable field appears,
        `data` walks a list's elements. Stripe allows at most four levels, counting every
        segment of the path (its docs: `data.invoice.subscription.default_source` is the
        deepest allowed when listing charges)."""
        if len(path.split(".")) > 4:
            raise bad(f"You cannot expand more than 4 levels of a property ({path}).", "expand")
        if not parts or node is None:
            return
        if isinstance(node, list):
            for element in node:
                self._expand_at(element, parts, path, depth)
            return
        key, rest = parts[0], parts[1:]
        if not isinstance(node, dict):
            raise bad(f"This property cannot be expanded ({path}).", "expand")
        if node.get("object") == "list" and key == "data":
            return self._expand_at(node["data"], rest, path, depth)
        value = node.get(key)
        if key in INCLUDABLE.get(node.get("object", ""), ()) and key not in node:
            node[key], depth = self._include(node, key), depth + 1
        elif isinstance(value, str) and value in self._objects:
            node[key], depth = copy.deepcopy(self._objects[value]), depth + 1
        elif key not in node or isinstance(value, str | int | float):
            raise bad(f"This property cannot be expanded ({path}).", "expand")
        if depth > 4:
            raise bad(f"You cannot expand more than 4 levels of a property ({path}).", "expand")
        self._expand_at(node[key], rest, path, depth)

    def _list(self, kind: str, p: Obj, keep: Callable[[Obj], bool] | None = None,
              **equal: Any) -> Obj:  # fmt: skip
        """One page of a list, newest first, cut as Stripe's cursor pagination cuts it."""
        limit = as_int(p.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise bad("limit must be between 1 and 100.", "limit", "parameter_invalid_integer")
        wanted = {k: v for k, v in equal.items() if v is not None}
        items = [o for o in self._all(kind, **wanted) if created_ok(o, p.get("created"))]
        items = [o for o in items if keep is None or keep(o)]
        ids = [o["id"] for o in items]
        for cursor in ("starting_after", "ending_before"):
            if p.get(cursor) and p[cursor] not in ids:
                raise missing(kind, p[cursor], cursor)
        if p.get("starting_after"):
            rest = items[ids.index(p["starting_after"]) + 1 :]
            data, more = rest[:limit], len(rest) > limit
        elif p.get("ending_before"):
            rest = items[: ids.index(p["ending_before"])]
            data, more = rest[-limit:], len(rest) > limit
        else:
            data, more = items[:limit], len(items) > limit
        return {"object": "list", "data": data, "has_more": more, "url": f"/v1/{kind}s"}
