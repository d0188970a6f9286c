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


@pytest.fixture
def seeded(database):
    """A ledger whose totals are known by construction."""
    d0, d1 = date(2026, 3, 1), date(2026, 3, 2)
    with database.transaction() as s:
        post(
            s,
            "payment:ch_1",
            a.PAYMENT_ONE_OFF,
            postings.payment(2606, 2500, 106, recurring=False),
            d0,
        )
        post(s, "fee:txn_1", a.STRIPE_FEE, postings.stripe_fee(106), d0)
        post(
            s,
            "payment:ch_2",
            a.PAYMENT_RECURRING,
            postings.payment(1000, 1000, 0, recurring=True),
            d0,
        )
        post(
            s,
            "payment:ch_3",
            a.PAYMENT_ONE_OFF,
            postings.payment(500, 500, 0, recurring=False),
            d0,
            "eur",
        )
        post(s, "refund:re_1", a.REFUND, postings.refund(400), d1)  # a refund on its own day
        post(s, "dispute:dp_1", a.DISPUTE, postings.dispute(1000), d1)
        post(s, "fee:txn_2", a.STRIPE_FEE, postings.stripe_fee(1500), d1)
        post(s, "payout:po_1", a.PAYOUT, postings.payout(300), d1)
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
    )
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
