"""One-off contributions against localstripe over real HTTP."""

from sqlalchemy import func, select

from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from donations.ledger.models import JournalEntry, JournalLine
from tests.conftest import wait_for

BODY = {
    "amount": 2500,
    "currency": "usd",
    "frequency": "one_off",
    "email": "Reader@Example.org",
    "name": "A Reader",
    "cover_fees": True,
    "attribution": {
        "article": "putin-congratulates-biden",
        "campaign": "year-end-2020",
        "variant": "control",
        "placement": "epic",
        "impression": "imp_abc",
    },
}


def start(api, **changes):
    r = api.post("/api/v1/contributions", json={**BODY, **changes})
    assert r.status_code == 201, r.text
    return r.json()


def status_of(api, cid):
    return api.get(f"/api/v1/contributions/{cid}").json()["contribution"]["status"]


def ledger_lines(database, cid):
    with database.sessions() as s:
        return sorted(
            (line.account, line.amount)
            for line in s.scalars(
                select(JournalLine).join(JournalEntry).where(JournalEntry.contribution_id == cid)
            )
        )


def test_a_one_off_contribution_is_paid_and_booked_once(api, database, stripe_client):
    started = start(api)
    c = started["contribution"]
    assert c["status"] == "pending"
    assert (c["amount"], c["fee_covered"], c["total"]) == (2500, 106, 2606)
    assert started["stripe"]["intent"] == "payment_intent"
    assert started["stripe"]["publishable_key"] == "pk_test_suite"
    pi_id = started["stripe"]["client_secret"].split("_secret_")[0]
    pi = stripe_client.v1.payment_intents.retrieve(pi_id)
    assert pi.amount == 2606
    assert pi.metadata["contribution_id"] == c["id"]
    assert pi.metadata["campaign"] == "year-end-2020"
    assert pi.metadata["article"] == "putin-congratulates-biden"

    r = api.post(
        f"/api/v1/contributions/{c['id']}/confirm", json={"payment_method": "pm_card_visa"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["stripe"]["status"] == "succeeded"

    wait_for(lambda: status_of(api, c["id"]) == "succeeded")
    body = api.get(f"/api/v1/contributions/{c['id']}").json()
    assert body["supporter_token"]
    assert ledger_lines(database, c["id"]) == sorted(
        [(a.STRIPE_BALANCE, 2606), (a.GIFTS_ONE_OFF, -2500), (a.COVERED_FEES, -106)]
    )
    with database.sessions() as s:
        row = s.get(Contribution, c["id"])
        assert row.donor.email == "reader@example.org"
        assert row.stripe_charge_id.startswith("ch_")


def test_a_declined_card_answers_402_and_books_nothing(api, database):
    c = start(api, cover_fees=False)["contribution"]
    r = api.post(
        f"/api/v1/contributions/{c['id']}/confirm",
        json={"payment_method": "pm_card_chargeCustomerFail"},
    )
    assert r.status_code == 402
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "declined" in r.json()["detail"].lower()
    wait_for(lambda: status_of(api, c["id"]) == "failed")
    failed = api.get(f"/api/v1/contributions/{c['id']}").json()["contribution"]
    assert "declined" in failed["failure_message"].lower()
    assert ledger_lines(database, c["id"]) == []
    with database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(JournalEntry)) == 0

    # the donor tries another card on the same contribution, and it goes through
    r = api.post(
        f"/api/v1/contributions/{c['id']}/confirm", json={"payment_method": "pm_card_visa"}
    )
    assert r.status_code == 200, r.text
    wait_for(lambda: status_of(api, c["id"]) == "succeeded")
    assert (
        api.get(f"/api/v1/contributions/{c['id']}").json()["contribution"]["failure_message"]
        is None
    )
    assert ledger_lines(database, c["id"]) == sorted(
        [(a.STRIPE_BALANCE, 2500), (a.GIFTS_ONE_OFF, -2500)]
    )
