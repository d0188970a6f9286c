"""The Stripe stand-in (tests/standin) tested through the real SDK over real HTTP."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
import stripe
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.standin import API_VERSION, StripeStandin

SECRET = "whsec_standin_selftest"
SDK_CLASSES = {
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "balance_transaction": stripe.BalanceTransaction,
    "invoice": stripe.Invoice,
    "invoice_payment": stripe.InvoicePayment,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "payout": stripe.Payout,
    "subscription": stripe.Subscription,
    "customer": stripe.Customer,
    "payment_method": stripe.PaymentMethod,
    "setup_intent": stripe.SetupIntent,
    "plan": stripe.Plan,
    "product": stripe.Product,
    "event": stripe.Event,
}


def plain(obj: Any) -> dict[str, Any]:
    return json.loads(str(obj))


def fields_of(cls: type) -> set[str]:
    """The fields of an SDK resource class (its annotations, inherited ones included)."""
    return {k for c in cls.__mro__ for k in getattr(c, "__annotations__", {})}


def even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class Receiver:
    """A tiny webhook endpoint: verifies each signature as the service would."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        payload = request.get_data(as_text=True)
        try:
            event = stripe.Webhook.construct_event(
                payload, request.headers.get("Stripe-Signature"), SECRET
            )
        except stripe.SignatureVerificationError:
            return Response("bad signature", 400)(environ, start_response)
        with self.lock:
            self.events.append(plain(event))
        return Response("ok", 200)(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandin]:
    s = StripeStandin(settlement_currency="eur").start()
    yield s
    s.stop()


@pytest.fixture
def v1(standin: StripeStandin) -> Any:
    standin.reset()
    client = stripe.StripeClient(
        "sk_test_selftest", base_addresses={"api": standin.base}, max_network_retries=0
    )
    return client.v1


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def pay(v1: Any, amount: int = 1000, currency: str = "usd", pm: str = "pm_card_visa") -> Any:
    pi = v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "metadata": {"contribution_id": "c1"},
            "allowed_payment_method_types": ["card"],
        }
    )
    return v1.payment_intents.confirm(pi.id, params={"payment_method": pm})


def subscriber(v1: Any, pm: str = "pm_card_visa", amount: int = 500) -> tuple[str, str]:
    v1.products.create(params={"id": "donations-recurring", "name": "Recurring contribution"})
    plan = v1.plans.create(
        params={
            "id": f"donation-usd-month-{amount}",
            "amount": amount,
            "currency": "usd",
            "interval": "month",
            "product": "donations-recurring",
        }
    )
    customer = v1.customers.create(params={"email": "donor@example.org"})
    seti = v1.setup_intents.create(
        params={"customer": customer.id, "usage": "off_session", "metadata": {"k": "v"}}
    )
    seti = v1.setup_intents.confirm(seti.id, params={"payment_method": pm})
    assert seti.status == "succeeded"
    v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": seti.payment_method}}
    )
    return customer.id, plan.id


def test_one_off_payment_settled_in_eur(v1: Any, standin: StripeStandin) -> None:
    pi = pay(v1)
    assert pi.status == "succeeded" and pi.amount_received == 1000
    assert pi.client_secret.startswith(f"{pi.id}_secret_")
    assert pi.payment_method.startswith("pm_") and pi.payment_method != "pm_card_visa"
    charge = v1.charges.retrieve(pi.latest_charge, params={"expand": ["balance_transaction"]})
    assert (charge.status, charge.paid, charge.captured, charge.payment_intent) == (
        "succeeded",
        True,
        True,
        pi.id,
    )
    assert charge.metadata.to_dict() == {"contribution_id": "c1"}
    txn = charge.balance_transaction
    settled = even(Decimal(1000) * Decimal("0.92"))
    fee = even(settled * Decimal("0.029")) + 30
    assert (txn.type, txn.source, txn.currency, txn.amount) == ("charge", charge.id, "eur", settled)
    assert (txn.fee, txn.net, txn.exchange_rate) == (fee, settled - fee, 0.92)
    assert txn.fee_details[0].to_dict() == {
        "amount": fee,
        "currency": "eur",
        "type": "stripe_fee",
        "description": "Stripe processing fees",
        "application": None,
    }
    raw_pi, raw_charge = plain(v1.payment_intents.retrieve(pi.id)), plain(charge)
    assert "invoice" not in raw_pi and "charges" not in raw_pi
    assert "invoice" not in raw_charge and "refunds" not in raw_charge
    types = [e["type"] for e in standin.events]
    assert types == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    assert standin.events[-1]["api_version"] == API_VERSION
    assert standin.events[-1]["request"]["id"].startswith("req_")
    # A USD-settled account takes no conversion.
    standin.settlement_currency = "usd"
    usd = v1.charges.retrieve(pay(v1).latest_charge, params={"expand": ["balance_transaction"]})
    txn = usd.balance_transaction
    assert (txn.currency, txn.amount, txn.exchange_rate) == ("usd", 1000, None)


def test_refused_parameters_create_nothing(v1: Any, standin: StripeStandin) -> None:
    for create in (v1.payment_intents.create, v1.setup_intents.create):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            create(params={"amount": 500, "currency": "usd", "payment_method_types": ["card"]})
        assert refused.value.http_status == 400
        assert refused.value.code == "payment_method_types_no_longer_supported"
        assert "allowed_payment_method_types" in str(refused.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        v1.payment_intents.create(params={"amount": 500, "currency": "usd", "colour": "red"})
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "colour")
    assert unknown.value.user_message == "Received unknown parameter: colour"
    with pytest.raises(stripe.InvalidRequestError) as absent:
        v1.plans.retrieve("no-such-plan")
    assert (absent.value.http_status, absent.value.code) == (404, "resource_missing")
    assert standin.events == []
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("rk_live_x", base_addresses={"api": standin.base}).v1.balance.retrieve()


def test_declines_and_authentication(v1: Any, standin: StripeStandin) -> None:
    with pytest.raises(stripe.CardError) as declined:
        pay(v1, pm="pm_card_visa_chargeDeclined")
    assert declined.value.http_status == 402 and declined.value.code == "card_declined"
    pi = declined.value.error.payment_intent
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.message == "Your card was declined."
    charge = v1.charges.retrieve(pi.latest_charge)
    assert (charge.status, charge.balance_transaction) == ("failed", None)
    failed = ["charge.failed", "payment_intent.payment_failed"]
    assert [e["type"] for e in standin.events][-2:] == failed
    assert standin.balance() == {}
    action = pay(v1, pm="pm_card_threeDSecure2Required")
    assert action.status == "requires_action" and action.next_action.type == "use_stripe_sdk"
    assert action.latest_charge is None
    canceled = v1.payment_intents.cancel(action.id)
    assert canceled.status == "canceled" and standin.events[-1]["type"] == "payment_intent.canceled"


def test_subscription_invoice_reached_through_its_payments(v1: Any, standin: StripeStandin) -> None:
    customer, plan = subscriber(v1)
    standin.events.clear()
    sub = v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"plan": plan, "metadata": {"contribution_id": "c9"}}],
            "metadata": {"contribution_id": "c9"},
        }
    )
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.plan.id == plan and item.price.unit_amount == 500
    assert item.current_period_end > item.current_period_start
    assert "current_period_end" not in plain(sub)
    assert [e["type"] for e in standin.events] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    bare = plain(v1.invoices.retrieve(sub.latest_invoice))
    for gone in ("subscription", "charge", "payment_intent", "paid", "payments"):
        assert gone not in bare
    assert bare["parent"]["subscription_details"]["subscription"] == sub.id
    assert bare["lines"]["data"][0]["metadata"] == {"contribution_id": "c9"}
    assert bare["billing_reason"] == "subscription_create" and bare["amount_paid"] == 500
    # four path segments at most, `data` included: the invoice's payment's intent, then its
    # charge's money in a second request
    path = "payments.data.payment.payment_intent"
    invoice = v1.invoices.retrieve(sub.latest_invoice, params={"expand": [path]})
    payment = invoice.payments.data[0]
    assert (payment.status, payment.amount_paid, payment.is_default) == ("paid", 500, True)
    intent = payment.payment.payment_intent
    assert intent.metadata.to_dict() == {} and intent.customer == customer
    charge = v1.charges.retrieve(intent.latest_charge, params={"expand": ["balance_transaction"]})
    assert "invoice" not in plain(charge) and charge.metadata.to_dict() == {}
    assert charge.balance_transaction.amount == even(Decimal(500) * Decimal("0.92"))
    page = v1.invoice_payments.list(
        params={
            "payment": {"type": "payment_intent", "payment_intent": intent.id},
            "expand": ["data.invoice"],
        }
    )
    assert [p.invoice.id for p in page.data] == [invoice.id]
    with pytest.raises(stripe.InvalidRequestError, match="4 levels"):
        v1.invoices.retrieve(invoice.id, params={"expand": [path + ".latest_charge"]})
    # The next period.
    standin.events.clear()
    renewal = standin.renew(sub.id)
    assert renewal["billing_reason"] == "subscription_cycle" and renewal["status"] == "paid"
    renewed = v1.subscriptions.retrieve(sub.id)
    assert renewed["items"].data[0].current_period_start == item.current_period_end
    assert renewal["lines"]["data"][0]["period"]["start"] == item.current_period_end
    renewing = ["customer.subscription.updated", "invoice.created"]
    assert [e["type"] for e in standin.events][:2] == renewing
    declined = standin.renew(sub.id, decline=True)
    assert declined["status"] == "open" and declined["attempted"]
    assert v1.subscriptions.retrieve(sub.id).status == "past_due"
    canceled = v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at
    assert standin.events[-1]["type"] == "customer.subscription.deleted"


def test_subscription_with_a_failing_card_is_incomplete(v1: Any, standin: StripeStandin) -> None:
    customer, plan = subscriber(v1, pm="pm_card_chargeCustomerFail")
    standin.events.clear()
    sub = v1.subscriptions.create(params={"customer": customer, "items": [{"plan": plan}]})
    assert sub.status == "incomplete"
    invoice = v1.invoices.retrieve(sub.latest_invoice, params={"expand": ["payments"]})
    assert (invoice.status, invoice.attempted, invoice.attempt_count) == ("open", True, 1)
    assert invoice.payments.data[0].status == "open"
    assert [e["type"] for e in standin.events] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "charge.failed",
        "payment_intent.payment_failed",
        "invoice.payment_failed",
    ]
    with pytest.raises(stripe.CardError):
        v1.payment_methods.attach("pm_card_visa_chargeDeclined", params={"customer": customer})


def test_refunds_and_a_failed_refund(v1: Any, standin: StripeStandin) -> None:
    pi = pay(v1, amount=2000)
    refund = v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    txn = v1.balance_transactions.retrieve(refund.balance_transaction)
    assert (refund.status, txn.type, txn.amount, txn.fee) == ("succeeded", "refund", -460, 0)
    assert [e["type"] for e in standin.events][-2:] == ["charge.refunded", "refund.created"]
    standin.set_rate("usd", 0.9)  # the rest at today's rate
    rest = standin.refund(pi.latest_charge)
    assert rest["amount"] == 1500
    assert standin.get(rest["balance_transaction"])["amount"] == -1350
    with pytest.raises(stripe.InvalidRequestError):
        v1.refunds.create(params={"charge": pi.latest_charge, "amount": 1})
    failed = standin.fail_refund(rest["id"])
    assert failed["status"] == "failed" and failed["failure_reason"] == "expired_or_canceled_card"
    assert standin.get(failed["failure_balance_transaction"])["amount"] == 1350
    assert [e["type"] for e in standin.events][-3:] == [
        "refund.failed",
        "refund.updated",
        "charge.refund.updated",
    ]
    paths = ["refunds.data.balance_transaction", "refunds.data.failure_balance_transaction"]
    charge = v1.charges.retrieve(pi.latest_charge, params={"expand": paths})
    assert (charge.amount_refunded, charge.refunded) == (500, False)
    assert [r.id for r in charge.refunds.data] == [rest["id"], refund.id]  # newest first
    assert charge.refunds.data[0].failure_balance_transaction.type == "refund_failure"
    listed = v1.refunds.list(params={"charge": pi.latest_charge, "limit": 1})
    assert listed.has_more and [r.id for r in listed.auto_paging_iter()] == [rest["id"], refund.id]
    assert standin.balance() == {"eur": sum(t["net"] for t in standin.balance_transactions())}


def test_inquiries_and_chargebacks(v1: Any, standin: StripeStandin) -> None:
    inquiry = standin.dispute(pay(v1).latest_charge, inquiry=True)
    assert (inquiry["status"], inquiry["balance_transactions"]) == ("warning_needs_response", [])
    assert standin.close_dispute(inquiry["id"], won=True)["status"] == "warning_closed"
    won = standin.dispute(pay(v1).latest_charge)
    withdrawal = won["balance_transactions"][0]
    assert (won["status"], won["reason"], won["amount"], won["currency"]) == (
        "needs_response",
        "fraudulent",
        1000,
        "usd",
    )
    assert (withdrawal["type"], withdrawal["amount"]) == ("adjustment", -920)
    assert (withdrawal["fee"], withdrawal["net"]) == (1500, -2420)
    assert v1.charges.retrieve(won["charge"]).disputed
    standin.set_rate("usd", 0.95)
    closed = standin.close_dispute(won["id"], won=True)
    assert closed["status"] == "won" and closed["balance_transactions"][1]["amount"] == 950
    lost = standin.close_dispute(standin.dispute(pay(v1).latest_charge)["id"], won=False)
    assert lost["status"] == "lost" and len(lost["balance_transactions"]) == 1
    fetched = v1.disputes.retrieve(lost["id"], params={"expand": ["charge.balance_transaction"]})
    assert fetched.charge.balance_transaction.type == "charge"
    assert fetched.payment_method_details.card.case_type == "chargeback"
    chargeback = [e["type"] for e in standin.events if e["data"]["object"]["id"] == won["id"]]
    assert chargeback == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    ]
    with pytest.raises(stripe.InvalidRequestError, match="charged back"):
        v1.refunds.create(params={"charge": lost["charge"]})


def test_payouts_and_the_balance(v1: Any, standin: StripeStandin) -> None:
    for _ in range(3):
        pay(v1, amount=5000)
    available = standin.balance()["eur"]
    paid = standin.pay_payout(standin.create_payout(1000)["id"])
    assert paid["status"] == "paid" and paid["currency"] == "eur"
    assert paid["arrival_date"] == paid["created"] + 2 * 86400
    failed = standin.fail_payout(standin.create_payout(2000)["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "account_closed")
    canceled = standin.cancel_payout(standin.create_payout(3000)["id"])
    assert canceled["status"] == "canceled"
    assert standin.get(canceled["failure_balance_transaction"])["type"] == "payout_cancel"
    assert standin.balance()["eur"] == available - 1000
    everything = standin.create_payout()
    assert everything["amount"] == available - 1000 and standin.balance() == {"eur": 0}
    fetched = v1.payouts.retrieve(
        failed["id"], params={"expand": ["balance_transaction", "failure_balance_transaction"]}
    )
    assert (fetched.balance_transaction.amount, fetched.failure_balance_transaction.amount) == (
        -2000,
        2000,
    )
    assert fetched.failure_balance_transaction.type == "payout_failure"
    swept = v1.balance_transactions.list(params={"payout": everything["id"], "limit": 100})
    assert {t.type for t in swept.data} == {"charge", "payout", "payout_failure", "payout_cancel"}
    balance = v1.balance.retrieve()
    assert balance.available[0].amount == 0 and balance.pending == []
    nets: dict[str, int] = {}
    for t in standin.balance_transactions():
        nets[t["currency"]] = nets.get(t["currency"], 0) + t["net"]
    assert standin.balance() == nets
    with pytest.raises(stripe.InvalidRequestError):
        v1.payouts.create(params={"amount": 1, "currency": "eur"})
    assert [e["type"] for e in standin.events][-1] == "payout.created"


def test_lists_page_newest_first(v1: Any, standin: StripeStandin) -> None:
    for amount in (1000, 2000, 3000):
        pay(v1, amount=amount)
    events = v1.events.list(params={"types": ["charge.succeeded"], "limit": 2})
    assert events.has_more and len(events.data) == 2
    amounts = [e.data.object.amount for e in events.auto_paging_iter()]
    assert amounts == [3000, 2000, 1000]
    newest = v1.events.list(params={"type": "payment_intent.*", "limit": 1}).data[0]
    assert newest.type == "payment_intent.succeeded"
    since = standin.balance_transactions()[0]["created"]
    page = v1.balance_transactions.list(
        params={"created": {"gte": since}, "limit": 1, "expand": ["data.source"]}
    )
    assert page.data[0].source.amount == 3000
    txns = [t.id for t in page.auto_paging_iter()]
    assert txns == [t["id"] for t in reversed(standin.balance_transactions())]
    before = v1.balance_transactions.list(params={"ending_before": txns[-1], "limit": 1})
    assert [t.id for t in before.data] == [txns[-2]]
    with pytest.raises(stripe.InvalidRequestError):
        v1.balance_transactions.list(params={"limit": 101})


def test_idempotency_keys_replay(v1: Any, standin: StripeStandin) -> None:
    params = {"amount": 700, "currency": "usd"}
    first = v1.payment_intents.create(params=params, options={"idempotency_key": "k1"})
    again = v1.payment_intents.create(params=params, options={"idempotency_key": "k1"})
    assert first.id == again.id and len(v1.events.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        v1.payment_intents.create(
            params={"amount": 800, "currency": "usd"}, options={"idempotency_key": "k1"}
        )


def test_objects_only_carry_the_pinned_versions_fields(v1: Any, standin: StripeStandin) -> None:
    customer, plan = subscriber(v1)
    sub = v1.subscriptions.create(params={"customer": customer, "items": [{"plan": plan}]})
    charge = v1.invoices.retrieve(sub.latest_invoice, params={"expand": ["payments"]})
    refund = standin.refund(pay(v1).latest_charge, 100)
    standin.fail_refund(refund["id"])
    standin.close_dispute(standin.dispute(pay(v1).latest_charge)["id"], won=True)
    standin.pay_payout(standin.create_payout(100)["id"])
    assert charge.payments.data
    for event in standin.events:
        obj = event["data"]["object"]
        cls = SDK_CLASSES.get(obj["object"])
        if cls is None:
            continue
        assert set(obj) - fields_of(cls) == set(), (obj["object"], set(obj) - fields_of(cls))
        assert set(event) <= fields_of(stripe.Event)


def test_webhook_deliveries(v1: Any, standin: StripeStandin, receiver: Receiver) -> None:
    pay(v1)
    pay(v1, pm="pm_card_threeDSecure2Required")
    count = len(standin.events)
    assert len(standin.undelivered()) == count
    codes = standin.deliver(url=receiver.url, secret=SECRET, duplicates=2, shuffle=random.Random(7))
    assert codes == [200] * 2 * count and standin.undelivered() == []
    assert sorted(e["id"] for e in receiver.events) == sorted(2 * [e["id"] for e in standin.events])
    assert receiver.events[0]["data"]["object"]["object"] in ("payment_intent", "charge")
    receiver.events.clear()
    codes = standin.deliver(standin.events, url=receiver.url, secret=SECRET, concurrent=True)
    assert codes == [200] * count and len(receiver.events) == count
    assert standin.deliver(standin.events[:1], url=receiver.url, secret="whsec_wrong") == [400]


def test_automatic_delivery_and_latency(receiver: Receiver) -> None:
    standin = StripeStandin(
        webhook_url=receiver.url, webhook_secret=SECRET, auto_deliver=True, latency=0.2
    ).start()
    try:
        client = stripe.StripeClient(
            "sk_test_x", base_addresses={"api": standin.base}, max_network_retries=0
        )
        started = time.monotonic()
        client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})
        assert time.monotonic() - started >= 0.2
        standin.latency = 0
        deadline = time.monotonic() + 5
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e["type"] for e in receiver.events] == ["payment_intent.created"]
        assert standin.undelivered() == [] and standin.deliveries[0][1] == 200
    finally:
        standin.stop()


def test_stop_leaves_no_thread_running() -> None:
    before = set(threading.enumerate())
    standin = StripeStandin().start()
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": standin.base})
    done = []

    def call() -> None:
        client.v1.balance.retrieve()
        done.append(True)

    callers = [threading.Thread(target=call) for _ in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(done) == 8 and standin.requests == [("GET", "/v1/balance")] * 8
    standin.stop()
    assert set(threading.enumerate()) - before == set()
