"""The whole donor path over real SMTP and localstripe: a monthly gift → its receipt by email →
a sign-in link by email → the account page → cancel → Stripe's webhook → the ledger."""

from __future__ import annotations

import re

from sqlalchemy import select

from donations.checkout.models import Contribution, Subscription
from donations.ledger import accounts as a
from donations.ledger import journal
from donations.webhooks.models import StripeEvent
from tests.conftest import wait_for
from tests.integration.test_account import csrf_of, form_token, path_of
from tests.integration.test_receipts import parts, subscribe_monthly

LINK = re.compile(r"https?://[^\s\"<>]+/account/sign-in/[A-Za-z0-9._-]+")
DONOR = "monthly@example.org"


def test_receipt_then_link_then_cancel_then_webhook_then_ledger(
    api, database, stripe_client, smtp, inbox
):
    # 1. a monthly gift, paid through localstripe: its receipt arrives by SMTP
    cid = subscribe_monthly(api, database, stripe_client)
    wait_for(lambda: len(inbox.messages) == 1)
    receipt = inbox.messages[0]
    assert receipt["To"] == DONOR
    text, _ = parts(receipt)
    assert cid in text and "$10.00" in text and "/account" in text

    # 2. the donor asks for a sign-in link; it arrives by SMTP too
    token = form_token(api)
    r = api.post("/account/sign-in", data={"email": DONOR, "csrf_token": token})
    assert r.status_code == 200
    wait_for(lambda: len(inbox.messages) == 2)
    link_text, _ = parts(inbox.messages[1])
    (url,) = set(LINK.findall(link_text))

    # 3. opening it (then Continue) signs in; the account page lists the gift
    page = api.get(path_of(url))
    assert page.status_code == 200
    r = api.post(path_of(url), data={"csrf_token": csrf_of(page.text)}, allow_redirects=False)
    assert r.status_code == 303
    account = api.get("/account")
    assert cid in account.text or "$10.00" in account.text
    csrf = csrf_of(account.text)

    with database.sessions() as s:
        sub_id = s.get(Contribution, cid).stripe_subscription_id
        balance_before = journal.account_total(s, a.STRIPE_BALANCE, "usd")
    assert balance_before == 1000

    # 4. cancel now, through Stripe
    r = api.post(
        f"/account/subscriptions/{sub_id}/cancel",
        data={"csrf_token": csrf, "when": "now"},
        allow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert stripe_client.v1.subscriptions.retrieve(sub_id).status == "canceled"

    # 5. Stripe's own webhook arrives and agrees; the change is emailed
    def deletion_booked() -> bool:
        with database.sessions() as s:
            return bool(
                s.scalar(
                    select(StripeEvent.id).where(
                        StripeEvent.type == "customer.subscription.deleted"
                    )
                )
            )

    wait_for(deletion_booked)
    wait_for(lambda: len(inbox.messages) == 3)
    change_text, _ = parts(inbox.messages[2])
    assert "cancel" in change_text.lower()

    # 6. the ledger: the one payment stays booked, nothing moved, every currency balances
    with database.sessions() as s:
        assert s.get(Subscription, sub_id).status == "canceled"
        assert s.get(Contribution, cid).status == "succeeded"
        assert journal.account_total(s, a.STRIPE_BALANCE, "usd") == balance_before
        assert journal.trial_balance(s)[1]
