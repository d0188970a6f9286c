"""Monthly and annual contributions: SetupIntent → subscription → invoice → ledger."""

import pytest
from sqlalchemy import select

from donations.checkout.models import Contribution, Subscription
from donations.ledger import accounts as a
from donations.ledger.models import JournalEntry, JournalLine
from tests.conftest import make_event, post_event, wait_for

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
    return stripe_client.v1.setup_intents.confirm(seti_id, params={"payment_method": payment_method})


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
    r = post_event(api, make_event("invoice.paid", {"id": first_invoice, "object": "invoice"}))
    assert r.status_code == 200 and r.json()["outcome"] == "payment already booked"

    # A renewal: the emulator has no test clocks, so make Stripe bill the next period now.
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    invoice = stripe_client.v1.invoices.create(params={"customer": sub.customer, "subscription": sub_id})
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
