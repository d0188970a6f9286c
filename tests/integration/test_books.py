"""Admin tokens, the summary report and the trial balance, read from the ledger."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from donations.admin.tokens import create_token
from donations.ledger import accounts as a
from donations.ledger import journal, postings

TODAY = datetime.now(UTC).date()


@pytest.fixture
def token(database):
    with database.transaction() as s:
        return create_token(s, "test")


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def post(session, key, kind, lines, day, currency="usd"):
    journal.post(
        session,
        key=key,
        kind=kind,
        currency=currency,
        lines=lines,
        occurred_at=datetime.combine(day, datetime.min.time()) + timedelta(hours=12),
        stripe_object_id=key.split(":")[1],
    )


def paid(charged, gift, covered, currency="usd", *, recurring=False, settled=None, settle_in=None):
    return postings.payment(
        charged,
        gift,
        covered,
        currency=currency,
        settled=charged if settled is None else settled,
        settlement_currency=settle_in or currency,
        recurring=recurring,
    )


def returned(contra, amount, currency="usd"):
    return postings.returned(
        contra,
        amount,
        currency=currency,
        settled=amount,
        at_rate=amount,
        settlement_currency=currency,
    )


@pytest.fixture
def seeded(database):
    """A ledger whose totals are known by construction."""
    d0, d1 = date(2026, 3, 1), date(2026, 3, 2)
    with database.transaction() as s:
        post(s, "payment:ch_1", a.PAYMENT_ONE_OFF, paid(2606, 2500, 106), d0)
        post(s, "fee:txn_1", a.STRIPE_FEE, postings.stripe_fee(106, "usd"), d0)
        post(s, "payment:ch_2", a.PAYMENT_RECURRING, paid(1000, 1000, 0, recurring=True), d0)
        post(s, "payment:ch_3", a.PAYMENT_ONE_OFF, paid(500, 500, 0, "eur"), d0, "eur")
        # a refund on its own day
        post(s, "refund:re_1", a.REFUND, returned(a.REFUNDS, 400), d1)
        post(s, "dispute:dp_1", a.DISPUTE, returned(a.DISPUTES, 1000), d1)
        post(s, "fee:txn_2", a.STRIPE_FEE, postings.stripe_fee(1500, "usd"), d1)
        post(s, "payout:po_1", a.PAYOUT, postings.payout(300, "usd"), d1)
        post(s, "payout_paid:po_1", a.PAYOUT_PAID, postings.payout_paid(300, "usd"), d1)
    return d0, d1


def test_admin_endpoints_refuse_missing_and_wrong_tokens(api, token):
    for path in ("/api/v1/admin/reports/summary", "/api/v1/admin/ledger/trial-balance"):
        assert api.get(path).status_code == 401
        assert api.get(path, headers=auth("dnt_not-a-token")).status_code == 401
        assert api.get(path, headers={"Authorization": token}).status_code == 401
        assert api.get(path, headers=auth(token)).status_code == 200


def test_the_summary_counts_each_amount_on_the_day_it_happened(api, token, seeded):
    d0, d1 = seeded
    r = api.get(f"/api/v1/admin/reports/summary?from={d0}&to={d1}", headers=auth(token))
    assert r.status_code == 200
    body = r.json()
    assert body["from"] == str(d0) and body["to"] == str(d1)
    usd = body["currencies"]["usd"]
    assert usd == {
        "count": 2,
        "gross": 3606,
        "fees": 1606,
        "fee_covered": 106,
        "refunds": 400,
        "disputes": 1000,
        "net": 3606 - 1606 - 400 - 1000,
        "one_off": {"count": 1, "gross": 2606},
        "recurring": {"count": 1, "gross": 1000},
    }
    assert body["currencies"]["eur"]["gross"] == 500
    first_day = api.get(f"/api/v1/admin/reports/summary?from={d0}&to={d0}", headers=auth(token))
    assert first_day.json()["currencies"]["usd"]["refunds"] == 0


def test_the_summary_net_agrees_with_the_trial_balance(api, token, seeded):
    d0, d1 = seeded
    summary = api.get(
        f"/api/v1/admin/reports/summary?from={d0}&to={d1}", headers=auth(token)
    ).json()
    tb = api.get("/api/v1/admin/ledger/trial-balance", headers=auth(token)).json()
    assert tb["balanced"] is True
    balances = {(row["account"], row["currency"]): row["balance"] for row in tb["accounts"]}
    # net stays at Stripe or went to the bank
    assert (
        summary["currencies"]["usd"]["net"]
        == balances[(a.STRIPE_BALANCE, "usd")] + balances[(a.BANK, "usd")]
        == summary["settlement"]["usd"]["net"]
    )
    assert summary["settlement"]["usd"]["payouts"] == balances[(a.BANK, "usd")] == 300
    assert sum(v for (acc, cur), v in balances.items() if cur == "usd") == 0


def test_bad_report_queries_get_422_naming_the_field(api, token):
    r = api.get("/api/v1/admin/reports/summary?from=2026-13-01", headers=auth(token))
    assert r.status_code == 422 and "from" in r.json()["errors"]
    r = api.get("/api/v1/admin/reports/summary?from=2026-03-05&to=2026-03-01", headers=auth(token))
    assert r.status_code == 422 and "from" in r.json()["errors"]


def test_create_admin_token_prints_the_token_alone_on_its_last_line(migrated_url, api, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "donations.cli", "create-admin-token", "--name", "cli"],
        env={"DATABASE_URL": migrated_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("dnt_")
    assert api.get("/api/v1/admin/ledger/trial-balance", headers=auth(token)).status_code == 200


def test_a_usd_gift_settled_in_eur_is_reported_in_both_currencies_with_its_exchange_loss(
    api, token, database
):
    """$100 settles as €92.00 less a €2.97 fee; refunded in full when $100 cost €95.00."""
    day = date(2026, 4, 1)
    with database.transaction() as s:
        post(
            s,
            "payment:ch_fx",
            a.PAYMENT_ONE_OFF,
            paid(10000, 10000, 0, settled=9200, settle_in="eur"),
            day,
        )
        post(s, "fee:txn_fx", a.STRIPE_FEE, postings.stripe_fee(297, "eur"), day, "eur")
        at_rate = postings.at_payment_rate(10000, 10000, 9200)
        refund = postings.returned(
            a.REFUNDS,
            10000,
            currency="usd",
            settled=9500,
            at_rate=at_rate,
            settlement_currency="eur",
        )
        post(s, "refund:re_fx", a.REFUND, refund, day)
    body = api.get(f"/api/v1/admin/reports/summary?from={day}&to={day}", headers=auth(token)).json()
    assert body["currencies"] == {
        "usd": {
            "count": 1,
            "gross": 10000,
            "fees": 0,  # the fee settled in eur, not in the donor's currency
            "fee_covered": 0,
            "refunds": 10000,
            "disputes": 0,
            "net": 0,
            "one_off": {"count": 1, "gross": 10000},
            "recurring": {"count": 0, "gross": 0},
        }
    }
    assert body["settlement"] == {
        "eur": {
            "gross": 9200,
            "fees": 297,
            "refunds": 9200,  # at the payment's rate ...
            "disputes": 0,
            "exchange": -300,  # ... and the €3.00 more it cost is an exchange loss
            "net": 9200 - 297 - 9200 - 300,
            "payouts": 0,
        }
    }
    tb = api.get("/api/v1/admin/ledger/trial-balance", headers=auth(token)).json()
    assert tb["balanced"] is True
    balances = {(row["account"], row["currency"]): row["balance"] for row in tb["accounts"]}
    assert balances[(a.STRIPE_BALANCE, "eur")] == 9200 - 297 - 9500
    assert balances[(a.EXCHANGE_DIFFERENCES, "eur")] == 300
    # once the gift is wholly refunded, nothing is left in clearing in either currency
    assert balances.get((a.EXCHANGE_CLEARING, "usd"), 0) == 0
    assert balances.get((a.EXCHANGE_CLEARING, "eur"), 0) == 0
    assert (a.STRIPE_BALANCE, "usd") not in balances
