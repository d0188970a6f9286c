"""The money path against Stripe's API at the pinned version (2026-10-28.endive), played by
the stand-in in tests/standin: every expectation below is what the books must say, line by
line, when Stripe answers in the shapes a newsroom's own key gets."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from tests.conftest import Api, book_webhooks, empty_tables, wait_for
from tests.endive import Endive


@pytest.fixture
def endive(endive_server, standin, endive_database):
    empty_tables(endive_database)
    standin.reset()
    standin.settlement_currency = "usd"
    standin.latency = 0.0
    return Endive(Api(endive_server.url), standin, endive_database)


def fee_of(settled: int) -> int:
    """The stand-in's Stripe fee: 2.9% (half to even) + 30, in the settlement currency."""
    return round(settled * 29 / 1000) + 30


# --- checkout -----------------------------------------------------------------------------------
def test_checkout_asks_stripe_for_card_payments_the_pinned_version_way(endive):
    cid = endive.give(2500)
    refused = [r for r in endive.standin.requests if r[0] == "POST" and "payment_intents" in r[1]]
    assert refused, "the service created a PaymentIntent at the stand-in"
    pi = endive.standin.get(endive.row(cid).stripe_payment_intent_id)
    assert pi["status"] == "succeeded" and pi["metadata"]["contribution_id"] == cid
    assert "payment_method_types" not in pi or pi["payment_method_types"] == ["card"]


def test_a_one_off_gift_books_its_payment_and_fee_in_the_right_directions(endive):
    cid = endive.give(5000, cover_fees=True)
    endive.deliver()
    c = endive.row(cid)
    assert c.status == "succeeded" and c.total == 5181 and c.fee_covered == 181
    charge = endive.charge_of(cid)
    txn = endive.standin.get(charge["balance_transaction"])
    assert txn["fee"] == fee_of(5181) > 0
    payment = endive.lines(f"payment:{charge['id']}")
    assert payment == {
        (a.STRIPE_BALANCE, "usd"): 5181,  # debit: the balance grows
        (a.GIFTS_ONE_OFF, "usd"): -5000,  # credit: income
        (a.COVERED_FEES, "usd"): -181,
    }
    assert endive.lines(f"fee:{txn['id']}") == {
        (a.STRIPE_FEES, "usd"): txn["fee"],  # debit: an expense
        (a.STRIPE_BALANCE, "usd"): -txn["fee"],  # credit: taken from the balance
    }
    endive.assert_books_match_stripe()


def test_a_declined_card_leaves_the_gift_failed_and_a_second_card_pays_it(endive):
    started = endive.start(3000)
    cid = started["contribution"]["id"]
    r = endive.api.post(
        f"/api/v1/contributions/{cid}/confirm",
        json={"payment_method": "pm_card_chargeCustomerFail"},
    )
    assert r.status_code == 402
    endive.deliver()
    assert endive.row(cid).status == "failed"
    r = endive.api.post(
        f"/api/v1/contributions/{cid}/confirm", json={"payment_method": "pm_card_visa"}
    )
    assert r.status_code == 200, r.text
    endive.deliver()
    assert endive.row(cid).status == "succeeded"
    endive.assert_books_match_stripe()


def test_waiting_on_stripe_to_start_or_confirm_a_gift_holds_no_lock_other_writers_need(endive):
    """A slow Stripe (each call here takes a second) must not stop every other write while a
    gift is started or confirmed: on SQLite, whose one write lock a transaction took at BEGIN,
    a distant Stripe made checkout 2 per second (bench/webhooks.py) and a create wait 30 s."""
    import threading

    from donations.checkout.models import Donor

    started = endive.start(2600)
    cid = started["contribution"]["id"]
    endive.standin.latency = 1.0
    answers: dict[str, int] = {}

    def confirm() -> None:
        r = endive.api.post(
            f"/api/v1/contributions/{cid}/confirm", json={"payment_method": "pm_card_visa"}
        )
        answers["confirm"] = r.status_code

    def start() -> None:
        answers["start"] = endive.api.post(
            "/api/v1/contributions",
            json={"amount": 1000, "currency": "usd", "frequency": "one_off",
                  "email": "second@example.org"},
        ).status_code  # fmt: skip

    for name, work in (("confirm", confirm), ("start", start)):
        seen = len(endive.standin.requests)
        asker = threading.Thread(target=work, name=f"slow-{name}")
        asker.start()
        wait_for(lambda: len(endive.standin.requests) > seen, timeout=10)  # it waits on Stripe
        with endive.database.transaction() as s:  # another writer, meanwhile
            s.add(Donor(id=f"don_meanwhile_{name}", email=f"meanwhile-{name}@example.org"))
        assert asker.is_alive(), f"the write waited for the {name} to finish with Stripe"
        asker.join(timeout=30)
    endive.standin.latency = 0.0
    assert answers == {"confirm": 200, "start": 201}


# --- recurring ----------------------------------------------------------------------------------
def test_a_monthly_gift_books_its_first_invoice_and_every_renewal(endive):
    cid = endive.give(1500, frequency="monthly")
    endive.deliver()
    first = endive.row(cid)
    assert first.status == "succeeded" and first.stripe_subscription_id
    assert first.stripe_invoice_id
    sub = first.stripe_subscription_id
    for _ in range(2):
        endive.standin.renew(sub)
    endive.deliver()
    renewals = endive.renewals(cid)
    assert [r.status for r in renewals] == ["succeeded", "succeeded"]
    assert all(r.frequency == "monthly" and r.total == 1500 for r in renewals)
    assert endive.total(a.GIFTS_RECURRING, "usd") == -1500 * 3
    endive.assert_books_match_stripe()


def test_a_declined_first_monthly_payment_ends_failed_not_pending(endive):
    cid = endive.give(1500, frequency="monthly", card="pm_card_chargeCustomerFail", expect=402)
    endive.deliver()
    assert endive.row(cid).status == "failed"
    assert endive.keys(cid) == []


def test_every_event_about_one_invoice_at_once_books_it_once(endive):
    """invoice.paid, invoice.payment_succeeded, invoice_payment.paid, payment_intent.succeeded
    and charge.succeeded, all together, three times each: one payment, no 5xx."""
    cid = endive.give(2000, frequency="monthly")
    endive.deliver()
    endive.standin.renew(endive.row(cid).stripe_subscription_id)
    about_money = [
        e
        for e in endive.standin.undelivered()
        if e["type"]
        in {
            "invoice.paid",
            "invoice.payment_succeeded",
            "invoice_payment.paid",
            "payment_intent.succeeded",
            "charge.succeeded",
        }
    ]
    assert len(about_money) == 5
    codes = endive.standin.deliver(about_money, duplicates=3, concurrent=True)
    assert codes == [200] * 15
    book_webhooks()
    endive.deliver()
    (renewal,) = endive.renewals(cid)
    assert renewal.status == "succeeded"
    assert sum(k.startswith("payment:") for k in endive.keys(renewal.id)) == 1
    endive.assert_books_match_stripe()


def test_a_payment_event_costs_at_most_two_stripe_round_trips(endive):
    cid = endive.give(2000, frequency="monthly")
    endive.standin.renew(endive.row(cid).stripe_subscription_id)
    pending = endive.standin.undelivered()
    calls = {}
    for event in pending:
        before = len(endive.standin.requests)
        endive.deliver(events=[event])
        calls.setdefault(event["type"], []).append(len(endive.standin.requests) - before)
    for type_ in (
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice_payment.paid",
        "payment_intent.succeeded",
        "charge.succeeded",
    ):
        assert max(calls[type_]) <= 2, (type_, calls[type_])
    assert max(calls["invoice.paid"]) == 2  # the invoice with its intent, then the charge
    one_off = endive.give(1000)
    endive.standin.requests.clear()
    event = next(e for e in endive.standin.undelivered() if e["type"] == "payment_intent.succeeded")
    endive.deliver(events=[event])
    assert len(endive.standin.requests) == 1  # a one-off names its contribution: no look-up
    assert endive.row(one_off).status == "succeeded"


# --- refunds ------------------------------------------------------------------------------------
def test_a_refund_made_in_stripes_dashboard_and_its_failure_follow_the_money(endive):
    cid = endive.give(4000)
    endive.deliver()
    charge = endive.charge_of(cid)
    partial = endive.standin.refund(charge["id"], 1000)
    endive.deliver()
    c = endive.row(cid)
    assert (c.status, c.refunded_amount) == ("partially_refunded", 1000)
    assert endive.lines(f"refund:{partial['id']}") == {
        (a.REFUNDS, "usd"): 1000,
        (a.STRIPE_BALANCE, "usd"): -1000,
    }
    rest = endive.standin.refund(charge["id"])
    endive.deliver()
    assert endive.row(cid).status == "refunded"
    endive.standin.fail_refund(rest["id"])
    endive.deliver()
    c = endive.row(cid)
    assert (c.status, c.refunded_amount) == ("partially_refunded", 1000)  # refunded undone
    assert endive.lines(f"refund_reversal:{rest['id']}") == {
        (a.STRIPE_BALANCE, "usd"): 3000,
        (a.REFUNDS, "usd"): -3000,
    }
    endive.assert_books_match_stripe()


def test_a_refund_of_a_monthly_gift_is_booked_against_its_renewal(endive):
    cid = endive.give(1500, frequency="monthly")
    endive.standin.renew(endive.row(cid).stripe_subscription_id)
    endive.deliver()
    (renewal,) = endive.renewals(cid)
    endive.standin.refund(renewal.stripe_charge_id)
    endive.deliver()
    assert endive.row(renewal.id).status == "refunded"
    assert endive.row(cid).status == "succeeded"
    endive.assert_books_match_stripe()


# --- disputes -----------------------------------------------------------------------------------
def test_an_inquiry_moves_no_money_and_books_nothing(endive):
    cid = endive.give(3000)
    endive.deliver()
    before = endive.keys(cid)
    inquiry = endive.standin.dispute(endive.charge_of(cid)["id"], inquiry=True)
    endive.deliver()
    endive.standin.close_dispute(inquiry["id"], won=False)  # warning_closed
    endive.deliver()
    assert endive.keys(cid) == before
    assert endive.row(cid).status == "succeeded"
    endive.assert_books_match_stripe()


def test_a_lost_chargeback_takes_the_amount_and_its_fee(endive):
    cid = endive.give(3000)
    endive.deliver()
    dispute = endive.standin.dispute(endive.charge_of(cid)["id"])
    endive.deliver()
    assert endive.row(cid).status == "disputed"
    (withdrawal,) = endive.standin.get(dispute["id"])["balance_transactions"]
    assert endive.lines(f"dispute:{dispute['id']}") == {
        (a.DISPUTES, "usd"): 3000,
        (a.STRIPE_BALANCE, "usd"): -3000,
    }
    assert endive.lines(f"fee:{withdrawal['id']}") == {
        (a.STRIPE_FEES, "usd"): 1500,
        (a.STRIPE_BALANCE, "usd"): -1500,
    }
    endive.standin.close_dispute(dispute["id"], won=False)
    endive.deliver()
    assert endive.row(cid).status == "disputed"
    endive.assert_books_match_stripe()


def test_a_won_chargeback_returns_the_gift_to_succeeded(endive):
    cid = endive.give(3000)
    endive.deliver()
    dispute = endive.standin.dispute(endive.charge_of(cid)["id"])
    endive.deliver()
    endive.standin.close_dispute(dispute["id"], won=True)
    endive.deliver()
    assert endive.row(cid).status == "succeeded"
    assert endive.total(a.DISPUTES, "usd", cid) == 0
    assert endive.lines(f"dispute_reversal:{dispute['id']}") == {
        (a.STRIPE_BALANCE, "usd"): 3000,
        (a.DISPUTES, "usd"): -3000,
    }
    endive.assert_books_match_stripe()


def test_a_dispute_delivered_before_its_payment_books_the_payment_first(endive):
    cid = endive.give(3000)
    endive.standin.dispute(endive.charge_of(cid)["id"])
    disputes = [e for e in endive.standin.undelivered() if e["type"].startswith("charge.dispute")]
    endive.deliver(events=disputes)
    assert endive.row(cid).status == "disputed"
    endive.deliver()
    assert endive.row(cid).status == "disputed"
    endive.assert_books_match_stripe()


# --- payouts ------------------------------------------------------------------------------------
def test_a_payout_is_in_transit_until_paid_then_in_the_bank(endive):
    endive.give(10000)
    endive.deliver()
    payout = endive.standin.create_payout()
    endive.deliver()
    assert endive.per_currency(a.PAYOUTS_IN_TRANSIT)["usd"] == payout["amount"]
    assert endive.per_currency(a.BANK).get("usd", 0) == 0
    endive.standin.pay_payout(payout["id"])
    endive.deliver()
    assert endive.per_currency(a.BANK)["usd"] == payout["amount"]
    assert endive.per_currency(a.PAYOUTS_IN_TRANSIT)["usd"] == 0
    endive.assert_books_match_stripe()


@pytest.mark.parametrize("ends", ["failed", "canceled"])
def test_a_failed_or_canceled_payout_returns_to_the_stripe_balance(endive, ends):
    endive.give(10000)
    endive.deliver()
    payout = endive.standin.create_payout(5000)
    if ends == "failed":
        endive.standin.fail_payout(payout["id"])
    else:
        endive.standin.cancel_payout(payout["id"])
    endive.deliver()
    assert endive.per_currency(a.BANK).get("usd", 0) == 0
    assert endive.per_currency(a.PAYOUTS_IN_TRANSIT)["usd"] == 0
    endive.assert_books_match_stripe()


def test_payout_failed_delivered_before_payout_paid_never_reaches_the_bank(endive):
    endive.give(10000)
    endive.deliver()
    payout = endive.standin.create_payout(4000)
    endive.standin.pay_payout(payout["id"])
    endive.standin.fail_payout(payout["id"])
    events = endive.standin.undelivered()
    endive.deliver(events=list(reversed(events)))
    assert endive.per_currency(a.BANK).get("usd", 0) == 0
    endive.assert_books_match_stripe()


def test_a_payout_the_bank_returns_after_it_was_paid_leaves_the_bank(endive):
    endive.give(10000)
    endive.deliver()
    payout = endive.standin.create_payout(4000)
    endive.standin.pay_payout(payout["id"])
    endive.deliver()
    assert endive.per_currency(a.BANK)["usd"] == 4000
    endive.standin.fail_payout(payout["id"])
    endive.deliver()
    assert endive.per_currency(a.BANK)["usd"] == 0
    endive.assert_books_match_stripe()


# --- a newsroom settled in EUR, taking USD and GBP gifts ---------------------------------------
def test_a_eur_settled_newsroom_taking_usd_and_gbp_keeps_every_currency_to_the_cent(endive):
    endive.standin.settlement_currency = "eur"
    usd = endive.give(10000, "usd")
    gbp = endive.give(5000, "gbp", frequency="monthly")
    endive.deliver()
    charge = endive.charge_of(usd)
    txn = endive.standin.get(charge["balance_transaction"])
    assert (txn["currency"], txn["amount"]) == ("eur", 9200)
    assert endive.lines(f"payment:{charge['id']}") == {
        (a.STRIPE_BALANCE, "eur"): 9200,
        (a.EXCHANGE_CLEARING, "eur"): -9200,
        (a.EXCHANGE_CLEARING, "usd"): 10000,
        (a.GIFTS_ONE_OFF, "usd"): -10000,
    }
    # the dollar weakens; half the gift is refunded at the new rate
    endive.standin.set_rate("usd", 0.95)
    endive.standin.refund(charge["id"], 5000)
    endive.standin.renew(endive.row(gbp).stripe_subscription_id)
    endive.deliver()
    refund_key = next(k for k in endive.keys(usd) if k.startswith("refund:"))
    assert endive.lines(refund_key) == {
        (a.REFUNDS, "usd"): 5000,
        (a.EXCHANGE_CLEARING, "usd"): -5000,
        (a.EXCHANGE_CLEARING, "eur"): 4600,  # half the payment, at its own rate
        (a.EXCHANGE_DIFFERENCES, "eur"): 150,  # what converting at 0.95 cost more
        (a.STRIPE_BALANCE, "eur"): -4750,
    }
    assert endive.row(usd).status == "partially_refunded"
    balances = endive.per_currency(a.STRIPE_BALANCE)
    assert set(balances) == {"eur"}  # gifts in three currencies, one Stripe balance
    endive.assert_books_match_stripe()
    token = endive_token(endive)
    body = endive.api.get(
        "/api/v1/admin/reports/summary", headers={"Authorization": f"Bearer {token}"}
    ).json()
    eur = body["settlement"]["eur"]
    assert eur["exchange"] == -150
    assert eur["net"] == endive.standin.balance()["eur"]
    assert body["currencies"]["usd"]["gross"] == 10000
    assert body["currencies"]["gbp"]["count"] == 2


def endive_token(endive):
    from donations.admin.tokens import create_token

    with endive.database.transaction() as s:
        return create_token(s, "endive")


# --- deliveries duplicated and reordered --------------------------------------------------------
def test_duplicated_shuffled_concurrent_deliveries_book_what_one_clean_delivery_books(endive):
    cid = endive.give(2500, cover_fees=True)
    monthly = endive.give(1000, frequency="monthly")
    endive.standin.renew(endive.row(monthly).stripe_subscription_id)
    charge = endive.charge_of(cid)
    endive.standin.refund(charge["id"], 700)
    dispute = endive.standin.dispute(charge["id"])
    endive.standin.close_dispute(dispute["id"], won=True)
    payout = endive.standin.create_payout(1000)
    endive.standin.pay_payout(payout["id"])
    codes = endive.standin.deliver(duplicates=2, shuffle=random.Random(7), concurrent=True)
    assert set(codes) == {200}
    book_webhooks()
    assert endive.row(cid).status == "partially_refunded"
    assert [r.status for r in endive.renewals(monthly)] == ["succeeded"]
    endive.assert_books_match_stripe()


# --- reconciliation by balance transactions -----------------------------------------------------
def run_reconcile(endive, endive_url, *args):
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime

    from tests.conftest import STRIPE_SECRET

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": endive_url,
        "STRIPE_API_BASE": endive.standin.base,  # the real API's dialect: no STRIPE_EMULATOR
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


def test_reconcile_books_every_lost_delivery_from_balance_transactions(endive, endive_url):
    """Nothing is delivered: a one-off with a refund, a monthly gift and its renewal, a lost
    chargeback, a payout still in transit and one paid. Reconcile finds each, books each
    exactly as the webhooks would, and then finds nothing."""
    one_off = endive.give(4000, cover_fees=True)
    monthly = endive.give(1500, frequency="monthly")
    endive.standin.renew(endive.row(monthly).stripe_subscription_id)
    charge = endive.charge_of(one_off)
    endive.standin.refund(charge["id"], 500)
    disputed = endive.give(2000)
    endive.standin.dispute(endive.charge_of(disputed)["id"])
    in_transit = endive.standin.create_payout(1000)
    paid = endive.standin.create_payout(2000)
    endive.standin.pay_payout(paid["id"])

    dry = run_reconcile(endive, endive_url)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    for what in ("charge not booked", "refund not booked", "adjustment not booked"):
        assert what in dry.stdout, dry.stdout
    assert dry.stdout.count("charge not booked") == 4  # the subscription's two charges too
    assert "balance transactions checked" in dry.stderr
    assert endive.keys() == []  # a dry run changes nothing

    applied = run_reconcile(endive, endive_url, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "FIXED" in applied.stdout
    endive.assert_books_match_stripe()
    assert endive.row(one_off).status == "partially_refunded"
    assert endive.row(monthly).status == "succeeded"
    assert [r.status for r in endive.renewals(monthly)] == ["succeeded"]
    assert endive.row(disputed).status == "disputed"
    assert endive.per_currency(a.BANK)["usd"] == 2000  # only the paid payout is in the bank
    assert endive.per_currency(a.PAYOUTS_IN_TRANSIT)["usd"] == in_transit["amount"] == 1000

    again = run_reconcile(endive, endive_url)
    assert again.returncode == 0, again.stdout
    assert "0 difference(s)" in again.stderr
    # the webhooks arriving late change nothing more
    before = endive.keys()
    endive.deliver()
    assert endive.keys() == before


def test_reconcile_books_money_that_is_not_about_contributions_aside(endive, endive_url):
    """Another product's charge on the same account moves Stripe's balance too: reconcile
    books it aside (suspense), never as a contribution, so the balances still agree."""
    pi = endive.stripe.v1.payment_intents.create(
        params={"amount": 999, "currency": "usd", "allowed_payment_method_types": ["card"]}
    )
    endive.stripe.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    dry = run_reconcile(endive, endive_url)
    assert dry.returncode == 1 and "charge not a contribution" in dry.stdout, dry.stdout
    applied = run_reconcile(endive, endive_url, "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    net = endive.standin.balance()["usd"]
    assert endive.per_currency(a.OTHER_STRIPE_ACTIVITY)["usd"] == -net
    with endive.database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contribution)) == 0
    endive.assert_books_match_stripe()
    assert run_reconcile(endive, endive_url).returncode == 0


def test_entries_booked_before_they_named_their_transactions_are_not_booked_twice(
    endive, endive_url
):
    """A payment, its fee and a payout booked by the service before migration 0006 (no
    balance transaction named, the payout straight to the bank): reconcile adds nothing, and
    the payout's late events do not pay it into the bank a second time."""
    from donations.ledger import journal, postings

    cid = endive.give(5000)
    charge = endive.charge_of(cid)
    txn = endive.standin.get(charge["balance_transaction"])
    payout = endive.standin.create_payout(3000)
    endive.standin.pay_payout(payout["id"])
    with endive.database.transaction() as s:
        c = s.get(Contribution, cid)
        c.stripe_charge_id, c.status = charge["id"], "succeeded"
        common = {"occurred_at": datetime.now(UTC).replace(tzinfo=None), "contribution_id": cid}
        journal.post(
            s,
            key=f"payment:{charge['id']}",
            kind=a.PAYMENT_ONE_OFF,
            currency="usd",
            stripe_object_id=charge["id"],
            lines=postings.payment(
                5000,
                5000,
                0,
                currency="usd",
                settled=5000,
                settlement_currency="usd",
                recurring=False,
            ),
            **common,
        )
        journal.post(
            s,
            key=f"fee:{txn['id']}",
            kind=a.STRIPE_FEE,
            currency="usd",
            stripe_object_id=txn["id"],
            lines=postings.stripe_fee(txn["fee"], "usd"),
            **common,
        )
        journal.post(  # the old shape: a paid payout went straight to the bank
            s,
            key=f"payout:{payout['id']}",
            kind=a.PAYOUT,
            currency="usd",
            occurred_at=common["occurred_at"],
            stripe_object_id=payout["id"],
            lines=[(a.BANK, "usd", 3000), (a.STRIPE_BALANCE, "usd", -3000)],
        )
    before = endive.keys()
    result = run_reconcile(endive, endive_url, "--apply")
    assert result.returncode == 0, result.stdout + result.stderr
    assert endive.keys() == before  # nothing booked twice, no correction
    endive.deliver()  # the payout's own events, late
    assert endive.per_currency(a.BANK)["usd"] == 3000
    assert endive.per_currency(a.PAYOUTS_IN_TRANSIT).get("usd", 0) == 0
    assert endive.per_currency(a.STRIPE_BALANCE)["usd"] == endive.standin.balance()["usd"]


def test_a_payout_whose_failure_is_booked_is_never_then_booked_as_paid(endive):
    database = endive.database
    """Facts are gathered before the write: a `payout.paid` gathered before its failure and
    written after it must not put the money in the bank."""
    from donations.ledger import booking
    from donations.stripe.facts import parse_payout

    endive.give(10000)
    payout = endive.standin.create_payout(4000)
    endive.standin.pay_payout(payout["id"])
    seen_paid = endive.standin.get(payout["id"])
    endive.standin.fail_payout(payout["id"])
    endive.deliver()
    stale = parse_payout(
        {
            **seen_paid,
            "balance_transaction": endive.standin.get(seen_paid["balance_transaction"]),
        }
    )
    assert stale.status == "paid"
    with database.transaction() as s:
        booking.Books(s).apply(booking.PayoutState(stale))
    assert endive.per_currency(a.BANK).get("usd", 0) == 0
    endive.assert_books_match_stripe()
