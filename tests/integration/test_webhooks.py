"""The webhook endpoint: signatures, idempotency, ordering, refunds, disputes, faults."""

import json
import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from donations.ledger.models import JournalEntry, JournalLine
from donations.reports import rollups
from donations.webhooks.models import StripeEvent
from tests.conftest import (
    OLD_WEBHOOK_SECRET,
    booked_outcome,
    make_event,
    post_event,
    sign,
    wait_for,
)


def paid_one_off(api, database, amount=5000, cover_fees=False, wait=True):
    body = {
        "amount": amount,
        "currency": "usd",
        "frequency": "one_off",
        "email": "donor@example.org",
        "cover_fees": cover_fees,
    }
    c = api.post("/api/v1/contributions", json=body).json()["contribution"]
    r = api.post(
        f"/api/v1/contributions/{c['id']}/confirm", json={"payment_method": "pm_card_visa"}
    )
    assert r.status_code == 200, r.text
    if wait:
        wait_for(lambda: row(database, c["id"]).status == "succeeded")
    return row(database, c["id"])


def row(database, cid):
    with database.sessions() as s:
        return s.get(Contribution, cid)


def entries(database, **where):
    with database.sessions() as s:
        q = select(JournalEntry)
        for k, v in where.items():
            q = q.where(getattr(JournalEntry, k) == v)
        return s.scalars(q.order_by(JournalEntry.id)).all()


def counts(database, *ids):
    """Rows about these event, object or contribution ids (localstripe's own deliveries from
    earlier tests may land at any moment, so whole-table counts would be flaky)."""
    touches = (
        JournalEntry.event_id.in_(ids)
        | JournalEntry.stripe_object_id.in_(ids)
        | JournalEntry.contribution_id.in_(ids)
    )
    with database.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(StripeEvent).where(StripeEvent.id.in_(ids))),
            s.scalar(select(func.count()).select_from(JournalEntry).where(touches)),
            s.scalar(
                select(func.count()).select_from(JournalLine).join(JournalEntry).where(touches)
            ),
        )


def balance_of(database, account, cid):
    with database.sessions() as s:
        return int(
            s.scalar(
                select(func.coalesce(func.sum(JournalLine.amount), 0))
                .join(JournalEntry)
                .where(JournalEntry.contribution_id == cid, JournalLine.account == account)
            )
        )


# --- verification ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Stripe-Signature": "t=1,v1=deadbeef"}, None, 400),  # bad signature
        ({}, None, 400),  # missing signature
        ({"Stripe-Signature": "stale"}, None, 400),  # timestamp older than the tolerance
        ({"Stripe-Signature": "ok"}, "{not json", 400),  # signed but malformed
        ({"Stripe-Signature": "ok"}, '{"id": "x"}', 400),  # signed JSON that is no event
        ({"Stripe-Signature": "ok", "Content-Type": "text/plain"}, None, 415),
        ({"Stripe-Signature": "wrong-secret"}, None, 400),
    ],
)
def test_unverifiable_or_malformed_deliveries_change_nothing(api, database, headers, body, status):
    event = make_event(
        "payout.paid",
        {
            "id": "po_x",
            "object": "payout",
            "amount": 100,
            "currency": "usd",
            "created": int(time.time()),
        },
    )
    payload = body if body is not None else json.dumps(event)
    headers = {"Content-Type": "application/json", **headers}
    match headers.get("Stripe-Signature"):
        case "stale":
            headers["Stripe-Signature"] = sign(payload, timestamp=int(time.time()) - 301)
        case "ok":
            headers["Stripe-Signature"] = sign(payload)
        case "wrong-secret":
            headers["Stripe-Signature"] = sign(payload, secret="whsec_not_ours")
    ids = (event["id"], "po_x", "x")
    before = counts(database, *ids)
    r = api.post("/webhooks/stripe", data=payload, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert counts(database, *ids) == before == (0, 0, 0)


def test_a_signed_event_missing_what_stripe_always_sends_is_a_400(api, database):
    event = make_event("charge.dispute.created", {"object": "dispute", "amount": 100})
    before = counts(database, event["id"])
    r = post_event(api, event)
    assert r.status_code == 400
    assert "id" in r.json()["detail"]
    assert counts(database, event["id"]) == before == (0, 0, 0)


def test_the_previous_secret_still_verifies_during_a_rotation(api, database, stripe_client):
    c = paid_one_off(api, database, amount=1200, wait=False)
    pi = stripe_client.v1.payment_intents.retrieve(c.stripe_payment_intent_id)
    event = make_event("payment_intent.succeeded", {"id": pi.id, "object": "payment_intent"})
    r = post_event(api, event, secret=OLD_WEBHOOK_SECRET)
    assert r.status_code == 200, r.text
    assert row(database, c.id).status == "succeeded"


def test_an_object_stripe_does_not_know_is_never_booked_from_the_event_body(api, database):
    """A signed payout.paid for a payout Stripe has never heard of: acknowledged, not booked."""
    event = make_event(
        "payout.paid",
        {
            "id": "po_made_up",
            "object": "payout",
            "amount": 700,
            "currency": "usd",
            "status": "paid",
            "created": int(time.time()),
        },
    )
    r = post_event(api, event)
    assert r.status_code == 200 and r.json()["outcome"] == "queued"
    assert booked_outcome(database, event["id"]).startswith("ignored: not found at Stripe")
    assert entries(database, stripe_object_id="po_made_up") == []


def test_unknown_event_types_are_acknowledged(api, database):
    r = post_event(api, make_event("customer.tax_id.created", {"id": "txi_1"}))
    assert r.status_code == 200
    assert r.json()["outcome"].startswith("acknowledged")


# --- exactly once ------------------------------------------------------------------------------
def test_the_same_event_five_times_and_from_two_threads_books_once(api, database, stripe_client):
    c = paid_one_off(api, database, wait=False)
    # a charge.succeeded built from the real charge, delivered over and over
    wait_for(lambda: row(database, c.id).stripe_charge_id or True)
    pi = stripe_client.v1.payment_intents.retrieve(c.stripe_payment_intent_id)
    charge_id = pi.latest_charge.id if hasattr(pi.latest_charge, "id") else pi.latest_charge
    event = make_event("charge.succeeded", {"id": charge_id, "object": "charge"})
    results = []

    def deliver():
        results.append(post_event(api, event).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(5):
        deliver()
    assert results == [200] * 7
    wait_for(lambda: row(database, c.id).status == "succeeded")
    time.sleep(1.5)  # let the emulator's own payment_intent.succeeded arrive too
    payments = entries(database, key=f"payment:{charge_id}")
    assert len(payments) == 1
    assert balance_of(database, a.STRIPE_BALANCE, c.id) == 5000
    with database.sessions() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(StripeEvent).where(StripeEvent.id == event["id"])
            )
            == 1
        )


# --- refunds -------------------------------------------------------------------------------------
def refund_event(stripe_client, charge_id):
    charge = stripe_client.v1.charges.retrieve(charge_id)
    return make_event("charge.refunded", json.loads(str(charge)))


def test_a_partial_then_a_full_refund_are_booked_on_their_own_days(api, database, stripe_client):
    c = paid_one_off(api, database, amount=5000)
    stripe_client.v1.refunds.create(
        params={"payment_intent": c.stripe_payment_intent_id, "amount": 1500}
    )
    assert post_event(api, refund_event(stripe_client, c.stripe_charge_id)).status_code == 200
    assert row(database, c.id).status == "partially_refunded"
    assert balance_of(database, a.REFUNDS, c.id) == 1500

    # the rest (explicitly: the emulator would refund the whole charge again)
    stripe_client.v1.refunds.create(
        params={"payment_intent": c.stripe_payment_intent_id, "amount": 3500}
    )
    r = post_event(api, refund_event(stripe_client, c.stripe_charge_id))
    assert r.status_code == 200
    assert row(database, c.id).status == "refunded"
    assert row(database, c.id).refunded_amount == 5000
    assert balance_of(database, a.REFUNDS, c.id) == 5000
    assert balance_of(database, a.STRIPE_BALANCE, c.id) == 0
    refunds = entries(database, kind=a.REFUND)
    assert len(refunds) == 2 and all(e.key.startswith("refund:re_") for e in refunds)
    # a refund.updated for one of them changes nothing more
    r = post_event(api, make_event("refund.updated", {"id": refunds[0].stripe_object_id}))
    assert r.status_code == 200
    assert len(entries(database, kind=a.REFUND)) == 2


def test_a_refund_arriving_before_its_payment_converges_to_the_same_books(
    api, database, stripe_client
):
    body = {"amount": 3000, "currency": "usd", "frequency": "one_off", "email": "x@example.org"}
    c = api.post("/api/v1/contributions", json=body).json()["contribution"]
    api.post(f"/api/v1/contributions/{c['id']}/confirm", json={"payment_method": "pm_card_visa"})
    pi = stripe_client.v1.payment_intents.retrieve(row(database, c["id"]).stripe_payment_intent_id)
    charge_id = pi.latest_charge.id if hasattr(pi.latest_charge, "id") else pi.latest_charge
    stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    # the refund's event arrives before the emulator's payment_intent.succeeded (~1 s later)
    refund_evt = refund_event(stripe_client, charge_id)
    assert post_event(api, refund_evt).status_code == 200
    payment = entries(database, key=f"payment:{charge_id}")
    assert payment and payment[0].event_id == refund_evt["id"]  # booked by the refund's event
    wait_for(lambda: len(entries(database, contribution_id=c["id"])) >= 2)
    time.sleep(1.5)  # the payment's own event arrives and books nothing new
    assert sorted(e.key.split(":")[0] for e in entries(database, contribution_id=c["id"])) == [
        "payment",
        "refund",
    ]
    assert balance_of(database, a.STRIPE_BALANCE, c["id"]) == 2000
    assert row(database, c["id"]).status == "partially_refunded"


# --- the inbox ---------------------------------------------------------------------------------
def inbox_row(database, event_id):
    with database.sessions() as s:
        return s.get(StripeEvent, event_id)


def test_a_delivery_is_acknowledged_with_one_insert_and_booked_after(api, database, app):
    c = paid_one_off(api, database, amount=1500, wait=False)
    event = make_event(
        "payment_intent.succeeded", {"id": c.stripe_payment_intent_id, "object": "payment_intent"}
    )
    statements = []

    def count(conn, cursor, statement, params, context, executemany):
        if threading.current_thread().name != "webhook-booker":
            statements.append(statement.split()[0].upper())

    sa_event.listen(database.engine, "before_cursor_execute", count)
    try:
        r = post_event(api, event, book=False)
    finally:
        sa_event.remove(database.engine, "before_cursor_execute", count)
    assert r.status_code == 200 and r.json()["outcome"] == "queued"
    assert statements.count("INSERT") == 1 and "SELECT" not in statements, statements
    app.extensions["donations"].booker.drain()
    stored = inbox_row(database, event["id"])
    assert stored.status == "booked" and stored.payload is None
    assert row(database, c.id).status == "succeeded"


def test_a_database_failure_while_booking_leaves_the_event_waiting_and_books_it_once_later(
    api, database, stripe_client, app
):
    c = paid_one_off(api, database, amount=2000)
    stripe_client.v1.refunds.create(params={"payment_intent": c.stripe_payment_intent_id})
    event = refund_event(stripe_client, c.stripe_charge_id)
    booker = app.extensions["donations"].booker

    def fail_on_journal_lines(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO JOURNAL_LINES"):
            raise database.engine.dialect.loaded_dbapi.OperationalError("connection lost (test)")

    sa_event.listen(database.engine, "before_cursor_execute", fail_on_journal_lines)
    try:
        r = post_event(api, event, book=False)
        assert r.status_code == 200  # stored: Stripe is not asked to retry
        booker.drain()  # (its own thread may have tried first: the same failure)
    finally:
        sa_event.remove(database.engine, "before_cursor_execute", fail_on_journal_lines)
    waiting = inbox_row(database, event["id"])
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "connection lost" in waiting.last_error
    assert entries(database, kind=a.REFUND) == []  # the booking rolled back whole
    assert row(database, c.id).status == "succeeded"

    with database.transaction() as s:  # its backoff is over
        s.get(StripeEvent, event["id"]).next_attempt_at = datetime(2000, 1, 1)
    booker.drain()
    assert inbox_row(database, event["id"]).status == "booked"
    assert post_event(api, event).json()["outcome"] == "duplicate"  # Stripe's retry
    assert len(entries(database, kind=a.REFUND)) == 1
    assert row(database, c.id).status == "refunded"


def test_a_booker_that_loses_the_database_gives_its_lease_back_when_it_returns(
    api, database, stripe_client, app, monkeypatch
):
    """The database gone mid-booking (a restart): even the failure cannot be recorded. The
    event is not left leased for minutes: the booker's next pass makes it due and books it."""
    from datetime import timedelta

    from donations.db import utcnow
    from donations.webhooks import booker as booker_mod

    c = paid_one_off(api, database, amount=2100)
    stripe_client.v1.refunds.create(params={"payment_intent": c.stripe_payment_intent_id})
    event = refund_event(stripe_client, c.stripe_charge_id)
    # Stored as the endpoint stores it, but due only in the test's future, so that the app's
    # own booker thread never takes it: this booker, asked with that future `now`, does.
    later = utcnow() + timedelta(days=2)
    with database.transaction() as s:
        s.add(
            StripeEvent(
                id=event["id"],
                type=event["type"],
                created=utcnow(),
                status="pending",
                payload=json.dumps(event),
                next_attempt_at=later - timedelta(days=1),
            )
        )
    services = app.extensions["donations"]
    mine = booker_mod.WebhookBooker(database, services.booker.gateway, concurrency=1)
    me = threading.get_ident()
    down = threading.Event()
    claim = booker_mod.claim_due

    def claim_then_lose_the_database(*args, **kwargs):
        ids = claim(*args, **kwargs)
        if ids:
            down.set()
        return ids

    def refuse(conn, cursor, statement, params, context, executemany):
        if down.is_set() and threading.get_ident() == me:
            raise database.engine.dialect.loaded_dbapi.OperationalError("server closed (test)")

    monkeypatch.setattr(booker_mod, "claim_due", claim_then_lose_the_database)
    sa_event.listen(database.engine, "before_cursor_execute", refuse)
    try:
        report = mine.book_due(now=later)
    finally:
        sa_event.remove(database.engine, "before_cursor_execute", refuse)
        monkeypatch.setattr(booker_mod, "claim_due", claim)
    assert (report.booked, report.deferred) == (0, 1)
    held = inbox_row(database, event["id"])
    # Nothing could be written: still pending, no attempt counted, leased past `later`.
    assert (held.status, held.attempts) == ("pending", 0)
    assert held.next_attempt_at > later
    assert entries(database, kind=a.REFUND) == []

    report = mine.book_due(now=later)  # the database is back: the lease is given back
    assert report.booked == 1
    assert inbox_row(database, event["id"]).status == "booked"
    assert len(entries(database, kind=a.REFUND)) == 1
    assert row(database, c.id).status == "refunded"
    mine.close()


def test_the_verified_bytes_are_stored_as_sent_and_booked_from_them(
    api, database, app, monkeypatch
):
    """The inbox keeps the delivery's own bytes (what the signature covers, as Stripe laid
    them out), and the booker reads the event from them."""
    booker = app.extensions["donations"].booker
    c = paid_one_off(api, database, amount=1600, wait=False)
    monkeypatch.setattr(booker, "work", lambda: None)  # its thread books nothing meanwhile
    event = make_event(
        "payment_intent.succeeded", {"id": c.stripe_payment_intent_id, "object": "payment_intent"}
    )
    text = json.dumps(event, indent=2, ensure_ascii=False)
    r = api.post(
        "/webhooks/stripe",
        data=text.encode("utf-8"),
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(text)},
    )
    assert r.status_code == 200 and r.json()["outcome"] == "queued", r.text
    assert inbox_row(database, event["id"]).payload == text
    booker.drain()
    assert inbox_row(database, event["id"]).status == "booked"
    assert row(database, c.id).status == "succeeded"


def test_with_booking_left_to_the_worker_the_web_process_only_stores(
    api, database, settings, app
):
    """WEBHOOK_BOOKING=worker: a delivery is verified and stored, no booker starts in the web
    process, and `donations webhooks worker`'s booker books it."""
    from donations.app import create_app
    from tests.conftest import close_app

    c = paid_one_off(api, database, amount=1700, wait=False)
    event = make_event(
        "payment_intent.succeeded", {"id": c.stripe_payment_intent_id, "object": "payment_intent"}
    )
    web = create_app(settings.with_overrides(webhook_booking="worker"), database=database)
    try:
        payload = json.dumps(event)
        r = web.test_client().post(
            "/webhooks/stripe",
            data=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
        )
        assert r.status_code == 200 and r.get_json()["outcome"] == "queued"
        assert web.extensions["donations"].booker._thread is None  # never woken
        assert inbox_row(database, event["id"]).status == "pending"
    finally:
        close_app(web)
    app.extensions["donations"].booker.drain()  # the worker's part
    assert inbox_row(database, event["id"]).status == "booked"
    assert row(database, c.id).status == "succeeded"


def test_an_unreachable_stripe_never_answers_5xx_events_wait_then_die_then_retry(
    api, database, settings, migrated_url, app
):
    """Stripe down: the delivery is acknowledged; booking is deferred with backoff; after the
    last attempt the event is dead, visible in metrics and the admin; `donations webhooks
    retry` books it once Stripe answers again."""
    from click.testing import CliRunner

    from donations.cli import cli
    from donations.stripe import gateway_from_settings
    from donations.webhooks import booker as booker_mod

    c = paid_one_off(api, database, amount=1800, wait=False)
    event = make_event(
        "payment_intent.succeeded", {"id": c.stripe_payment_intent_id, "object": "payment_intent"}
    )
    services = app.extensions["donations"]
    down = gateway_from_settings(settings.with_overrides(stripe_api_base="http://127.0.0.1:9"))
    working, services.booker.gateway = services.booker.gateway, down
    try:
        r = post_event(api, event, book=False)
        assert r.status_code == 200
        for _ in range(booker_mod.MAX_ATTEMPTS):
            services.booker.drain()
            with database.transaction() as s:  # every backoff over at once
                s.get(StripeEvent, event["id"]).next_attempt_at = datetime(2000, 1, 1)
    finally:
        services.booker.gateway = working
    dead = inbox_row(database, event["id"])
    assert (dead.status, dead.attempts) == ("dead", booker_mod.MAX_ATTEMPTS)
    assert dead.last_error.startswith("stripe:")
    assert row(database, c.id).status == "pending"
    metrics = api.get("/metrics").text
    assert "donations_webhook_inbox_dead 1.0" in metrics

    env = {
        "DATABASE_URL": migrated_url,
        "STRIPE_API_BASE": settings.stripe_api_base,
        "STRIPE_EMULATOR": "localstripe",
        "STRIPE_SECRET_KEY": settings.stripe_secret_key,
    }
    result = CliRunner().invoke(cli, ["webhooks", "retry", event["id"]], env=env)
    assert result.exit_code == 0, result.output
    assert "1 dead event(s) back in the queue" in result.output
    assert "booked 1" in result.output
    assert inbox_row(database, event["id"]).status == "booked"
    assert row(database, c.id).status == "succeeded"


def test_every_journal_entry_balances_per_currency(api, database, stripe_client):
    c = paid_one_off(api, database, amount=2500, cover_fees=True)
    stripe_client.v1.refunds.create(
        params={"payment_intent": c.stripe_payment_intent_id, "amount": 500}
    )
    post_event(api, refund_event(stripe_client, c.stripe_charge_id))
    with database.sessions() as s:
        sums = s.execute(
            select(
                JournalLine.entry_id, JournalLine.currency, func.sum(JournalLine.amount)
            ).group_by(JournalLine.entry_id, JournalLine.currency)
        ).all()
    assert sums and all(total == 0 for _, _, total in sums)


def test_the_report_rollups_follow_the_books_through_webhooks(api, database, stripe_client):
    c = paid_one_off(api, database, amount=3000, cover_fees=True)
    stripe_client.v1.refunds.create(
        params={"payment_intent": c.stripe_payment_intent_id, "amount": 700}
    )
    assert post_event(api, refund_event(stripe_client, c.stripe_charge_id)).status_code == 200
    with database.sessions() as s:
        report = rollups.check(s)
    assert report["ledger_daily"][0] > 0, report
    assert all(differ == 0 for _, differ in report.values()), report
