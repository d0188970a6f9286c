"""Receipts by email: paid through localstripe over real HTTP, delivered to a real local SMTP
server (aiosmtpd) and read as they arrive."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import requests
from click.testing import CliRunner
from sqlalchemy import select

from donations.checkout.models import Contribution, Donor
from donations.cli import cli
from donations.db import new_id, utcnow
from donations.mail.models import OutboxEmail
from donations.mail.outbox import enqueue
from donations.mail.sender import DONOR_ERASED, MAX_ATTEMPTS, MailSender
from tests.conftest import STRIPE_SECRET, free_port, make_event, post_event, wait_for
from tests.integration.test_recurring import confirm_setup_in_browser

ONE_OFF = {
    "amount": 2500,
    "currency": "usd",
    "frequency": "one_off",
    "email": "Reader@Example.org",
    "name": "A Reader",
    "cover_fees": True,
}
MONTHLY = {
    "amount": 1000,
    "currency": "usd",
    "frequency": "monthly",
    "email": "monthly@example.org",
    "cover_fees": False,
}


def pay_one_off(api: Any, database: Any, **changes: Any) -> str:
    r = api.post("/api/v1/contributions", json={**ONE_OFF, **changes})
    assert r.status_code == 201, r.text
    cid = r.json()["contribution"]["id"]
    r = api.post(f"/api/v1/contributions/{cid}/confirm", json={"payment_method": "pm_card_visa"})
    assert r.status_code == 200, r.text
    return cid


def subscribe_monthly(api: Any, database: Any, stripe_client: Any) -> str:
    started = api.post("/api/v1/contributions", json=MONTHLY).json()
    cid = started["contribution"]["id"]
    confirm_setup_in_browser(stripe_client, started["stripe"]["client_secret"])
    r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert r.status_code == 201, r.text
    return cid


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative message, with non-breaking spaces made plain."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return (
        text.get_content().replace("\xa0", " ").replace("\u202f", " "),
        html.get_content().replace("\xa0", " ").replace("\u202f", " "),
    )


def outbox_rows(database: Any, **where: Any) -> list[OutboxEmail]:
    with database.sessions() as s:
        query = select(OutboxEmail).order_by(OutboxEmail.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxEmail, name) == value)
        return list(s.scalars(query))


def test_a_one_off_contribution_gets_one_receipt_by_smtp_and_a_replay_sends_nothing_more(
    api, database, smtp, inbox, settings
):
    cid = pay_one_off(api, database)
    wait_for(lambda: len(inbox.messages) == 1)
    message = inbox.messages[0]
    assert inbox.envelopes[0][1] == ["reader@example.org"]
    assert message["Subject"] == "Your receipt from The Moscow Times"
    assert message["From"] == settings.mail_from
    assert "reader@example.org" in message["To"]
    assert message["Message-ID"] and message["Date"]
    assert message["Content-Language"] == "en"
    text, html = parts(message)
    for part in (text, html):
        assert cid in part  # the receipt number
        assert "$25.00" in part  # the gift
        assert "$1.06" in part  # the fee the reader chose to cover
        assert "$26.06" in part  # what the card was charged
        assert "One-off" in part
        assert f"{settings.public_base_url}/account" in part
        assert "not tax advice" in part
        assert "Amsterdam, Netherlands" in part
    assert "Dear A Reader," in text
    # The account link opens the pages in the email's language (which then sticks).
    assert f'href="{settings.public_base_url}/account?lang=en"' in html

    # Stripe delivers again, and Stripe's charge.succeeded for the same payment arrives too.
    with database.sessions() as s:
        charge_id = s.get(Contribution, cid).stripe_charge_id
    event = make_event("charge.succeeded", {"id": charge_id, "object": "charge"})
    for _ in range(2):
        r = post_event(api, event)
        assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "duplicate"
    smtp.send_due()
    assert len(inbox.messages) == 1
    [row] = outbox_rows(database)
    assert (row.kind, row.contribution_id, row.dedupe_key) == ("receipt", cid, f"receipt:{cid}")
    assert row.sent_at is not None and row.payload is None and row.attempts == 0


def test_a_monthly_gift_gets_a_receipt_then_a_renewal_receipt_for_each_renewal(
    api, database, smtp, inbox, stripe_client
):
    cid = subscribe_monthly(api, database, stripe_client)
    wait_for(lambda: len(inbox.messages) == 1)
    first_text, _ = parts(inbox.messages[0])
    assert inbox.messages[0]["Subject"] == "Your receipt from The Moscow Times"
    assert cid in first_text and "Monthly" in first_text and "$10.00" in first_text
    assert "Card fees you covered" not in first_text  # no fee covered: one amount line
    assert "change or cancel your recurring contribution" in first_text

    with database.sessions() as s:
        sub_id = s.get(Contribution, cid).stripe_subscription_id
    sub = stripe_client.v1.subscriptions.retrieve(sub_id)
    invoice = stripe_client.v1.invoices.create(
        params={"customer": sub.customer, "subscription": sub_id}
    )
    stripe_client.v1.invoices.pay(invoice.id)
    event = make_event("invoice.paid", {"id": invoice.id, "object": "invoice"})
    for _ in range(2):
        assert post_event(api, event).status_code == 200
    wait_for(lambda: len(inbox.messages) == 2)
    with database.sessions() as s:
        renewal = s.scalar(select(Contribution).where(Contribution.stripe_invoice_id == invoice.id))
        assert renewal is not None and renewal.parent_id == cid
    renewal_message = inbox.messages[1]
    assert renewal_message["Subject"] == (
        "Receipt for your recurring contribution to The Moscow Times"
    )
    text, html = parts(renewal_message)
    assert renewal.id in text and renewal.id in html
    assert "continued support" in text and "$10.00" in text
    smtp.send_due()
    assert len(inbox.messages) == 2
    assert [r.kind for r in outbox_rows(database)] == ["receipt", "renewal_receipt"]


def test_a_russian_reader_gets_a_russian_receipt(api, database, smtp, inbox):
    cid = pay_one_off(api, database, lang="ru", currency="eur", cover_fees=False)
    wait_for(lambda: len(inbox.messages) == 1)
    message = inbox.messages[0]
    assert message["Subject"] == "Квитанция о пожертвовании — The Moscow Times"
    assert message["Content-Language"] == "ru"
    text, html = parts(message)
    assert "Здравствуйте, A Reader!" in text
    assert "Ваше пожертвование:" not in text  # no covered fee: one amount line
    assert "Всего списано: 25,00 €" in text
    assert "Разовое" in text and "Личный кабинет" in html
    with database.sessions() as s:
        assert s.get(Contribution, cid).lang == "ru"


def test_the_contribute_page_passes_the_appeals_language_on_and_bad_codes_are_refused(api):
    page = api.get("/contribute?lang=ru&currency=eur").text
    assert '"lang": "ru"' in page
    # A code we cannot speak is ignored: the page (and its receipts) speak the browser's.
    fresh = {"Accept-Language": "en-GB,en;q=0.8", "Cookie": ""}
    bad = requests.get(f"{api.base}/contribute?lang=<script>", headers=fresh, timeout=30)
    assert '"lang": "en"' in bad.text and "<script>" not in bad.text.split("checkout-config")[1]
    r = api.post("/api/v1/contributions", json={**ONE_OFF, "lang": "not a language"})
    assert r.status_code == 422
    assert "lang" in r.json()["errors"]
    spec = api.get("/openapi.json").json()
    create = spec["components"]["schemas"]["ContributionCreate"]["properties"]
    assert "lang" in create


def test_when_smtp_is_down_the_receipt_stays_pending_and_a_later_send_delivers_it(
    api, database, use_sender, inbox, smtp_server
):
    down = use_sender(smtp_host="127.0.0.1", smtp_port=free_port())  # nothing listens there
    cid = pay_one_off(api, database)

    def failed_once() -> OutboxEmail | None:
        rows = outbox_rows(database, contribution_id=cid)
        return rows[0] if rows and rows[0].attempts >= 1 else None

    row = wait_for(failed_once)
    assert row.sent_at is None and row.payload is not None
    assert row.last_error.startswith("SMTP unavailable")
    assert row.send_after > utcnow() + timedelta(seconds=90)  # backed off (2 minutes)
    assert inbox.messages == []
    down.close()

    # SMTP is back; when the backoff is over the next send delivers it.
    back = use_sender(smtp_host="127.0.0.1", smtp_port=smtp_server[0].port)
    back.close()  # sent by hand below, not by the thread
    assert back.send_due().sent == 0  # still backing off
    report = back.send_due(now=utcnow() + timedelta(minutes=3))
    assert (report.sent, report.failed) == (1, 0)
    assert len(inbox.messages) == 1
    [row] = outbox_rows(database, contribution_id=cid)
    assert row.sent_at is not None and row.payload is None and row.attempts == 1


def test_a_message_that_keeps_failing_is_given_up_and_left_visible(app, database, use_sender):
    sender = use_sender(smtp_host="127.0.0.1", smtp_port=free_port())
    sender.close()
    donor_id, _ = donor_and_contribution(database)
    queue(
        app,
        database,
        kind="sign_in_link",
        dedupe_key="link:x",
        donor_id=donor_id,
        payload={"url": "https://news.example/account/link/abc", "expires_minutes": 15},
    )
    now = utcnow()
    for _ in range(MAX_ATTEMPTS + 2):
        sender.send_due(now=now)
        now += timedelta(hours=7)  # past the longest backoff
    [row] = outbox_rows(database)
    assert row.attempts == MAX_ATTEMPTS and row.sent_at is None
    assert row.last_error.startswith("SMTP unavailable")
    assert "abc" not in row.last_error


def queue(app: Any, database: Any, **kw: Any) -> bool:
    """Enqueue as the app would, inside its context: only that app's sender wakes (other
    tests' apps share this database and have senders of their own)."""
    with app.app_context(), database.transaction() as s:
        return enqueue(s, **kw)


def donor_and_contribution(database: Any, email_address: str = "gone@example.org") -> tuple:
    with database.transaction() as s:
        donor = Donor(id=new_id("don"), email=email_address, name="Gone")
        s.add(donor)
        s.flush()
        contribution = Contribution(
            id=new_id("ctb"),
            status="succeeded",
            frequency="one_off",
            currency="usd",
            amount=500,
            fee_covered=0,
            total=500,
            donor_id=donor.id,
        )
        s.add(contribution)
        return donor.id, contribution.id


def test_an_erased_donors_pending_receipt_is_not_sent(app, database, smtp, inbox):
    donor_id, cid = donor_and_contribution(database)
    later = utcnow() + timedelta(hours=1)
    queue(
        app,
        database,
        kind="receipt",
        dedupe_key=f"receipt:{cid}",
        donor_id=donor_id,
        contribution_id=cid,
        send_after=later,
    )
    with database.transaction() as s:  # what erasure does to the donor's row
        donor = s.get(Donor, donor_id)
        donor.email, donor.name, donor.erased_at = None, None, utcnow()
    report = smtp.send_due(now=later + timedelta(minutes=1))
    assert (report.sent, report.dropped) == (0, 1)
    assert inbox.messages == []
    [row] = outbox_rows(database)
    assert row.sent_at is not None and row.last_error == DONOR_ERASED and row.payload is None
    # the row stays, so a replayed webhook cannot queue the receipt again
    assert not queue(
        app,
        database,
        kind="receipt",
        dedupe_key=f"receipt:{cid}",
        donor_id=donor_id,
        contribution_id=cid,
    )


def test_without_smtp_the_receipt_is_written_to_the_outbox_folder_and_the_log_says_where(
    api, database, use_sender, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="donations.mail")
    folder = tmp_path / "outbox"
    use_sender(smtp_host=None, outbox_path=folder)
    cid = pay_one_off(api, database)
    [path] = wait_for(lambda: list(folder.glob("*.eml")))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Your receipt from The Moscow Times"
    text, _ = parts(message)  # type: ignore[arg-type]
    assert cid in text and "$26.06" in text
    wait_for(lambda: str(path) in caplog.text)
    line = next(r.getMessage() for r in caplog.records if str(path) in r.getMessage())
    assert "r***@example.org" in line
    assert "reader@example.org" not in caplog.text.lower()  # the address only masked
    assert "$26.06" not in caplog.text  # and never a body


def test_the_mail_send_command_sends_what_is_due_and_prints_counts(
    app, database, database_url, use_sender, smtp_server, inbox, tmp_path
):
    use_sender().close()  # the app's own sender stays out of the way
    donor_id, cid = donor_and_contribution(database, "cli@example.org")
    queue(
        app,
        database,
        kind="receipt",
        dedupe_key=f"receipt:{cid}",
        donor_id=donor_id,
        contribution_id=cid,
        lang="ru",
    )
    env = {
        "DONATIONS_ENV": "test",
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": STRIPE_SECRET,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server[0].port),
        "DONATIONS_INSTANCE_PATH": str(tmp_path),
    }
    result = CliRunner().invoke(cli, ["mail", "send"], env=env)
    assert result.exit_code == 0, result.output
    assert "sent 1, failed 0, dropped 0 (donor erased); 0 waiting, 0 given up" in result.output
    assert len(inbox.messages) == 1
    assert "5,00 $" in parts(inbox.messages[0])[0]
    again = CliRunner().invoke(cli, ["mail", "send"], env=env)
    assert "sent 0, failed 0" in again.output


def test_two_senders_at_once_send_each_message_exactly_once(
    app, database, use_sender, smtp_server, inbox
):
    use_sender().close()  # the app's own sender stays out of the way
    donor_id, _ = donor_and_contribution(database, "twice@example.org")
    for i in range(12):
        queue(
            app,
            database,
            kind="sign_in_link",
            dedupe_key=f"link:{i}",
            donor_id=donor_id,
            payload={"url": f"https://news.example/account/sign-in/{i}", "expires_minutes": 15},
        )
    smtp_settings = app.extensions["donations"].settings.with_overrides(
        smtp_host="127.0.0.1", smtp_port=smtp_server[0].port
    )
    senders = [MailSender(database, smtp_settings) for _ in range(2)]
    reports = []
    threads = [threading.Thread(target=lambda s=s: reports.append(s.send_due())) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in senders:
        s.close()
    assert sum(r.sent for r in reports) == 12
    links = sorted(
        parts(m)[0].split("https://news.example/account/sign-in/")[1].split("?")[0].split()[0]
        for m in inbox.messages
    )
    assert links == sorted(str(i) for i in range(12))
    assert all(r.sent_at is not None for r in outbox_rows(database))
