"""The HTTP side: Stripe's routes, strict parameters (the SDK's own params TypedDicts),
idempotency keys, and the handlers turning requests into ledger operations."""

from __future__ import annotations

import copy
import fnmatch
import json
import time
import traceback
from functools import cache
from typing import Any

import stripe
import stripe.params
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import model
from .forms import FormError, decode
from .ledger import Ledger
from .model import Obj, StripeError, as_int, bad, missing, new_id

_PMT_GONE = (
    "The parameter `payment_method_types` is no longer supported at API version "
    f"{model.API_VERSION}. Use `allowed_payment_method_types` to restrict the payment methods, "
    "or leave it out to use dynamic payment methods (configured in the Dashboard)."
)
_OPEN = ("requires_payment_method", "requires_confirmation", "requires_action")
_MIN_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30}
_CANCELED = ("canceled", "incomplete_expired")
_SUB_UNMODELLED = "trial_end trial_period_days trial_from_plan billing_cycle_anchor cancel_at "
_SUB_UNMODELLED += "backdate_start_date add_invoice_items discounts pause_collection default_source"
_LISTS = {"refund": ("charge", "payment_intent"), "dispute": ("charge", "payment_intent")}
_LISTS |= {"payout": ("status",), "charge": ("customer", "payment_intent")}  # equality filters
ROUTES: list[tuple[str, str, str, str, str | None]] = []  # method, path, handler, params, kind


def _routes(collection: str, cls: str, *ops: str) -> None:
    base, kind = f"/v1/{collection}", collection[:-1]
    for op in ops:
        if op == "get":
            ROUTES.append(("GET", f"{base}/<id>", "retrieve", cls + "Retrieve", kind))
        elif op == "list":
            plain = kind in _LISTS
            handler, arg = ("list", kind) if plain else (f"list_{kind}", None)
            ROUTES.append(("GET", base, handler, cls + "List", arg))
        else:
            path = {"create": base, "update": f"{base}/<id>"}.get(op, f"{base}/<id>/{op}")
            ROUTES.append(("POST", path, f"{kind}_{op}", cls + op.title(), None))


_routes("payment_intents", "PaymentIntent", "create", "get", "update", "confirm", "cancel")
_routes("setup_intents", "SetupIntent", "create", "get", "confirm")
_routes("payment_methods", "PaymentMethod", "get", "attach")
_routes("customers", "Customer", "create", "get", "update")
_routes("products", "Product", "create", "get")
_routes("plans", "Plan", "create", "get")
_routes("subscriptions", "Subscription", "create", "get", "update")
_routes("invoices", "Invoice", "get")
_routes("invoice_payments", "InvoicePayment", "get", "list")
_routes("charges", "Charge", "get", "list")
_routes("refunds", "Refund", "create", "get", "list")
_routes("disputes", "Dispute", "get", "list")
_routes("payouts", "Payout", "create", "get", "list")
_routes("balance_transactions", "BalanceTransaction", "get", "list")
_routes("events", "Event", "get", "list")
ROUTES.append(("DELETE", "/v1/customers/<id>", "customer_delete", "CustomerDelete", None))
ROUTES.append(("DELETE", "/v1/subscriptions/<id>", "sub_delete", "SubscriptionCancel", None))
ROUTES.append(("GET", "/v1/balance", "balance", "BalanceRetrieve", None))


@cache
def allowed_params(cls: str) -> frozenset[str]:
    """Top-level parameters of the SDK's params class, without RequestOptions' keys."""
    fields = getattr(stripe.params, cls + "Params").__annotations__
    return frozenset(fields) - frozenset(stripe.RequestOptions.__annotations__)


def check_params(handler: str, cls: str, params: Obj) -> None:
    intent = handler.startswith(("payment_intent_", "setup_intent_"))
    if intent and "payment_method_types" in params:
        raise bad(_PMT_GONE, "payment_method_types", "payment_method_types_no_longer_supported")
    for name in params:
        if name not in allowed_params(cls):
            raise bad(f"Received unknown parameter: {name}", name, "parameter_unknown")


def required(p: Obj, name: str) -> Any:
    if p.get(name) in (None, ""):
        raise bad(f"Missing required param: {name}.", name, "parameter_missing")
    return p[name]


def as_bool(value: Any, param: str) -> bool:
    if value not in (True, False, None, "", "true", "false"):
        raise bad(f"Invalid boolean: {value}", param, "parameter_invalid_boolean")
    return value in (True, "true")


def metadata(current: Obj | None, value: Any) -> Obj:
    """Stripe's metadata update: keys merge, an empty value deletes its key, "" clears all."""
    if value in ("", None):
        return {} if value == "" else dict(current or {})
    if not isinstance(value, dict):
        raise bad("Invalid metadata: must be a hash.", "metadata")
    merged = {**(current or {}), **{k: str(v) for k, v in value.items()}}
    return {k: v for k, v in merged.items() if v != ""}


def pick(p: Obj, *names: str) -> Obj:
    """The named parameters given, "" as None."""
    return {k: p[k] or None for k in names if k in p}


def unmodelled(p: Obj, *names: str, why: str = "") -> None:
    """Real parameters whose effect the stand-in does not model: refused, never ignored."""
    for name in names:
        if p.get(name) not in (None, ""):
            message = f"stand-in: `{name}` {why or 'is real but not modelled here'}."
            raise bad(message, name, "parameter_unsupported_by_standin")


class Handlers(Ledger):
    """`_api_<handler>(params, id?, kind?)` → the object to answer with."""

    def _api_retrieve(self, p: Obj, id: str, kind: str) -> Obj:
        obj = self._objects.get(id)
        if obj is None or obj["object"] != kind:  # (a deleted customer answers as deleted)
            raise missing(kind, id)
        return obj

    def _api_list(self, p: Obj, kind: str) -> Obj:
        return self._list(kind, p, **{k: p.get(k) for k in _LISTS[kind]})

    def _api_balance(self, p: Obj) -> Obj:
        totals = self._balance() or {self.settlement_currency: 0}
        money = [{"amount": v, "currency": c} for c, v in totals.items()]
        available = [{**m, "source_types": {"card": m["amount"]}} for m in money]
        return model.build("balance", None, available=available, pending=[])

    # payment and setup intents ---------------------------------------------------------------
    def _intent_fields(self, p: Obj, intent: Obj | None = None) -> Obj:
        unmodelled(p, "capture_method", "confirmation_token", "payment_method_data")
        fields = pick(p, "description", "receipt_email", "usage")
        if p.get("customer"):
            fields["customer"] = self._get(p["customer"], "customer", "customer")["id"]
        if p.get("payment_method"):
            fields["payment_method"] = self._payment_method(p["payment_method"])["id"]
        if "metadata" in p:
            fields["metadata"] = metadata(intent and intent["metadata"], p["metadata"])
        if "allowed_payment_method_types" in p:
            allowed = fields["allowed_payment_method_types"] = p["allowed_payment_method_types"]
            fields["payment_method_types"] = allowed or ["card"]
            fields["automatic_payment_methods"] = None if allowed else {"enabled": True}
        if "amount" in p or "currency" in p:
            intent = intent or {}
            currency = str(p.get("currency") or intent["currency"]).lower()
            amount = as_int(p.get("amount") or intent["amount"], "amount")
            if amount < _MIN_AMOUNT.get(currency, 1):
                raise bad("Amount below the currency's minimum.", "amount", "amount_too_small")
            fields.update(amount=amount, currency=currency)
        return fields

    def _api_payment_intent_create(self, p: Obj) -> Obj:
        required(p, "amount")
        required(p, "currency")
        fields = {"automatic_payment_methods": {"enabled": True}, **self._intent_fields(p)}
        pi = self._new_pi(fields.pop("amount"), fields.pop("currency"), **fields)
        self._emit("payment_intent.created", pi)
        if as_bool(p.get("confirm"), "confirm"):
            return self._api_payment_intent_confirm({}, pi["id"])
        return pi

    def _intent(self, id: str, kind: str, *statuses: str) -> Obj:
        intent = self._get(id, kind)
        if intent["status"] not in statuses:
            message = f"This {kind}'s status is {intent['status']}: it cannot be changed so."
            raise bad(message, code=f"{kind}_unexpected_state")
        return intent

    def _api_payment_intent_update(self, p: Obj, id: str) -> Obj:
        pi = self._intent(id, "payment_intent", *_OPEN)
        pi.update(self._intent_fields(p, pi))
        if pi["payment_method"] and pi["status"] == "requires_payment_method":
            pi["status"] = "requires_confirmation"
        return pi

    def _confirmable(self, p: Obj, intent: Obj) -> Obj:
        unmodelled(p, "confirmation_token", "payment_method_data")
        ref = {"payment_method": p.get("payment_method") or intent["payment_method"]}
        return self._payment_method(required(ref, "payment_method"))

    def _api_payment_intent_confirm(self, p: Obj, id: str) -> Obj:
        pi = self._intent(id, "payment_intent", *_OPEN)
        pm = self._confirmable(p, pi)
        pi.update(pick(p, "receipt_email", "setup_future_usage"))
        if self._confirm(pi, pm) == "declined":
            raise self._card_error(pi["last_payment_error"], payment_intent=copy.deepcopy(pi))
        return pi

    def _api_payment_intent_cancel(self, p: Obj, id: str) -> Obj:
        pi = self._intent(id, "payment_intent", *_OPEN, "requires_capture", "processing")
        pi.update(status="canceled", canceled_at=model.now(), next_action=None)
        pi["cancellation_reason"] = p.get("cancellation_reason") or None
        self._emit("payment_intent.canceled", pi)
        return pi

    def _api_setup_intent_create(self, p: Obj) -> Obj:
        fields = {"automatic_payment_methods": {"enabled": True}, **self._intent_fields(p)}
        fields = {"customer": None, "usage": "off_session", **fields}
        si = self._new("setup_intent", "seti", **fields)
        si["status"] = "requires_" + ("confirmation" if si["payment_method"] else "payment_method")
        si["client_secret"] = f"{si['id']}_secret_{new_id('s', 25)[2:]}"
        self._emit("setup_intent.created", si)
        if as_bool(p.get("confirm"), "confirm"):
            return self._api_setup_intent_confirm({}, si["id"])
        return si

    def _api_setup_intent_confirm(self, p: Obj, id: str) -> Obj:
        si = self._intent(id, "setup_intent", *_OPEN)
        pm = self._confirmable(p, si)
        kind = self._pm_kind.get(pm["id"], "ok")
        si.update(payment_method=pm["id"], last_setup_error=None, next_action=None)
        if kind == "decline":  # (a charge_fail card sets up fine: only its charges fail)
            error = {**model.DEFAULTS["card_error"], "payment_method": copy.deepcopy(pm)}
            si.update(status="requires_payment_method", payment_method=None, last_setup_error=error)
            self._emit("setup_intent.setup_failed", si)
            raise self._card_error(error, setup_intent=copy.deepcopy(si))
        if kind == "3ds":
            sdk = {"type": "three_d_secure_redirect", "source": new_id("src")}
            si.update(status="requires_action")
            si["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": sdk}
            self._emit("setup_intent.requires_action", si)
            return si
        if si["customer"]:
            self._attach(pm, self._objects[si["customer"]])
        si["status"] = "succeeded"
        self._emit("setup_intent.succeeded", si)
        return si

    def _api_payment_method_attach(self, p: Obj, id: str) -> Obj:
        pm = self._payment_method(id)
        self._attach(pm, self._get(required(p, "customer"), "customer", "customer"))
        return pm

    # customers, products, plans --------------------------------------------------------------
    def _customer_fields(self, customer: Obj, p: Obj) -> None:
        unmodelled(p, "source", "default_source", "balance", "cash_balance", "test_clock")
        customer.update(pick(p, "email", "name", "description", "phone"))
        if "metadata" in p:
            customer["metadata"] = metadata(customer["metadata"], p["metadata"])
        given = None
        if p.get("payment_method"):
            given = self._payment_method(p["payment_method"])
            self._attach(given, customer)
        settings = p.get("invoice_settings") or {}
        param = "invoice_settings[default_payment_method]"
        if "default_payment_method" not in settings:
            return
        ref, pm = settings["default_payment_method"], None
        if ref:
            pm = given if ref == p.get("payment_method") else self._payment_method(ref, param)
            if pm["customer"] is None and ref.startswith("pm_card_"):
                self._attach(pm, customer)
            if pm["customer"] != customer["id"]:
                message = f"The payment method {ref} must be attached to the customer first."
                raise bad(message, param, "resource_missing")
        customer["invoice_settings"]["default_payment_method"] = pm and pm["id"]

    def _api_customer_create(self, p: Obj) -> Obj:
        prefix = new_id("p", 8)[2:].upper()
        customer = model.build("customer", "cus", email=None, name=None, invoice_prefix=prefix)
        self._customer_fields(customer, p)  # a declined card: no customer
        self._emit("customer.created", self._put(customer))
        return customer

    def _api_customer_update(self, p: Obj, id: str) -> Obj:
        customer = self._get(id, "customer")
        before = copy.deepcopy(customer)
        self._customer_fields(customer, p)
        self._emit("customer.updated", customer, before)
        return customer

    def _api_customer_delete(self, p: Obj, id: str) -> Obj:
        customer = self._get(id, "customer")
        for sub in self._all("subscription", customer=id):
            if sub["status"] not in _CANCELED:
                self._end(sub)
        self._emit("customer.deleted", customer)
        self._objects[id] = {"id": id, "object": "customer", "deleted": True}
        return self._objects[id]

    def _fresh(self, p: Obj, prefix: str, what: str) -> str:
        ident = p.get("id") or new_id(prefix, 14 if prefix == "prod" else 24)
        if ident in self._objects:
            raise bad(f"{what} already exists.", "id", "resource_already_exists")
        return str(ident)

    def _api_product_create(self, p: Obj) -> Obj:
        ident, name = self._fresh(p, "prod", "Product"), required(p, "name")
        product = self._new("product", None, id=ident, name=name, **pick(p, "description"))
        product.update(active=as_bool(p.get("active", True), "active"), updated=product["created"])
        product["metadata"] = metadata({}, p.get("metadata"))
        self._emit("product.created", product)
        return product

    def _api_plan_create(self, p: Obj) -> Obj:
        ident, interval = self._fresh(p, "price", "Plan"), required(p, "interval")
        if interval not in ("day", "week", "month", "year"):
            raise bad(f"Invalid interval: {interval}", "interval")
        amount, currency = as_int(required(p, "amount"), "amount"), required(p, "currency").lower()
        plan = self._new("plan", None, id=ident, amount=amount, currency=currency)
        plan["interval"] = interval
        plan.update(amount_decimal=str(amount), metadata=metadata({}, p.get("metadata")))
        plan["product"] = self._get(required(p, "product"), "product", "product")["id"]
        plan["interval_count"] = as_int(p.get("interval_count", 1), "interval_count")
        plan.update(active=as_bool(p.get("active", True), "active"), **pick(p, "nickname"))
        self._emit("plan.created", plan)
        return plan

    # subscriptions ---------------------------------------------------------------------------
    def _api_subscription_create(self, p: Obj) -> Obj:
        unmodelled(p, *_SUB_UNMODELLED.split())
        if p.get("collection_method") not in (None, "charge_automatically"):
            unmodelled(p, "collection_method")
        if p.get("payment_behavior") not in (None, "allow_incomplete"):
            unmodelled(p, "payment_behavior", why="is modelled for allow_incomplete only")
        customer = self._get(required(p, "customer"), "customer", "customer")
        specs, pm = required(p, "items"), None
        if not isinstance(specs, list):
            raise bad("Invalid array", "items")
        if p.get("default_payment_method"):
            pm = self._payment_method(p["default_payment_method"], "default_payment_method")
            self._attach(pm, customer)
        fields = {"metadata": metadata({}, p.get("metadata")), **pick(p, "description")}
        return self._subscribe(customer, specs, default_payment_method=pm and pm["id"], **fields)

    def _api_subscription_update(self, p: Obj, id: str) -> Obj:
        sub, at = self._get(id, "subscription"), model.now()
        if sub["status"] in _CANCELED and set(p) - {"metadata", "expand"}:
            raise bad("A canceled subscription can only update its metadata.")
        unmodelled(p, *_SUB_UNMODELLED.split())
        before, items = copy.deepcopy(sub), sub["items"]["data"]
        if "metadata" in p:
            sub["metadata"] = metadata(sub["metadata"], p["metadata"])
        if p.get("default_payment_method"):
            pm = self._payment_method(p["default_payment_method"], "default_payment_method")
            self._attach(pm, self._objects[sub["customer"]])
            sub["default_payment_method"] = pm["id"]
        if "cancel_at_period_end" in p:
            flag = as_bool(p["cancel_at_period_end"], "cancel_at_period_end")
            end = items[0]["current_period_end"] if flag else None
            sub.update(cancel_at_period_end=flag, cancel_at=end, canceled_at=at if flag else None)
            sub["cancellation_details"]["reason"] = "cancellation_requested" if flag else None
        for i, spec in enumerate(p.get("items") or []):
            param = f"items[{i}]"
            if not isinstance(spec, dict) or not spec.get("id") or spec.get("deleted"):
                unmodelled({param: True}, param, why="adds or deletes an item: not modelled")
            item = next((it for it in items if it["id"] == spec["id"]), None)
            if item is None:
                raise missing("subscription_item", spec["id"], f"{param}[id]")
            if spec.get("plan") or spec.get("price"):
                plan, old = self._plan_of(spec, f"{param}[plan]"), item["plan"]
                if plan["currency"] != sub["currency"]:
                    raise bad("A subscription's currency cannot change.", f"{param}[plan]")
                if any(plan[k] != old[k] for k in ("interval", "interval_count")):
                    why = "changes the interval (a new period, invoiced now): not modelled"
                    unmodelled({param: True}, param, why=why)
                item.update(plan=copy.deepcopy(plan), price=self._price(plan))
            if "metadata" in spec:
                item["metadata"] = metadata(item["metadata"], spec["metadata"])
            if "quantity" in spec:
                item["quantity"] = as_int(spec["quantity"], f"{param}[quantity]")
        self._emit("customer.subscription.updated", sub, before)  # new amounts: from renewal on
        return sub

    def _api_sub_delete(self, p: Obj, id: str) -> Obj:
        sub = self._get(id, "subscription")
        if sub["status"] in _CANCELED:
            raise missing("subscription", id)
        unmodelled(p, "invoice_now", "prorate")
        details = p.get("cancellation_details") or {}
        sub["cancellation_details"].update(pick(details, "comment", "feedback"))
        self._end(sub)
        return sub

    # invoice payments, refunds, payouts, balance transactions, events ------------------------
    def _api_list_invoice_payment(self, p: Obj) -> Obj:
        payment = p.get("payment") or {}
        if not isinstance(payment, dict):
            raise bad("Invalid hash", "payment")
        equal = {"invoice": p.get("invoice"), "status": p.get("status")}
        keep = lambda o: payment.items() <= o["payment"].items()  # noqa: E731
        return self._list("invoice_payment", p, keep, **equal)

    def _api_refund_create(self, p: Obj) -> Obj:
        unmodelled(p, "instructions_email", "origin", "refund_application_fee", "reverse_transfer")
        if p.get("charge"):
            charge = self._get(p["charge"], "charge", "charge")
        else:
            pi = self._get(required(p, "payment_intent"), "payment_intent", "payment_intent")
            if pi["status"] != "succeeded":
                message = f"PaymentIntent {pi['id']} has no successful charge to refund."
                raise bad(message, "payment_intent", "charge_not_refundable")
            charge = self._objects[pi["latest_charge"]]
        reason = p.get("reason") or None
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise bad(f"Invalid reason: {reason}", "reason")
        amount = as_int(p["amount"], "amount") if p.get("amount") not in (None, "") else None
        return self._refund(charge, amount, reason=reason, metadata=metadata({}, p.get("metadata")))

    def _api_payout_create(self, p: Obj) -> Obj:
        unmodelled(p, "destination", "source_type", "payout_method")
        if p.get("method") not in (None, "standard"):
            unmodelled(p, "method")
        currency = str(required(p, "currency")).lower()
        if currency != self.settlement_currency:
            raise bad(f"You have no {currency} balance.", "currency", "balance_insufficient")
        fields = {"metadata": metadata({}, p.get("metadata")), "description": "STRIPE PAYOUT"}
        fields.update(pick(p, "description", "statement_descriptor"))
        return self._payout(as_int(required(p, "amount"), "amount"), **fields)

    def _api_list_balance_transaction(self, p: Obj) -> Obj:
        payout, currency = p.get("payout"), (p.get("currency") or "").lower() or None
        equal = {"type": p.get("type"), "source": p.get("source"), "currency": currency}
        keep = lambda t: payout in (None, self._txn_payout.get(t["id"]))  # noqa: E731
        return self._list("balance_transaction", p, keep, **equal)

    def _api_list_event(self, p: Obj) -> Obj:
        types = p.get("types") or ([p["type"]] if p.get("type") else ["*"])
        keep = lambda e: any(fnmatch.fnmatchcase(e["type"], t) for t in types)  # noqa: E731
        return self._list("event", p, keep)


class Api:
    """The WSGI application serving a Handlers."""

    def __init__(self, standin: Handlers) -> None:
        self.standin = standin
        self.urls = Map([Rule(r[1], endpoint=(r[2], r[3], r[4]), methods=[r[0]]) for r in ROUTES])

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request, s = Request(environ), self.standin
        with s._lock:  # recorded as it arrives, then answered `latency` seconds later
            s.requests.append((request.method, request.path))
        if s.latency > 0:
            time.sleep(s.latency)
        request_id = new_id("req", 14)
        status, body, replayed = self._answer(request, request_id)
        headers = {"Request-Id": request_id, "Stripe-Version": model.API_VERSION}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        response = Response(json.dumps(body), status, headers, mimetype="application/json")
        return response(environ, start_response)

    def _answer(self, request: Request, request_id: str) -> tuple[int, Obj, bool]:
        s = self.standin
        try:
            self._authorize(request)
            (handler, cls, kind), args = self.urls.bind_to_environ(request.environ).match()
            raw = request.get_data(as_text=True) if request.method == "POST" else ""
            params = decode(raw or request.query_string.decode())
            check_params(handler, cls, params)
        except HTTPException:
            message = f"Unrecognized request URL ({request.method}: {request.path})."
            return 404, {"error": {"type": "invalid_request_error", "message": message}}, False
        except FormError as exc:
            return 400, {"error": bad(f"Invalid parameter name: {exc}").body}, False
        except StripeError as exc:
            return exc.status, {"error": exc.body}, False
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        with s._lock:
            if key and (key, request.path) in s._idempotent:
                seen, status, body = s._idempotent[(key, request.path)]
                if seen == params:
                    return status, copy.deepcopy(body), True
                message = "Keys for idempotent requests can only be used with the same parameters"
                message += f" they were first used with. Try using a key other than '{key}'."
                return 400, {"error": {"type": "idempotency_error", "message": message}}, False
            s._ctx.request = {"id": request_id, "idempotency_key": key}
            try:
                args |= {"kind": kind} if kind else {}
                result = getattr(s, "_api_" + handler)(params, **args)
                expand = params.get("expand") or []
                paths = [expand] if isinstance(expand, str) else expand
                status, body = 200, s._expand(result, paths)
            except StripeError as exc:
                status, body = exc.status, {"error": exc.body}
            except Exception as exc:  # a bug of the stand-in: say so loudly
                traceback.print_exc()
                error = {"type": "api_error", "message": f"stand-in: {exc!r}"}
                status, body = 500, {"error": error}
            finally:
                s._ctx.request = None
            if key:
                s._idempotent[(key, request.path)] = (params, status, copy.deepcopy(body))
        return status, body, False

    def _authorize(self, request: Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer sk_test_"):
            message = f"Invalid API Key provided: {auth[7:15]}…"
            raise StripeError(401, message if auth else "You did not provide an API key.")
        version = request.headers.get("Stripe-Version")
        if version and version != model.API_VERSION:
            message = f"stand-in: API version {model.API_VERSION} only, not {version}."
            raise bad(message, code="api_version_unsupported")
