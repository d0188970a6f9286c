"""The admin reports over real HTTP, against books and counts whose totals are known by
construction: several currencies (one zero-decimal), refunds and disputes days after their
payments, a recurring renewal, event counts inside and outside the range."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import time
import tracemalloc
from datetime import date, datetime, timedelta

import pytest
from scipy import stats as sp
from sqlalchemy import insert

from donations.admin.tokens import create_token
from donations.appeals.models import Campaign, EventCount
from donations.checkout.models import Contribution, Donor, Subscription
from donations.ledger import accounts as a
from donations.ledger import journal, postings
from donations.reports import rollups

D0, D1, D2, D3 = (date(2026, 3, 1) + timedelta(days=n) for n in range(4))
BEFORE = date(2026, 2, 28)
RANGE = f"from={D0}&to={D3}"


@pytest.fixture
def token(database):
    with database.transaction() as s:
        return create_token(s, "reports")


@pytest.fixture
def admin(api, token):
    api.http.headers["Authorization"] = f"Bearer {token}"
    return api


def at(day, hour=12, minute=0):
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, minutes=minute)


def refund_lines(amount, currency="usd"):
    return postings.returned(
        a.REFUNDS,
        amount,
        currency=currency,
        settled=amount,
        at_rate=amount,
        settlement_currency=currency,
    )


def dispute_lines(amount, currency="usd"):
    return postings.returned(
        a.DISPUTES,
        amount,
        currency=currency,
        settled=amount,
        at_rate=amount,
        settlement_currency=currency,
    )


def book(session, key, kind, lines, day, currency, contribution_id=None, hour=12):
    journal.post(
        session,
        key=key,
        kind=kind,
        currency=currency,
        lines=lines,
        occurred_at=at(day, hour),
        stripe_object_id=key.split(":")[1],
        contribution_id=contribution_id,
    )


def give(
    session,
    id_,
    *,
    day,
    total,
    currency="usd",
    fee=0,
    covered=0,
    frequency="one_off",
    status="succeeded",
    article=None,
    campaign=None,
    variant=None,
    parent_id=None,
    donor_id=None,
    created_at=None,
    paid=True,
    refunded=0,
):
    """A contribution and, when paid, its payment (and fee) entries on `day`."""
    session.add(
        Contribution(
            id=id_,
            status=status,
            frequency=frequency,
            currency=currency,
            amount=total - covered,
            fee_covered=covered,
            total=total,
            article=article,
            campaign=campaign,
            variant=variant,
            placement="epic" if campaign else None,
            parent_id=parent_id,
            donor_id=donor_id,
            refunded_amount=refunded,
            created_at=created_at or at(day, 11),
        )
    )
    session.flush()
    if paid:
        recurring = frequency != "one_off"
        kind = a.PAYMENT_RECURRING if recurring else a.PAYMENT_ONE_OFF
        lines = postings.payment(
            total,
            total - covered,
            covered,
            currency=currency,
            settled=total,
            settlement_currency=currency,
            recurring=recurring,
        )
        book(session, f"payment:ch_{id_}", kind, lines, day, currency, id_)
        if fee:
            book(
                session,
                f"fee:txn_{id_}",
                a.STRIPE_FEE,
                postings.stripe_fee(fee, currency),
                day,
                currency,
            )


def count(session, day, campaign, variant, article, type_, n, placement="epic"):
    """A day's counts, stored as the event flush stores them (with their rollups)."""
    row = {
        "day": day,
        "campaign": campaign,
        "variant": variant,
        "placement": placement,
        "article": article,
        "type": type_,
        "count": n,
    }
    session.add(EventCount(**row))
    rollups.add_events(session, [row])


def campaign(session, id_, status, weights):
    variants = [{"id": v, "weight": w, "heading": v, "body_html": v} for v, w in weights.items()]
    session.add(Campaign(id=id_, status=status, document={"id": id_, "variants": variants}))


@pytest.fixture
def seeded(database):
    """The books and counts every report test below reads.

    usd  c1 one-off 2606 (106 covered, fee 106) on D0, 400 of it refunded on D1
         c2 monthly 1000 (fee 59) on D0; its renewal c2r 1000 (fee 59) on D3
         c3 one-off 5000 (fee 175) on D1, disputed on D3
         c4 failed, never paid
    jpy  c5 one-off 3000 (fee 108) on D1
    eur  c6 one-off 700 (fee 50) on D0
    usd  payout of 1000 on D3 (moves money to the bank; no report counts it as income)
    """
    with database.transaction() as s:
        s.add(Donor(id="dnr_ann", email="ann@example.org"))
        s.add(Donor(id="dnr_gone", email="gone@example.org", erased_at=at(D3)))
        s.flush()
        spring = {"campaign": "spring"}
        give(
            s,
            "c1",
            day=D0,
            total=2606,
            covered=106,
            fee=106,
            article="a-1",
            variant="control",
            donor_id="dnr_ann",
            status="partially_refunded",
            refunded=400,
            **spring,
        )
        give(
            s,
            "c2",
            day=D0,
            total=1000,
            fee=59,
            frequency="monthly",
            article="a-1",
            variant="bold",
            **spring,
        )
        give(
            s,
            "c2r",
            day=D3,
            total=1000,
            fee=59,
            frequency="monthly",
            article="a-1",
            variant="bold",
            parent_id="c2",
            **spring,
        )
        give(
            s,
            "c3",
            day=D1,
            total=5000,
            fee=175,
            article="a-2",
            variant="bold",
            status="disputed",
            donor_id="dnr_gone",
            **spring,
        )
        give(
            s,
            "c4",
            day=D1,
            total=900,
            article='=HYPERLINK("x")',
            variant="bold",
            status="failed",
            paid=False,
            **spring,
        )
        give(
            s,
            "c5",
            day=D1,
            total=3000,
            fee=108,
            currency="jpy",
            article="a-1",
            variant="control",
            **spring,
        )
        give(
            s,
            "c6",
            day=D0,
            total=700,
            fee=50,
            currency="eur",
            article="a-3",
            campaign="summer",
            variant="control",
        )
        book(s, "refund:re_1", a.REFUND, refund_lines(400), D1, "usd", "c1")
        book(s, "dispute:dp_1", a.DISPUTE, dispute_lines(5000), D3, "usd", "c3")
        book(s, "payout:po_1", a.PAYOUT, postings.payout(1000, "usd"), D3, "usd")

        campaign(s, "spring", "live", {"control": 1, "bold": 1})
        campaign(s, "summer", "ended", {"control": 1})
        count(s, D0, "spring", "control", "a-1", "impression", 600)
        count(s, D0, "spring", "bold", "a-1", "impression", 400)
        count(s, D0, "spring", "control", "a-1", "click", 30)
        count(s, D0, "spring", "bold", "a-1", "click", 20)
        count(s, D1, "spring", "control", "a-2", "impression", 410)
        count(s, D1, "spring", "bold", "a-2", "impression", 590, placement="banner")
        count(s, D1, "spring", "bold", "a-2", "click", 40)
        count(s, D1, "spring", "bold", "a-2", "dismiss", 77)  # not a funnel step here
        count(s, D3, "summer", "control", "a-2", "impression", 1000)
        count(s, D0, "summer", "control", "a-3", "impression", 500)
        count(s, D0, "summer", "control", "a-3", "click", 5)
        count(s, D2, "summer", "control", "a-4", "impression", 3000)
        count(s, BEFORE, "spring", "control", "a-1", "impression", 10)  # before the range


# daily ------------------------------------------------------------------------------------
def test_the_daily_series_has_every_day_and_each_amount_on_the_day_it_happened(admin, seeded):
    r = admin.get(f"/api/v1/admin/reports/daily?{RANGE}")
    assert r.status_code == 200
    assert r.json()["series"] == [
        {"date": "2026-03-01", "count": 2, "gross": 3606, "net": 3606 - 106 - 59},
        {"date": "2026-03-02", "count": 1, "gross": 5000, "net": 5000 - 175 - 400},
        {"date": "2026-03-03", "count": 0, "gross": 0, "net": 0},
        {"date": "2026-03-04", "count": 1, "gross": 1000, "net": 1000 - 59 - 5000},
    ]


def test_the_daily_series_counts_one_currency_at_a_time(admin, seeded):
    jpy = admin.get(f"/api/v1/admin/reports/daily?from={D0}&to={D2}&currency=JPY").json()
    assert jpy["currency"] == "jpy"
    assert [(p["count"], p["gross"], p["net"]) for p in jpy["series"]] == [
        (0, 0, 0),
        (1, 3000, 2892),
        (0, 0, 0),
    ]
    nothing = admin.get(f"/api/v1/admin/reports/daily?from={D0}&to={D0}&currency=gbp").json()
    assert nothing["series"] == [{"date": str(D0), "count": 0, "gross": 0, "net": 0}]


def test_the_daily_series_adds_up_to_the_summary(admin, seeded):
    series = admin.get(f"/api/v1/admin/reports/daily?{RANGE}").json()["series"]
    usd = admin.get(f"/api/v1/admin/reports/summary?{RANGE}").json()["currencies"]["usd"]
    assert sum(p["count"] for p in series) == usd["count"]
    assert sum(p["gross"] for p in series) == usd["gross"]
    assert sum(p["net"] for p in series) == usd["net"]


def test_the_summary_net_per_currency_agrees_with_the_trial_balance(admin, seeded):
    summary = admin.get("/api/v1/admin/reports/summary?from=2020-01-01&to=2029-12-31").json()
    tb = admin.get("/api/v1/admin/ledger/trial-balance").json()
    assert tb["balanced"] is True
    balances = {(row["account"], row["currency"]): row["balance"] for row in tb["accounts"]}
    currencies = {currency for _, currency in balances}
    assert currencies == set(summary["currencies"]) == {"usd", "jpy", "eur"}
    for currency in currencies:
        # Income less contra accounts and fees, derived from the accounts alone ...
        income = -sum(
            balances.get((account, currency), 0)
            for account in (a.GIFTS_ONE_OFF, a.GIFTS_RECURRING, a.COVERED_FEES)
        )
        spent = sum(
            balances.get((account, currency), 0)
            for account in (a.STRIPE_FEES, a.REFUNDS, a.DISPUTES)
        )
        # ... is what stays at Stripe plus what is on its way to the bank or there.
        kept = sum(
            balances.get((account, currency), 0)
            for account in (a.STRIPE_BALANCE, a.PAYOUTS_IN_TRANSIT, a.BANK)
        )
        assert summary["currencies"][currency]["net"] == income - spent == kept
        # settled in the donors' own currencies, the settlement view says the same
        moved = summary["settlement"][currency]
        assert moved["net"] == kept and moved["exchange"] == 0
        assert moved["payouts"] == balances.get((a.PAYOUTS_IN_TRANSIT, currency), 0)
    gross, fees = 3606 + 5000 + 1000, 106 + 59 + 175 + 59
    assert summary["currencies"]["usd"]["net"] == gross - fees - 400 - 5000


# articles ---------------------------------------------------------------------------------
def test_articles_rank_by_gross_then_impressions_with_first_payments_only(admin, seeded):
    r = admin.get(f"/api/v1/admin/reports/articles?{RANGE}")
    assert r.status_code == 200
    assert r.json() == {
        "currency": "usd",
        "articles": [
            {
                "article": "a-2",
                "impressions": 2000,
                "clicks": 40,
                "contributions": 1,
                "gross": 5000,
                "conversion_rate": 1 / 2000,
            },
            # c1 and c2 in usd, c5 in jpy; c2's renewal is not a new contribution
            {
                "article": "a-1",
                "impressions": 1000,
                "clicks": 50,
                "contributions": 3,
                "gross": 3606,
                "conversion_rate": 3 / 1000,
            },
            {
                "article": "a-4",
                "impressions": 3000,
                "clicks": 0,
                "contributions": 0,
                "gross": 0,
                "conversion_rate": 0.0,
            },
            {
                "article": "a-3",
                "impressions": 500,
                "clicks": 5,
                "contributions": 1,
                "gross": 0,
                "conversion_rate": 1 / 500,
            },
        ],
    }


def test_articles_take_a_limit_and_a_currency(admin, seeded):
    top = admin.get(f"/api/v1/admin/reports/articles?{RANGE}&limit=2").json()["articles"]
    assert [row["article"] for row in top] == ["a-2", "a-1"]
    eur = admin.get(f"/api/v1/admin/reports/articles?{RANGE}&currency=eur&limit=1").json()
    assert eur["articles"] == [
        {
            "article": "a-3",
            "impressions": 500,
            "clicks": 5,
            "contributions": 1,
            "gross": 700,
            "conversion_rate": 1 / 500,
        },
    ]


def test_articles_count_only_the_days_in_the_range(admin, seeded):
    first_day = admin.get(f"/api/v1/admin/reports/articles?from={D0}&to={D0}").json()["articles"]
    assert first_day[0] == {
        "article": "a-1",
        "impressions": 1000,  # not the 10 of the day before
        "clicks": 50,
        "contributions": 2,  # c5 paid on D1
        "gross": 3606,
        "conversion_rate": 2 / 1000,
    }
    assert {row["article"] for row in first_day} == {"a-1", "a-3"}


# experiments ------------------------------------------------------------------------------
def wilson(x, n):
    ci = sp.binomtest(x, n).proportion_ci(method="wilson")
    return [ci.low, ci.high]


def pooled_p(x1, n1, x2, n2):
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 2 * sp.norm.sf(abs(z))


def test_experiments_report_each_variant_of_the_running_campaigns(admin, seeded):
    r = admin.get("/api/v1/admin/reports/experiments")
    assert r.status_code == 200
    body = r.json()
    assert body["currency"] == "usd"
    assert [c["campaign"] for c in body["campaigns"]] == ["spring"]  # summer has ended
    spring = body["campaigns"][0]
    control, bold = spring["variants"]
    assert control["variant"] == "control" and bold["variant"] == "bold"
    # control: 600 + 410 + 10 impressions (all time), c1 (usd) and c5 (jpy)
    assert {k: control[k] for k in ("impressions", "clicks", "contributions", "gross")} == {
        "impressions": 1020,
        "clicks": 30,
        "contributions": 2,
        "gross": 2606,
    }
    # bold: c2 and c3; c2's renewal and the failed c4 are not contributions
    assert {k: bold[k] for k in ("impressions", "clicks", "contributions", "gross")} == {
        "impressions": 990,
        "clicks": 60,
        "contributions": 2,
        "gross": 6000,
    }
    assert control["conversion_rate"] == pytest.approx(2 / 1020, rel=1e-12)
    assert control["conversion_ci95"] == pytest.approx(wilson(2, 1020), rel=1e-7)
    assert bold["conversion_ci95"] == pytest.approx(wilson(2, 990), rel=1e-7)
    assert control["revenue_per_1000_impressions"] == pytest.approx(2606 * 1000 / 1020)
    assert bold["revenue_per_1000_impressions"] == pytest.approx(6000 * 1000 / 990)
    assert control["p_value_vs_control"] is None
    assert bold["p_value_vs_control"] == pytest.approx(pooled_p(2, 990, 2, 1020), rel=1e-9)
    # two contributions each: figures shown, flagged as too early to read
    assert control["enough_data"] is bold["enough_data"] is spring["enough_data"] is False
    assert spring["srm"]["p_value"] == pytest.approx(
        sp.chisquare([1020, 990], [1005, 1005]).pvalue, rel=1e-9
    )
    assert spring["srm"]["warning"] is False


def test_experiments_count_gross_in_the_currency_asked_for(admin, seeded):
    jpy = admin.get("/api/v1/admin/reports/experiments?campaign=spring&currency=jpy").json()
    control, bold = jpy["campaigns"][0]["variants"]
    assert (control["contributions"], control["gross"]) == (2, 3000)
    assert (bold["contributions"], bold["gross"]) == (2, 0)
    assert control["revenue_per_1000_impressions"] == pytest.approx(3000 * 1000 / 1020)


def test_an_ended_campaign_is_reported_when_named_and_an_unknown_one_is_empty(admin, seeded):
    summer = admin.get("/api/v1/admin/reports/experiments?campaign=summer&currency=eur").json()
    [report] = summer["campaigns"]
    assert report["srm"] == {"p_value": None, "warning": False}  # a single variant
    [control] = report["variants"]
    assert (control["impressions"], control["contributions"], control["gross"]) == (4500, 1, 700)
    unknown = admin.get("/api/v1/admin/reports/experiments?campaign=nope").json()
    assert unknown["campaigns"] == []


def test_experiments_flag_a_sample_ratio_mismatch_and_variants_short_of_data(admin, database):
    with database.transaction() as s:
        campaign(s, "big", "live", {"control": 1, "warm": 1, "tiny": 1})
        for variant, shown, gave in (("control", 1000, 20), ("warm", 1000, 35), ("tiny", 50, 1)):
            count(s, D0, "big", variant, "a-1", "impression", shown)
            for n in range(gave):
                give(s, f"{variant}{n}", day=D0, total=1000, campaign="big", variant=variant)
        # a variant since removed from the document: listed, left out of the SRM test
        count(s, D0, "big", "retired", "a-1", "impression", 200)
    body = admin.get("/api/v1/admin/reports/experiments?campaign=big").json()
    [big] = body["campaigns"]
    by_name = {v["variant"]: v for v in big["variants"]}
    assert list(by_name) == ["control", "warm", "tiny", "retired"]
    expected = sp.chisquare([1000, 1000, 50])
    assert big["srm"]["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert big["srm"]["warning"] is True
    assert by_name["control"]["enough_data"] is True
    assert by_name["warm"]["enough_data"] is True
    assert by_name["tiny"]["enough_data"] is False
    assert big["enough_data"] is False
    assert by_name["warm"]["p_value_vs_control"] == pytest.approx(
        pooled_p(35, 1000, 20, 1000), rel=1e-9
    )
    assert by_name["warm"]["gross"] == 35_000
    assert by_name["warm"]["revenue_per_1000_impressions"] == pytest.approx(35_000.0)
    assert by_name["tiny"]["p_value_vs_control"] == pytest.approx(
        pooled_p(1, 50, 20, 1000), rel=1e-9
    )
    retired = by_name["retired"]
    assert (retired["contributions"], retired["p_value_vs_control"]) == (0, None)
    assert retired["conversion_ci95"] == pytest.approx(wilson(0, 200), rel=1e-7, abs=1e-12)


# recurring --------------------------------------------------------------------------------
def test_recurring_counts_active_subscriptions_mrr_new_and_canceled(admin, database):
    subs = [
        # id, currency, status, amount, interval, created, canceled
        ("s1", "usd", "active", 1000, "month", D0, None),
        ("s2", "usd", "past_due", 12010, "year", date(2025, 6, 1), None),
        ("s3", "usd", "active", 5000, "year", D1, None),
        ("s4", "usd", "canceled", 700, "month", date(2025, 12, 1), D1),
        ("s5", "usd", "incomplete", 500, "month", D0, None),
        ("s6", "usd", "trialing", 900, "month", D3, None),
        ("s7", "jpy", "active", 1000, "month", D0, None),
        ("s8", "eur", "canceled", 6000, "year", date(2025, 1, 1), date(2025, 12, 1)),
    ]
    with database.transaction() as s:
        for id_, currency, status, amount, interval, created, canceled in subs:
            frequency = "monthly" if interval == "month" else "annual"
            give(
                s,
                f"ctb_{id_}",
                day=created,
                total=amount,
                currency=currency,
                frequency=frequency,
                paid=False,
            )
            s.add(
                Subscription(
                    id=f"sub_{id_}",
                    contribution_id=f"ctb_{id_}",
                    status=status,
                    currency=currency,
                    amount=amount,
                    interval=interval,
                    created_at=at(created),
                    canceled_at=at(canceled) if canceled else None,
                )
            )
    r = admin.get(f"/api/v1/admin/reports/recurring?{RANGE}")
    assert r.status_code == 200
    assert r.json() == {
        "from": str(D0),
        "to": str(D3),
        "currencies": {
            # (12010 + 5000) / 12 = 1417.5, rounded half up
            "usd": {"active": 3, "mrr": 1000 + 1418, "new": 3, "canceled": 1},
            "jpy": {"active": 1, "mrr": 1000, "new": 1, "canceled": 0},
        },
    }


# contributions ----------------------------------------------------------------------------
NEWEST_FIRST = ["c2r", "c5", "c4", "c3", "c6", "c2", "c1"]


def test_the_contributions_list_pages_newest_first_with_an_opaque_cursor(admin, seeded):
    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = admin.get(f"/api/v1/admin/contributions?{query}")
        assert r.status_code == 200
        body = r.json()
        assert len(body["contributions"]) <= 2
        seen += [row["id"] for row in body["contributions"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # created on D3, D1, D1, D1, D0, D0, D0 at 11:00: equal times fall back to id, descending
    assert seen == NEWEST_FIRST
    assert pages == 4


def test_a_contribution_row_has_the_admin_fields_and_no_erased_email(admin, seeded):
    rows = admin.get("/api/v1/admin/contributions").json()["contributions"]
    by_id = {row["id"]: row for row in rows}
    assert by_id["c1"] == {
        "id": "c1",
        "created_at": "2026-03-01T11:00:00Z",
        "status": "partially_refunded",
        "frequency": "one_off",
        "currency": "usd",
        "amount": 2500,
        "fee_covered": 106,
        "total": 2606,
        "refunded_amount": 400,
        "article": "a-1",
        "campaign": "spring",
        "variant": "control",
        "placement": "epic",
        "email": "ann@example.org",
    }
    assert by_id["c3"]["email"] is None  # the donor was erased
    assert by_id["c6"]["email"] is None  # no donor at all


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("status=disputed", ["c3"]),
        ("currency=JPY", ["c5"]),
        ("campaign=summer", ["c6"]),
        (f"from={D1}&to={D2}", ["c5", "c4", "c3"]),
        (f"from={D3}", ["c2r"]),
        (f"to={D0}&currency=usd", ["c2", "c1"]),
        ("status=pending", []),
        ("frequency=monthly", ["c2r", "c2"]),
        ("frequency=one_off&currency=usd", ["c4", "c3", "c1"]),
        ("article=a-2", ["c3"]),
        ("article=a-1&campaign=spring&currency=usd", ["c2r", "c2", "c1"]),
        ("email=ann@example.org", ["c1"]),  # the whole address
        ("email=AN", ["c1"]),  # or its beginning, in any case
        ("email=gone@example.org", []),  # an erased donor is found by nobody
        ("email=a%25", []),  # `%` is only itself
    ],
)
def test_the_contributions_list_filters(admin, seeded, query, ids):
    r = admin.get(f"/api/v1/admin/contributions?{query}")
    assert r.status_code == 200
    assert [row["id"] for row in r.json()["contributions"]] == ids


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_export_has_every_matching_row_and_defuses_formulas(admin, seeded):
    r = admin.get("/api/v1/admin/contributions?format=csv&limit=1")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == 'attachment; filename="contributions-all-now.csv"'
    rows = read_csv(r.text)
    assert [row["id"] for row in rows] == NEWEST_FIRST  # limit applies to pages only
    assert list(rows[0]) == [
        "id",
        "created_at",
        "status",
        "frequency",
        "currency",
        "amount",
        "fee_covered",
        "total",
        "refunded_amount",
        "article",
        "campaign",
        "variant",
        "placement",
        "email",
    ]
    by_id = {row["id"]: row for row in rows}
    assert by_id["c1"]["email"] == "ann@example.org" and by_id["c3"]["email"] == ""
    assert by_id["c4"]["article"] == '\'=HYPERLINK("x")'
    assert by_id["c6"]["total"] == "700" and by_id["c6"]["campaign"] == "summer"


def test_accept_text_csv_asks_for_the_export_too(admin, seeded):
    r = admin.get(f"/api/v1/admin/contributions?from={D1}&to={D1}", headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "contributions-2026-03-02-2026-03-02.csv" in r.headers["Content-Disposition"]
    assert [row["id"] for row in read_csv(r.text)] == ["c5", "c4", "c3"]


def test_a_csv_export_of_100_000_contributions_streams_in_flat_memory(app, database, token):
    n = 100_000
    start = datetime(2026, 1, 1)
    with database.transaction() as s:
        for first in range(0, n, 10_000):
            s.execute(
                insert(Contribution),
                [
                    {
                        "id": f"ctb_{i:07d}",
                        "status": "succeeded",
                        "frequency": "one_off",
                        "currency": "usd",
                        "amount": 1000 + i % 977,
                        "fee_covered": 0,
                        "total": 1000 + i % 977,
                        "refunded_amount": 0,
                        "article": f"an-article-with-a-long-slug-about-the-city-budget-{i % 5000}",
                        "campaign": "bulk",
                        "variant": "control",
                        "placement": "epic",
                        # every 10 share a second: the keyset must break ties by id
                        "created_at": start + timedelta(seconds=i // 10),
                        "updated_at": start,
                    }
                    for i in range(first, min(first + 10_000, n))
                ],
            )
    client = app.test_client()
    began = time.monotonic()
    tracemalloc.start()
    try:
        response = client.get(
            "/api/v1/admin/contributions?format=csv",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
        lines = streamed = 0
        last_line = b""
        for chunk in response.response:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            lines += data.count(b"\n")
            streamed += len(data)
            last_line = data.rsplit(b"\r\n", 2)[-2] if data.count(b"\r\n") else last_line
        response.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == n + 1  # the header and every row
    assert last_line.startswith(b"ctb_0000000,")  # the oldest comes last
    print(f"streamed {streamed / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
    assert streamed > 13 * 2**20  # the whole file is larger than ...
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # ... what was ever held at once
    assert time.monotonic() - began < 30


# input, auth and the OpenAPI document ------------------------------------------------------
def cursor_of(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("reports/daily?from=2026-02-30", "from"),
        ("reports/daily?from=2026-03-05&to=2026-03-01", "from"),
        ("reports/daily?from=2000-01-01&to=2026-01-01", "from"),
        ("reports/daily?currency=dollars", "currency"),
        ("reports/daily?to=9999-12-31", "to"),
        ("reports/articles?limit=0", "limit"),
        ("reports/articles?limit=201", "limit"),
        ("reports/articles?limit=ten", "limit"),
        ("reports/articles?currency=u$d", "currency"),
        ("reports/experiments?currency=US", "currency"),
        ("reports/experiments?campaign=", "campaign"),
        ("reports/recurring?from=yesterday", "from"),
        ("reports/recurring?from=2026-03-05&to=2026-03-01", "from"),
        ("contributions?cursor=not-a-cursor!", "cursor"),
        ("contributions?cursor=" + cursor_of({"a": 1}), "cursor"),
        ("contributions?cursor=" + cursor_of(["yesterday", "c1"]), "cursor"),
        ("contributions?cursor=" + cursor_of(["2026-03-01T00:00:00+02:00", "c1"]), "cursor"),
        ("contributions?limit=501", "limit"),
        ("contributions?limit=-1", "limit"),
        ("contributions?status=lost", "status"),
        ("contributions?format=xml", "format"),
        ("contributions?frequency=weekly", "frequency"),
        ("contributions?article=" + "a" * 201, "article"),
        ("contributions?email=" + "a" * 321, "email"),
        ("contributions?from=2026-03-05&to=2026-03-01&format=csv", "from"),
    ],
)
def test_bad_report_input_gets_a_422_naming_the_field(admin, path, field):
    r = admin.get(f"/api/v1/admin/{path}")
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert field in r.json()["errors"]


NEW_ENDPOINTS = (
    "/api/v1/admin/reports/daily",
    "/api/v1/admin/reports/articles",
    "/api/v1/admin/reports/experiments",
    "/api/v1/admin/reports/recurring",
    "/api/v1/admin/contributions",
)


@pytest.mark.parametrize("path", NEW_ENDPOINTS)
def test_the_reports_need_an_admin_token(api, token, path):
    assert api.get(path).status_code == 401
    assert api.get(path, headers={"Authorization": "Bearer dnt_wrong"}).status_code == 401
    assert api.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_reports_are_in_the_openapi_document(api):
    spec = api.get("/openapi.json").json()
    for path in NEW_ENDPOINTS:
        assert path in spec["paths"], path
    params = {
        p["name"] for p in spec["paths"]["/api/v1/admin/reports/articles"]["get"]["parameters"]
    }
    assert {"from", "to", "limit", "currency"} <= params
    contributions = spec["paths"]["/api/v1/admin/contributions"]["get"]
    assert {p["name"] for p in contributions["parameters"]} >= {
        "from",
        "to",
        "status",
        "cursor",
        "limit",
        "format",
        "campaign",
        "currency",
        "frequency",
        "article",
        "email",
    }
    assert "text/csv" in contributions["responses"]["200"]["content"]
    experiments = spec["paths"]["/api/v1/admin/reports/experiments"]["get"]
    assert "enough_data" in experiments["description"] and "srm" in experiments["description"]
    schemas = spec["components"]["schemas"]
    assert {"srm", "enough_data", "variants"} <= set(schemas["CampaignResult"]["properties"])


def test_the_rollups_the_writers_keep_equal_a_rebuild_from_the_books(seeded, database):
    with database.sessions() as s:
        report = rollups.check(s)
    assert all(kept for kept, _ in report.values()), report
    assert all(differ == 0 for _, differ in report.values()), report


def test_articles_over_months_add_whole_months_and_partial_ends_exactly(admin, database):
    """Long ranges read monthly rollups for whole months and daily ones at the ends."""
    days = [date(2026, 1, 15) + timedelta(days=n) for n in range(0, 80, 3)]  # Jan 15 → Apr 3
    start, end = date(2026, 1, 20), date(2026, 3, 25)  # Jan partial, all of Feb, Mar partial
    expected = {"impressions": 0, "clicks": 0, "contributions": 0, "gross": 0}
    with database.transaction() as s:
        for i, day in enumerate(days):
            count(s, day, "spring", "control", "long-read", "impression", 100 + i)
            count(s, day, "spring", "control", "long-read", "click", 1 + i % 4)
            count(s, day, "spring", "control", "long-read", "view", 50)  # not in the funnel
            give(
                s, f"ctb_long_{i}", day=day, total=1000 + i, article="long-read", campaign="spring"
            )
            if start <= day <= end:
                expected["impressions"] += 100 + i
                expected["clicks"] += 1 + i % 4
                expected["contributions"] += 1
                expected["gross"] += 1000 + i
    (row,) = admin.get(f"/api/v1/admin/reports/articles?from={start}&to={end}").json()["articles"]
    assert {k: row[k] for k in expected} == expected
    assert 0 < expected["contributions"] < len(days)  # the ends really cut some days off
