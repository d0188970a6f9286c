"""Monthly and annual contributions: SetupIntent → subscription → invoice → ledger."""

import pytest
from sqlalchemy import select

from donations.checkout.models import Contribution, Subscription
from donations.ledger import accounts as a
from donations.ledger.models import JournalEntry, JournalLine
from tests.conftest import booked_outcome, make_event, post_event, wait_for

BODY = {
    "amount": 1000,
    "currency": "usd",
    "frequency": "monthly",
    "email": "monthly@example.org",
    "cover_fees": True,
    "attribution": {"article": "a-1", "campaign": "c-1", "variant": "v-1", "placement": "epic"},
}


def confirm_setup_in_browser(stripe_client, client_secret, payment_method="pm_card_visa"):
    """What Stripe.js's confirmCardSetup does in the browser."""
    seti_id = client_secret.split("_secret_")[0]
    return stripe_client.v1.setup_intents.confirm(
        seti_id, params={"payment_method": payment_method}
    )


def contribution(database, cid):
    with database.sessions() as s:
        return s.get(Contribution, cid)


def lines_for(database, cid):
    with database.sessions() as s:
        return sorted(
            (line.account, line.amount)
            for line in s.scalars(
                select(JournalLine).join(JournalEntry).where(JournalEntry.contribution_id == cid)
            )
        )


@pytest.fixture
def subscribed(api, database, stripe_client):
    started = api.post("/api/v1/contributions", json=BODY).json()
    assert started["stripe"]["intent"] == "setup_intent"
    cid = started["contribution"]["id"]
    confirm_setup_in_browser(stripe_client, started["stripe"]["client_secret"])
    r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert r.status_code == 201, r.text
    wait_for(lambda: contribution(database, cid).status == "succeeded")
    return r.json()["contribution"]


def test_subscribing_before_the_card_is_set_up_answers_409(api, database):
    cid = api.post("/api/v1/contributions", json=BODY).json()["contribution"]["id"]
    r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert r.status_code == 409
    assert contribution(database, cid).stripe_subscription_id is None


def test_a_monthly_contribution_becomes_a_subscription_booked_as_recurring(
    subscribed, api, database, stripe_client
):
    cid = subscribed["id"]
    assert subscribed["subscription"].startswith("sub_")
    total = subscribed["total"]
    assert total == 1061  # ceil((1000 + 30) / 0.971)
    assert lines_for(database, cid) == sorted(
        [(a.STRIPE_BALANCE, total), (a.GIFTS_RECURRING, -1000), (a.COVERED_FEES, -61)]
    )
    sub = stripe_client.v1.subscriptions.retrieve(subscribed["subscription"])
    assert sub.metadata["contribution_id"] == cid
    assert sub.metadata["campaign"] == "c-1"
    with database.sessions() as s:
        row = s.get(Subscription, subscribed["subscription"])
        assert (row.amount, row.interval, row.contribution_id) == (total, "month", cid)
        assert s.get(Contribution, cid).stripe_invoice_id.startswith("in_")

    # a repeated call answers 200 with the same contribution and creates nothing
    again = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert again.status_code == 200
    assert again.json()["contribution"]["subscription"] == subscribed["subscription"]
    subs = stripe_client.v1.subscriptions.list(params={"customer": sub.customer})
    assert len(subs.data) == 1


def test_each_renewal_is_its_own_contribution_and_invoice_paid_dedupes(
    subscribed, api, database, stripe_client
):
    cid, sub_id = subscribed["id"], subscribed["subscription"]
    with database.sessions() as s:
        first_invoice = s.get(Contribution, cid).stripe_invoice_id
    # Real Stripe also sends invoice.paid for the same invoice: it must not book twice.
    paid = make_event("invoice.paid", {"id": first_invoice, "object": "invoice"})
    r = post_event(api, paid)
    assert r.status_code == 200 and r.json()["outcome"] == "queued"
    assert booked_outcome(database, paid["id"]) == "payment already booked"

    # A renewal: the emulator has no test clocks, so make Stripe bill the next period now.
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    invoice = stripe_client.v1.invoices.create(
        params={"customer": sub.customer, "subscription": sub_id}
    )
    stripe_client.v1.invoices.pay(invoice.id)
    event = make_event("invoice.paid", {"id": invoice.id, "object": "invoice"})
    for _ in range(2):
        assert post_event(api, event).status_code == 200
    with database.sessions() as s:
        renewal = s.scalar(select(Contribution).where(Contribution.stripe_invoice_id == invoice.id))
        assert renewal is not None and renewal.parent_id == cid
        assert renewal.status == "succeeded" and renewal.frequency == "monthly"
        assert renewal.campaign == "c-1"
        payments = s.scalars(
            select(JournalEntry).where(JournalEntry.kind == a.PAYMENT_RECURRING)
        ).all()
        assert sorted(p.contribution_id for p in payments) == sorted([cid, renewal.id])


def test_cancelling_at_stripe_is_reflected_on_the_subscription(subscribed, database, stripe_client):
    sub_id = subscribed["subscription"]
    stripe_client.v1.subscriptions.cancel(sub_id)

    def canceled():
        with database.sessions() as s:
            return s.get(Subscription, sub_id).status == "canceled"

    wait_for(canceled)
    # the paid contribution keeps its status: cancelling stops future renewals only
    assert contribution(database, subscribed["id"]).status == "succeeded"


def test_an_annual_contribution_bills_a_yearly_plan(api, database, stripe_client):
    started = api.post(
        "/api/v1/contributions",
        json={**BODY, "frequency": "annual", "amount": 12000, "cover_fees": False},
    ).json()
    cid = started["contribution"]["id"]
    confirm_setup_in_browser(stripe_client, started["stripe"]["client_secret"])
    sub_id = api.post(f"/api/v1/contributions/{cid}/subscribe", json={}).json()["contribution"][
        "subscription"
    ]
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    assert sub["items"].data[0].plan.interval == "year"
    assert sub["items"].data[0].plan.amount == 12000
    wait_for(lambda: contribution(database, cid).status == "succeeded")
    assert lines_for(database, cid) == sorted(
        [(a.STRIPE_BALANCE, 12000), (a.GIFTS_RECURRING, -12000)]
    )


def test_two_concurrent_subscribe_calls_create_one_subscription(api, database, stripe_client):
    import threading

    started = api.post("/api/v1/contributions", json=BODY).json()
    cid = started["contribution"]["id"]
    confirm_setup_in_browser(stripe_client, started["stripe"]["client_secret"])
    codes, subs = [], []

    def call():
        r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
        codes.append(r.status_code)
        subs.append(r.json()["contribution"]["subscription"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 201]
    assert subs[0] == subs[1]


def test_a_card_declined_at_the_first_renewal_charge_answers_402(api, database, stripe_client):
    started = api.post("/api/v1/contributions", json=BODY).json()
    cid = started["contribution"]["id"]
    confirm_setup_in_browser(
        stripe_client,
        started["stripe"]["client_secret"],
        payment_method="pm_card_chargeCustomerFail",
    )
    r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert r.status_code == 402, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "declined" in r.json()["detail"]
    assert contribution(database, cid).stripe_subscription_id is None
    # Stripe sends invoice.payment_failed (→ failed); the emulator only the deletion (→ canceled)
    wait_for(lambda: contribution(database, cid).status in ("failed", "canceled"))
    assert lines_for(database, cid) == []
    with database.sessions() as s:  # the failed subscription was canceled at Stripe
        sub = s.scalar(select(Subscription).where(Subscription.contribution_id == cid))
        assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_a_subscription_updated_event_is_synced_from_stripe(
    subscribed, api, database, stripe_client
):
    sub_id = subscribed["subscription"]
    stripe_client.v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})
    # the emulator never sends customer.subscription.updated; Stripe does
    r = post_event(
        api, make_event("customer.subscription.updated", {"id": sub_id, "object": "subscription"})
    )
    assert r.status_code == 200, r.text
    with database.sessions() as s:
        row = s.get(Subscription, sub_id)
        assert row.cancel_at_period_end is True and row.status == "active"
