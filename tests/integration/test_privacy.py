"""Export and erasure of a donor (CLI and admin), and the retention purge."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import stripe
from click.testing import CliRunner
from sqlalchemy import select

from donations import privacy
from donations.admin.auth import create_user
from donations.admin.models import AuditEntry
from donations.admin.tokens import create_token
from donations.checkout.models import Contribution, Donor, Subscription
from donations.cli import cli
from donations.db import utcnow
from donations.donors.models import DonorLink, DonorSession
from donations.mail import outbox
from donations.mail.models import OutboxEmail
from tests.conftest import wait_for
from tests.integration.test_recurring import BODY, confirm_setup_in_browser

EMAIL = "monthly@example.org"


@pytest.fixture
def subscribed(api, database, stripe_client):
    """A monthly donor (Stripe customer, subscription, a booked payment), a pending
    receipt, a sign-in link and a session."""
    started = api.post("/api/v1/contributions", json={**BODY, "name": "Ada Reader"}).json()
    cid = started["contribution"]["id"]
    confirm_setup_in_browser(stripe_client, started["stripe"]["client_secret"])
    r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert r.status_code == 201, r.text

    def paid():
        with database.sessions() as s:
            return s.get(Contribution, cid).status == "succeeded"

    wait_for(paid)
    with database.transaction() as s:
        donor = s.scalar(select(Donor).where(Donor.email == EMAIL))
        now = utcnow()
        s.add(DonorLink(id="a" * 64, donor_id=donor.id, expires_at=now + timedelta(minutes=30)))
        s.add(
            DonorSession(
                id="b" * 64, donor_id=donor.id, csrf_token="c", expires_at=now + timedelta(hours=1)
            )
        )
        outbox.enqueue(
            s,
            kind="sign_in_link",
            dedupe_key="test-link",
            donor_id=donor.id,
            payload={"url": "https://example.org/secret", "expires_minutes": 30},
            send_after=now + timedelta(days=1),  # still pending when we erase
        )
        return {"contribution": cid, "donor": donor.id, "customer": donor.stripe_customer_id}


def trial_balance(api, token):
    r = api.get("/api/v1/admin/ledger/trial-balance", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    return r.json()


@pytest.fixture
def editor_token(database):
    with database.transaction() as s:
        return create_token(s, "privacy", "editor")


def test_export_prints_everything_held_about_a_donor(subscribed, settings):
    result = CliRunner().invoke(
        cli, ["export-donor", "Monthly@Example.org"], env={"DATABASE_URL": settings.database_url}
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["donor"]["email"] == EMAIL and data["donor"]["name"] == "Ada Reader"
    assert [c["id"] for c in data["contributions"]] == [subscribed["contribution"]]
    assert data["subscriptions"][0]["status"] == "active"
    assert {e["kind"] for e in data["ledger_entries"]} >= {"payment_recurring"}
    assert len(data["sign_in_links"]) == 1 and "id" not in data["sign_in_links"][0]
    assert len(data["sessions"]) == 1 and "csrf_token" not in data["sessions"][0]
    assert all("payload" not in e for e in data["emails"])
    assert "https://example.org/secret" not in result.output  # queued secrets are not exported
    assert data["held_elsewhere"]["stripe_customer"] == subscribed["customer"]


def test_export_of_an_unknown_email_fails_clearly(settings, database):
    result = CliRunner().invoke(
        cli, ["export-donor", "nobody@example.org"], env={"DATABASE_URL": settings.database_url}
    )
    assert result.exit_code != 0 and "No donor" in result.output


def test_erasure_forgets_the_person_here_and_at_stripe_and_keeps_the_books(
    subscribed, api, database, settings, stripe_client, editor_token
):
    before = trial_balance(api, editor_token)
    result = CliRunner().invoke(
        cli,
        ["erase-donor", EMAIL, "--yes"],
        env={
            "DATABASE_URL": settings.database_url,
            "STRIPE_API_BASE": settings.stripe_api_base,
            "STRIPE_EMULATOR": "localstripe",
            "STRIPE_SECRET_KEY": settings.stripe_secret_key,
        },
    )
    assert result.exit_code == 0, result.output
    assert "1 subscriptions ended" in result.output

    assert trial_balance(api, editor_token) == before  # not a cent moved
    with database.sessions() as s:
        donor = s.get(Donor, subscribed["donor"])
        assert (donor.email, donor.name) == (None, None) and donor.erased_at is not None
        contribution = s.get(Contribution, subscribed["contribution"])
        assert contribution.total == 1061 and contribution.donor_id == donor.id  # amounts stay
        assert s.scalars(select(Subscription.status)).all() == ["canceled"]
        assert s.scalars(select(DonorLink)).all() == []
        assert s.scalars(select(DonorSession)).all() == []
        assert s.scalars(select(OutboxEmail).where(OutboxEmail.sent_at.is_(None))).all() == []
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "donor.erase")).all()
        assert entry.actor == "cli" and EMAIL not in json.dumps(entry.after)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.retrieve(subscribed["customer"])

    # nothing is left to find, and a second request says so
    again = CliRunner().invoke(
        cli, ["erase-donor", EMAIL, "--yes"], env={"DATABASE_URL": settings.database_url}
    )
    assert again.exit_code != 0 and "No donor" in again.output


def test_staff_erase_through_the_admin_with_the_editor_role_only(
    subscribed, api, database, editor_token
):
    with database.transaction() as s:
        viewer = create_token(s, "viewer", "viewer")
    auth = {"Authorization": f"Bearer {viewer}"}
    assert api.get(f"/api/v1/admin/donors/export?email={EMAIL}", headers=auth).status_code == 403
    auth = {"Authorization": f"Bearer {editor_token}"}
    r = api.get(f"/api/v1/admin/donors/export?email={EMAIL}", headers=auth)
    assert r.status_code == 200 and r.json()["donor"]["email"] == EMAIL
    bad = api.post("/api/v1/admin/donors/erase", json={"email": "not an email"}, headers=auth)
    assert bad.status_code == 422 and "email" in bad.json()["errors"]
    r = api.post("/api/v1/admin/donors/erase", json={"email": EMAIL}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["erased"] == {
        "donor_id": subscribed["donor"],
        "contributions_kept": 1,
        "subscriptions_canceled": 1,
        "stripe_customer_deleted": True,
    }
    assert (
        api.post("/api/v1/admin/donors/erase", json={"email": EMAIL}, headers=auth).status_code
        == 404
    )


def test_the_donors_page_looks_up_and_erases_with_confirmation(subscribed, api, database):
    from tests.integration.test_admin_access import PASSWORD, csrf_of, sign_in

    with database.transaction() as s:
        create_user(s, "ed@example.org", PASSWORD, "editor")
    http, signed_in = sign_in(api.base, "ed@example.org")
    assert signed_in.status_code == 303
    page = http.get(f"{api.base}/admin/donors", params={"email": EMAIL})
    assert page.status_code == 200 and subscribed["contribution"] in page.text
    csrf = csrf_of(http, api.base)
    unconfirmed = http.post(
        f"{api.base}/admin/donors/erase", data={"email": EMAIL, "csrf_token": csrf}
    )
    assert "Tick the confirmation box" in unconfirmed.text
    with database.sessions() as s:
        assert s.get(Donor, subscribed["donor"]).erased_at is None
    done = http.post(
        f"{api.base}/admin/donors/erase",
        data={"email": EMAIL, "csrf_token": csrf, "confirm": "yes"},
    )
    assert done.status_code == 200 and "erased" in done.text
    with database.sessions() as s:
        assert s.get(Donor, subscribed["donor"]).erased_at is not None


def test_purge_deletes_only_what_has_expired(database, subscribed):
    now = utcnow()
    with database.transaction() as s:
        s.add(
            DonorLink(id="d" * 64, donor_id=subscribed["donor"], expires_at=now - timedelta(days=2))
        )
        old = OutboxEmail(
            kind="receipt",
            dedupe_key="old-receipt",
            donor_id=subscribed["donor"],
            sent_at=now - timedelta(days=privacy.SENT_MAIL_DAYS + 1),
        )
        s.add(old)
    with database.transaction() as s:
        done = privacy.purge(s)
    assert done["donor_links"] == 1 and done["sent_emails"] == 1
    with database.sessions() as s:
        assert [link.id for link in s.scalars(select(DonorLink))] == ["a" * 64]  # still valid
        assert s.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key == "test-link"))
