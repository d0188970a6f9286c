"""`donations reconcile` against localstripe: finds what the webhooks missed and books it."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from donations.ledger import journal
from tests.conftest import STRIPE_SECRET, WEBHOOK_SECRET


def run_reconcile(migrated_url, localstripe, *args):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": migrated_url,
        "STRIPE_API_BASE": localstripe.base,
        "STRIPE_EMULATOR": "localstripe",
        "STRIPE_SECRET_KEY": STRIPE_SECRET,
    }
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return subprocess.run(
        [sys.executable, "-m", "donations.cli", "reconcile", "--since", today, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


@pytest.fixture
def deliveries_lost(localstripe, live_server):
    """Stripe's deliveries go nowhere (the emulator never retries them)."""
    localstripe.flush()
    localstripe.register_webhook("http://127.0.0.1:9/nowhere", WEBHOOK_SECRET)
    yield
    localstripe.register_webhook(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)


def test_reconcile_books_missed_payments_and_refunds_then_finds_nothing(
    deliveries_lost, api, database, stripe_client, migrated_url, localstripe
):
    body = {"amount": 4200, "currency": "usd", "frequency": "one_off", "email": "r@example.org"}
    cid = api.post("/api/v1/contributions", json=body).json()["contribution"]["id"]
    assert (
        api.post(
            f"/api/v1/contributions/{cid}/confirm", json={"payment_method": "pm_card_visa"}
        ).status_code
        == 200
    )
    with database.sessions() as s:
        pi_id = s.get(Contribution, cid).stripe_payment_intent_id
    stripe_client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 200})

    dry = run_reconcile(migrated_url, localstripe)
    assert dry.returncode == 1, dry.stderr
    assert "charge not booked" in dry.stdout
    assert "refund not booked" in dry.stdout
    with database.sessions() as s:
        assert s.get(Contribution, cid).status == "pending"  # a dry run changes nothing

    applied = run_reconcile(migrated_url, localstripe, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "FIXED" in applied.stdout
    with database.sessions() as s:
        c = s.get(Contribution, cid)
        assert (c.status, c.refunded_amount) == ("partially_refunded", 200)
    with database.sessions() as s:
        assert journal.account_total(s, a.STRIPE_BALANCE, "usd", contribution_id=cid) == 4000

    again = run_reconcile(migrated_url, localstripe)
    assert again.returncode == 0, again.stdout
    assert "0 difference(s)" in again.stderr


def test_reconcile_never_books_a_charge_that_is_not_a_contribution_as_one(
    deliveries_lost, stripe_client, migrated_url, localstripe, database
):
    pi = stripe_client.v1.payment_intents.create(
        params={
            "amount": 999,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
        }
    )
    stripe_client.v1.payment_intents.confirm(pi.id)
    result = run_reconcile(migrated_url, localstripe)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "charge not a contribution" in result.stdout
    assert "charge not booked" not in result.stdout
    applied = run_reconcile(migrated_url, localstripe, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with database.sessions() as s:
        assert s.query(Contribution).count() == 0
        assert journal.account_total(s, a.OTHER_STRIPE_ACTIVITY, "usd") == -999
