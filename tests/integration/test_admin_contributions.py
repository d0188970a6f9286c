"""Contributions in the admin: the list, a contribution's page, and refunds asked of Stripe whose
effect reaches the books only through Stripe's events (played by the endive stand-in)."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from donations.admin.formatting import NotAnAmount, parse_major
from donations.admin.models import AuditEntry
from donations.admin.stripe_links import stripe_dashboard_url
from donations.admin.tokens import create_token
from donations.checkout.models import Contribution, Donor, Subscription
from donations.ledger import accounts as a
from donations.ledger import journal, postings
from donations.ledger.models import JournalEntry
from donations.mail.models import OutboxEmail
from tests.conftest import Api, empty_tables
from tests.endive import Endive
from tests.integration.test_admin_pages import Browser, sign_in

# The contract, written here (not read from the views): who may do what.
ROLES = {
    ("GET", "/admin/contributions"): {"viewer", "editor"},
    ("GET", "/admin/contributions/ctb_unpaid"): {"viewer", "editor"},
    ("GET", "/admin/contributions/ctb_unpaid/refund"): {"editor"},
    ("POST", "/admin/contributions/ctb_unpaid/refund"): {"editor"},
    ("GET", "/api/v1/admin/contributions"): {"viewer", "editor"},
    ("POST", "/api/v1/admin/contributions/ctb_unpaid/refund"): {"editor"},
}
T0 = datetime(2026, 3, 1, 9, 0)


def bearer(database: Any, role: str) -> requests.Session:
    with database.transaction() as s:
        token = create_token(s, f"{role}-contributions", role)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def add(session: Any, id_: str, **kw: Any) -> Contribution:
    total = kw.pop("total", 2500)
    row = Contribution(
        id=id_,
        status=kw.pop("status", "succeeded"),
        frequency=kw.pop("frequency", "one_off"),
        currency=kw.pop("currency", "usd"),
        amount=kw.pop("amount", total),
        fee_covered=kw.pop("fee_covered", 0),
        total=total,
        created_at=kw.pop("created_at", T0),
        **kw,
    )
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def unpaid(database: Any) -> str:
    with database.transaction() as s:
        add(s, "ctb_unpaid", status="pending")
    return "ctb_unpaid"


@pytest.fixture
def seeded(database: Any) -> None:
    """Six contributions whose filters and pages are known by construction.

    c1 usd one-off 2606 (106 covered) Ann, spring/a-long-slug, paid, 400 refunded
    c2 usd monthly 1000 Bob, spring/a-2; its renewal c2r a month later
    c3 eur one-off 700 an erased donor, summer/a-3
    c4 usd one-off 900 Ann (upper-case address stored long ago), never paid
    c5 jpy annual 5000 no donor
    """
    with database.transaction() as s:
        s.add_all(
            [
                Donor(id="don_ann", email="ann@example.org", name="Ann Reader"),
                Donor(id="don_bob", email="bob@example.com", stripe_customer_id="cus_Bob1"),
                Donor(id="don_gone", email=None, erased_at=T0 + timedelta(days=9)),
                Donor(id="don_old", email="Ann.Other@Example.org"),
            ]
        )
        s.flush()
        slug = "a-very-long-article-slug-about-the-city-budget-" + "x" * 60
        add(
            s, "c1", total=2606, amount=2500, fee_covered=106, donor_id="don_ann",
            campaign="spring", variant="control", placement="epic", article=slug,
            status="partially_refunded", refunded_amount=400, stripe_payment_intent_id="pi_C1",
            stripe_charge_id="ch_C1", succeeded_at=T0,
        )  # fmt: skip
        add(
            s, "c2", total=1000, frequency="monthly", donor_id="don_bob", campaign="spring",
            article="a-2", created_at=T0 + timedelta(days=1), stripe_setup_intent_id="seti_C2",
            stripe_subscription_id="sub_C2", stripe_invoice_id="in_C2first",
            stripe_charge_id="ch_C2",
        )  # fmt: skip
        add(
            s, "c2r", total=1000, frequency="monthly", donor_id="don_bob", campaign="spring",
            article="a-2", parent_id="c2", created_at=T0 + timedelta(days=31),
            stripe_subscription_id="sub_C2", stripe_invoice_id="in_C2renew",
            stripe_charge_id="ch_C2r",
        )  # fmt: skip
        add(
            s, "c3", total=700, currency="eur", donor_id="don_gone", campaign="summer",
            article="a-3", created_at=T0 + timedelta(days=2),
        )  # fmt: skip
        add(s, "c4", total=900, donor_id="don_old", status="failed",
            created_at=T0 + timedelta(days=3))  # fmt: skip
        add(s, "c5", total=5000, currency="jpy", frequency="annual",
            created_at=T0 + timedelta(days=4))  # fmt: skip
        s.add(
            Subscription(
                id="sub_C2", contribution_id="c2", donor_id="don_bob", status="active",
                currency="usd", amount=1000, interval="month",
                current_period_end=T0 + timedelta(days=61),
            )
        )  # fmt: skip
        journal.post(
            s, key="payment:ch_C1", kind=a.PAYMENT_ONE_OFF, currency="usd", occurred_at=T0,
            stripe_object_id="ch_C1", balance_transaction_id="txn_C1pay", contribution_id="c1",
            lines=postings.payment(2606, 2500, 106, currency="usd", settled=2606,
                                   settlement_currency="usd", recurring=False),
        )  # fmt: skip
        journal.post(
            s, key="refund:re_C1", kind=a.REFUND, currency="usd",
            occurred_at=T0 + timedelta(days=2), stripe_object_id="re_C1",
            balance_transaction_id="txn_C1ref", contribution_id="c1",
            lines=postings.returned(a.REFUNDS, 400, currency="usd", settled=400, at_rate=400,
                                    settlement_currency="usd"),
        )  # fmt: skip
        s.add(
            OutboxEmail(
                kind="receipt", dedupe_key="receipt:c1", donor_id="don_ann", contribution_id="c1",
                created_at=T0, sent_at=T0 + timedelta(minutes=1), attempts=1,
                payload={"body": "SECRET-BODY-TEXT"},
            )
        )  # fmt: skip


def page_text(answer: Any) -> str:
    """The page as a reader sees its text: tags dropped, entities decoded, spaces squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", answer.text)))


def listed(answer: Any) -> list[str]:
    return re.findall(r'aria-label="Contribution ([^"]+)"', answer.text)


@pytest.fixture
def viewer(app: Any, database: Any) -> Browser:
    return sign_in(app, database, "viewer@newsroom.example", "viewer")


@pytest.fixture
def editor(app: Any, database: Any) -> Browser:
    return sign_in(app, database, "editor@newsroom.example", "editor")


# --- who may do what ---------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), sorted(ROLES))
@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_the_contribution_routes_follow_the_role_table(api, database, unpaid, role, method, path):
    http = bearer(database, role)
    kw = {"json": {}} if method == "POST" else {}
    r = http.request(method, api.base + path, timeout=10, allow_redirects=False, **kw)
    allowed = role in ROLES[(method, path)]
    assert (r.status_code == 403) is not allowed, (role, method, path, r.status_code)
    assert r.status_code < 500, (role, method, path, r.status_code, r.text)
    if allowed and method == "GET":  # the refund's confirmation sends an unpaid gift back
        assert r.status_code == (303 if path.endswith("/refund") else 200)
    with database.sessions() as s:  # whoever asked, an unpaid gift was never refunded
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_the_refund_form_needs_the_sessions_csrf_token(editor: Browser, unpaid: str) -> None:
    path = f"/admin/contributions/{unpaid}/refund"
    assert editor.form(path, {"amount": "100"}, csrf=False).status_code == 403
    wrong = editor.client.post(path, data={"amount": "100", "csrf_token": "nope"})
    assert wrong.status_code == 403
    assert editor.api("POST", f"/api/v1/admin/contributions/{unpaid}/refund", {}, csrf=False)\
        .status_code == 403  # fmt: skip


def test_a_viewer_sees_no_refund_button(viewer: Browser, seeded: None) -> None:
    page = viewer.get("/admin/contributions/c1")
    assert page.status_code == 200
    assert "Refunds need the editor role." in page.text
    assert "/admin/contributions/c1/refund" not in page.text


# --- the list ----------------------------------------------------------------------------------
def test_the_list_shows_the_newest_first_with_money_and_links(viewer: Browser, seeded: None):
    page = viewer.get("/admin/contributions")
    assert page.status_code == 200
    assert listed(page) == ["c2r", "c5", "c4", "c3", "c2", "c1"]
    text = page_text(page)
    assert "$26.06" in text and "€7.00" in text and "¥5,000" in text and "$4.00" in text
    assert 'href="/admin/contributions/c1"' in page.text
    assert 'href="/admin/contributions"' in page.text and ">Contributions</a>" in page.text
    assert "ann@example.org" in text and "erased" not in text.lower().split("filter")[0]
    # A long slug is cut by CSS, whole in its title.
    assert 'class="truncate" title="a-very-long-article-slug' in page.text


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("from=2026-03-02&to=2026-03-04", ["c4", "c3", "c2"]),
        ("to=2026-03-01", ["c1"]),
        ("status=failed", ["c4"]),
        ("status=partially_refunded", ["c1"]),
        ("frequency=monthly", ["c2r", "c2"]),
        ("frequency=annual", ["c5"]),
        ("currency=EUR", ["c3"]),
        ("campaign=spring", ["c2r", "c2", "c1"]),
        ("article=a-2", ["c2r", "c2"]),
        ("email=ann@example.org", ["c1"]),  # exact
        ("email=ANN", ["c4", "c1"]),  # a prefix, in any case (c4's address was stored as typed)
        ("email=bob@", ["c2r", "c2"]),
        ("email=%25", []),  # % is a character, not a wildcard
        ("email=_nn", []),
        ("email=example.org", []),  # not a prefix
        ("campaign=spring&frequency=one_off&currency=usd", ["c1"]),
    ],
)
def test_the_list_filters(viewer: Browser, seeded: None, query: str, ids: list[str]) -> None:
    page = viewer.get(f"/admin/contributions?{query}")
    assert page.status_code == 200
    assert listed(page) == ids
    if not ids:
        assert "No contribution matches these filters." in page.text


def test_an_erased_donor_is_found_by_no_email_and_shows_none(viewer: Browser, seeded: None):
    page = viewer.get("/admin/contributions?currency=eur")
    assert listed(page) == ["c3"]
    row = page.text.split('aria-label="Contribution c3"')[1].split("</tr>")[0]
    assert "@" not in row


def test_the_csv_link_downloads_what_the_page_lists(viewer: Browser, seeded: None) -> None:
    page = viewer.get("/admin/contributions?campaign=spring&email=BOB@&frequency=monthly")
    href = html.unescape(re.search(r'href="([^"]+)" download', page.text).group(1))
    assert href.startswith("/api/v1/admin/contributions?")
    assert "format=csv" in href and "email=BOB@" in href and "frequency=monthly" in href
    csv = viewer.get(href)
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    ids = [line.split(",")[0] for line in csv.text.splitlines()[1:]]
    assert ids == listed(page) == ["c2r", "c2"]


def test_the_list_pages_by_keyset_and_keeps_its_filters(viewer: Browser, database: Any) -> None:
    with database.transaction() as s:
        for n in range(57):
            add(s, f"ctb_{n:03d}", campaign="bulk" if n % 2 else "other",
                created_at=T0 + timedelta(minutes=n // 3))  # fmt: skip
    first = viewer.get("/admin/contributions?campaign=bulk")
    assert len(listed(first)) == 28  # one page: fewer than 50
    assert "Older contributions" not in first.text
    first = viewer.get("/admin/contributions")
    seen = listed(first)
    assert len(seen) == 50
    older = html.unescape(re.search(r'href="([^"]+)" rel="next"', first.text).group(1))
    second = viewer.get(older)
    assert second.status_code == 200
    seen += listed(second)
    assert seen == [f"ctb_{n:03d}" for n in reversed(range(57))]
    assert "Older contributions" not in second.text and "Newest" in second.text


@pytest.mark.parametrize(
    ("query", "said", "left"),
    [
        ("from=2026-02-30", "Not a valid date.", 6),
        # `to` still holds
        ("from=2026-03-05&to=2026-03-01", "The start date must not be after the end date.", 1),
        ("status=lost", "Must be one of", 6),
        ("frequency=weekly", "Must be one of", 6),
        ("currency=dollars", "Not an ISO 4217 code.", 6),
        ("cursor=not-a-cursor!", "That page link is no longer valid", 6),
        ("email=" + "a" * 400, "Length must be between 1 and 320.", 6),
        ("to=9999-12-31", "Must be greater than or equal to", 6),
        ("campaign=spring&article=" + "x" * 201, "Length must be between 1 and 200.", 3),
    ],
)
def test_bad_filters_are_explained_on_the_page_not_a_crash(viewer, seeded, query, said, left):
    page = viewer.get(f"/admin/contributions?{query}")
    assert page.status_code == 200
    assert said in html.unescape(page.text)
    assert len(listed(page)) == left  # the bad filter is left out; the others still hold


def test_every_bad_filter_is_explained_at_once(viewer, seeded):
    """A bad status does not hide that the dates are the wrong way round (marshmallow checks
    their order only once every field is valid)."""
    page = html.unescape(
        viewer.get("/admin/contributions?status=bogus&from=2026-03-05&to=2026-03-01").text
    )
    assert "Must be one of" in page
    assert "The start date must not be after the end date." in page


def test_the_api_list_takes_the_same_new_filters(api, database, seeded) -> None:
    http = bearer(database, "viewer")
    for query, ids in (
        ("frequency=monthly", ["c2r", "c2"]),
        ("article=a-2&email=bob", ["c2r", "c2"]),
        ("email=Ann", ["c4", "c1"]),
    ):
        r = http.get(f"{api.base}/api/v1/admin/contributions?{query}", timeout=10)
        assert r.status_code == 200, r.text
        assert [row["id"] for row in r.json()["contributions"]] == ids
    for query, field in (("frequency=daily", "frequency"), ("article=", "article")):
        r = http.get(f"{api.base}/api/v1/admin/contributions?{query}", timeout=10)
        assert r.status_code == 422 and field in r.json()["errors"]


# --- a contribution's page ---------------------------------------------------------------------
def test_a_contributions_page_shows_amounts_donor_attribution_books_stripe_and_receipts(
    viewer: Browser, seeded: None
) -> None:
    page = viewer.get("/admin/contributions/c1")
    assert page.status_code == 200
    text = page_text(page)
    for said in (
        "Gift $25.00", "Fee covered by the donor $1.06", "Total charged $26.06",
        "Refunded $4.00", "Left to refund: $22.06",
        "ann@example.org", "Ann Reader", "spring", "control", "epic",
        "a-very-long-article-slug-about-the-city-budget",
    ):  # fmt: skip
        assert said in text, said
    # its journal entries with every line and the balance transaction each names
    assert "payment:ch_C1" in text and "refund:re_C1" in text
    assert "txn_C1pay" in text and "txn_C1ref" in text
    for account in (a.STRIPE_BALANCE, a.GIFTS_ONE_OFF, a.COVERED_FEES, a.REFUNDS):
        assert account in text
    # Stripe's dashboard, in test mode
    assert 'href="https://dashboard.stripe.com/test/payments/pi_C1"' in page.text
    assert 'href="https://dashboard.stripe.com/test/payments/ch_C1"' in page.text
    # the receipt: kind, when, attempts; never its body
    assert "receipt" in text and "2026-03-01 09:01" in text
    assert "SECRET-BODY-TEXT" not in page.text
    assert "the refund appears here when stripe confirms it" in text.lower()


def test_a_recurring_gift_shows_its_subscription_and_renewals_with_links(
    viewer: Browser, seeded: None
) -> None:
    page = viewer.get("/admin/contributions/c2")
    text = page_text(page)
    assert "Subscription" in text and "active" in text and "$10.00 a month" in text
    assert "2026-05-01 09:00" in text  # the period's end
    assert 'href="https://dashboard.stripe.com/test/subscriptions/sub_C2"' in page.text
    assert 'href="https://dashboard.stripe.com/test/invoices/in_C2first"' in page.text
    assert 'href="https://dashboard.stripe.com/test/customers/cus_Bob1"' in page.text
    assert "seti_C2" in text and "/test/setup_intents" not in page.text  # no page to link
    assert 'href="/admin/contributions/c2r"' in page.text  # its renewal
    renewal = viewer.get("/admin/contributions/c2r")
    assert 'href="/admin/contributions/c2"' in renewal.text  # back to the first
    assert "This is a renewal of" in page_text(renewal)
    assert "sub_C2" in renewal.text


def test_an_erased_or_missing_donor_is_said_so(viewer: Browser, seeded: None) -> None:
    erased = page_text(viewer.get("/admin/contributions/c3"))
    assert "Erased on 2026-03-10" in erased
    assert "@" not in erased.split("Erased on")[1].split("Attribution")[0]
    assert "No donor is recorded" in page_text(viewer.get("/admin/contributions/c5"))
    unpaid = page_text(viewer.get("/admin/contributions/c4"))
    assert "never paid" in unpaid and "Nothing booked yet" in unpaid


@pytest.mark.parametrize("cid", ["ctb_nope", "x" * 41, "c1'--", "%E2%80%AE"])
def test_an_unknown_contribution_is_a_404_page(viewer: Browser, seeded: None, cid: str) -> None:
    assert viewer.get(f"/admin/contributions/{cid}").status_code == 404


# --- refunds: refused without asking Stripe ----------------------------------------------------
def test_a_refund_of_an_unpaid_contribution_is_refused_clearly(api, database, unpaid) -> None:
    http = bearer(database, "editor")
    r = http.post(f"{api.base}/api/v1/admin/contributions/{unpaid}/refund", json={}, timeout=10)
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "never paid" in r.json()["detail"]
    r = http.post(f"{api.base}/api/v1/admin/contributions/ctb_nope/refund", json={}, timeout=10)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({"amount": 0}, "amount"), ({"amount": -5}, "amount"), ({"amount": "ten"}, "amount"),
     ({"amount": 12.5}, "amount"), ({"amount": 10**13}, "amount"), ({"other": 1}, "other")],
)  # fmt: skip
def test_a_bad_refund_amount_is_a_422_naming_it(api, database, seeded, body, field) -> None:
    http = bearer(database, "editor")
    r = http.post(f"{api.base}/api/v1/admin/contributions/c1/refund", json=body, timeout=10)
    assert r.status_code == 422, r.text
    assert field in r.json()["errors"]


def test_the_page_refuses_what_cannot_be_refunded_and_says_why(editor: Browser, seeded) -> None:
    for cid, query, said in (
        ("c4", "how=full", "it was never paid"),
        ("c1", "how=partial&amount=22.07", "more than is left"),
        ("c1", "how=partial&amount=ten", "Write the amount in USD"),
        ("c1", "how=partial&amount=1.005", "USD has 2 decimal places at most."),
        ("c1", "how=partial&amount=0", "must be more than zero"),
    ):
        answer = editor.get(f"/admin/contributions/{cid}/refund?{query}")
        assert answer.status_code == 303, (cid, query)
        shown = editor.get(answer.headers["Location"])
        assert said in html.unescape(shown.text), (cid, query)
    posted = editor.form("/admin/contributions/c1/refund", {"amount": "abc"})
    assert posted.status_code == 303
    assert "Choose the amount to refund again." in html.unescape(
        editor.get(posted.headers["Location"]).text
    )
    assert editor.get("/admin/contributions/nope/refund").status_code == 404


def test_the_confirmation_shows_the_amount_before_anything_is_sent(editor: Browser, seeded):
    whole = editor.get("/admin/contributions/c1/refund?how=full")
    assert whole.status_code == 200
    assert "Refund $22.06?" in whole.text and 'name="amount" value="2206"' in whole.text
    assert f'name="csrf_token" value="{editor.csrf}"' in whole.text
    part = editor.get("/admin/contributions/c1/refund?how=partial&amount=10")
    assert "Refund $10.00?" in part.text and 'name="amount" value="1000"' in part.text
    assert "The refund appears here when Stripe confirms it." in part.text


def test_amounts_typed_by_staff_become_minor_units_without_floats() -> None:
    assert parse_major("25", "usd") == 2500
    assert parse_major(" 12.5 ", "usd") == 1250
    assert parse_major("12,50", "eur") == 1250
    assert parse_major("0.01", "usd") == 1
    assert parse_major("1 000", "jpy") == 1000
    assert parse_major("1.005", "kwd") == 1005
    for bad, currency in (("12.5", "jpy"), ("1.001", "usd"), ("-3", "usd"), ("1e3", "usd"),
                          ("", "usd"), ("٣", "usd"), ("9" * 30, "usd")):  # fmt: skip
        with pytest.raises(NotAnAmount):
            parse_major(bad, currency)


def test_stripe_dashboard_links_are_test_mode_and_only_for_objects_with_a_page() -> None:
    base = "https://dashboard.stripe.com/test"
    assert stripe_dashboard_url("pi_123") == f"{base}/payments/pi_123"
    assert stripe_dashboard_url("ch_123") == f"{base}/payments/ch_123"
    assert stripe_dashboard_url("sub_123") == f"{base}/subscriptions/sub_123"
    assert stripe_dashboard_url("in_123") == f"{base}/invoices/in_123"
    assert stripe_dashboard_url("cus_123") == f"{base}/customers/cus_123"
    for none in (None, "", "seti_123", "txn_1", "pi_../../x", "javascript:alert(1)"):
        assert stripe_dashboard_url(none) is None


# --- refunds through Stripe (the endive stand-in) ------------------------------------------------
@pytest.fixture
def endive(endive_server, standin, endive_database) -> Endive:
    empty_tables(endive_database)
    standin.reset()
    standin.settlement_currency = "usd"
    standin.latency = 0.0
    return Endive(Api(endive_server.url), standin, endive_database)


@pytest.fixture
def staff(endive: Endive, endive_app: Any) -> Browser:
    return sign_in(endive_app, endive.database, "editor@newsroom.example", "editor")


def stripe_calls(endive: Endive) -> list[tuple[str, str]]:
    return list(endive.standin.requests)


def test_an_editor_refunds_part_of_a_gift_and_the_books_follow_stripes_events(
    endive: Endive, staff: Browser
) -> None:
    cid = endive.give(4000)
    endive.deliver()
    assert endive.row(cid).status == "succeeded"
    detail = staff.get(f"/admin/contributions/{cid}")
    assert "Left to refund: $40.00" in page_text(detail)
    assert f'action="/admin/contributions/{cid}/refund"' in detail.text

    confirm = staff.get(f"/admin/contributions/{cid}/refund?how=partial&amount=10")
    assert "Refund $10.00?" in confirm.text
    key = re.search(r'name="key" value="([^"]+)"', confirm.text).group(1)
    done = staff.form(f"/admin/contributions/{cid}/refund", {"amount": "1000", "key": key})
    assert done.status_code == 303
    shown = page_text(staff.get(done.headers["Location"]))
    assert "Stripe accepted refund re_" in shown and "of $10.00" in shown
    assert "The refund appears here when Stripe confirms it." in shown

    # Nothing in the books moved yet: only Stripe's events move them.
    refund_id = re.search(r"refund (re_\w+)", shown).group(1)
    assert not [k for k in endive.keys(cid) if k.startswith("refund:")]
    assert (endive.row(cid).status, endive.row(cid).refunded_amount) == ("succeeded", 0)
    with endive.database.sessions() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "contribution.refund"))
    assert entry.actor == "user:editor@newsroom.example" and entry.target_id == cid
    assert entry.after["refund"] == refund_id and entry.after["amount"] == 1000
    assert entry.request_id

    endive.deliver()
    c = endive.row(cid)
    assert (c.status, c.refunded_amount) == ("partially_refunded", 1000)
    assert endive.lines(f"refund:{refund_id}") == {
        (a.REFUNDS, "usd"): 1000,
        (a.STRIPE_BALANCE, "usd"): -1000,
    }
    endive.assert_books_match_stripe()
    after = page_text(staff.get(f"/admin/contributions/{cid}"))
    assert f"refund:{refund_id}" in after and "Left to refund: $30.00" in after


def test_the_same_confirmation_sent_twice_refunds_once(endive: Endive, staff: Browser) -> None:
    cid = endive.give(3000)
    endive.deliver()
    confirm = staff.get(f"/admin/contributions/{cid}/refund?how=partial&amount=5")
    key = re.search(r'name="key" value="([^"]+)"', confirm.text).group(1)
    for _ in range(2):  # a double click
        staff.form(f"/admin/contributions/{cid}/refund", {"amount": "500", "key": key})
    endive.deliver()
    assert endive.row(cid).refunded_amount == 500
    pi = endive.row(cid).stripe_payment_intent_id
    assert len(endive.standin.list_all("refund", payment_intent=pi)) == 1
    with endive.database.sessions() as s:  # and the audit log has one request
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_the_api_refunds_the_rest_then_refuses_without_calling_stripe(endive: Endive) -> None:
    cid = endive.give(2500)
    endive.deliver()
    http = bearer(endive.database, "editor")
    url = f"{endive.api.base}/api/v1/admin/contributions/{cid}/refund"
    over = http.post(url, json={"amount": 2501}, timeout=10)
    assert over.status_code == 422 and "more than is left" in over.json()["errors"]["amount"][0]
    r = http.post(url, json={}, timeout=10)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"].startswith("re_") and body["amount"] == 2500
    assert body["currency"] == "usd" and body["status"] == "succeeded"
    assert body["contribution_id"] == cid
    endive.deliver()
    assert endive.row(cid).status == "refunded"

    before = len(stripe_calls(endive))
    again = http.post(url, json={}, timeout=10)
    assert again.status_code == 409 and "already been fully refunded" in again.json()["detail"]
    assert len(stripe_calls(endive)) == before  # refused here: Stripe was not asked
    viewer = bearer(endive.database, "viewer")
    assert viewer.post(url, json={}, timeout=10).status_code == 403
    unpaid = endive.start(1000)["contribution"]["id"]  # a PaymentIntent, never confirmed
    before = len(stripe_calls(endive))
    r = http.post(f"{endive.api.base}/api/v1/admin/contributions/{unpaid}/refund", json={})
    assert r.status_code == 409 and "never paid" in r.json()["detail"]
    assert len(stripe_calls(endive)) == before


def test_refunds_asked_for_but_not_yet_booked_count_against_what_is_left(
    endive: Endive, staff: Browser
) -> None:
    """Before Stripe's events arrive, what is left is the total less the books' refunds and
    the refunds asked for here: no second full refund is offered or asked of Stripe."""
    cid = endive.give(1000)
    endive.deliver()
    http = bearer(endive.database, "editor")
    url = f"{endive.api.base}/api/v1/admin/contributions/{cid}/refund"
    assert http.post(url, json={"amount": 250}, timeout=10).status_code == 202
    assert endive.row(cid).refunded_amount == 0  # nothing booked yet
    assert "Left to refund: $7.50" in page_text(staff.get(f"/admin/contributions/{cid}"))
    before = len(stripe_calls(endive))
    over = http.post(url, json={"amount": 1000}, timeout=10)
    assert over.status_code == 422
    assert "more than is left to refund ($7.50)" in over.json()["errors"]["amount"][0]
    assert len(stripe_calls(endive)) == before
    rest = http.post(url, json={}, timeout=10)
    assert rest.status_code == 202 and rest.json()["amount"] == 750
    again = http.post(url, json={}, timeout=10)
    assert again.status_code == 409 and "already been asked for" in again.json()["detail"]
    assert "Refund $10.00" not in staff.get(f"/admin/contributions/{cid}").text
    endive.deliver()  # Stripe's events: the books now hold both refunds
    c = endive.row(cid)
    assert (c.status, c.refunded_amount) == ("refunded", 1000)
    endive.assert_books_match_stripe()


def test_a_renewal_is_refunded_through_its_charges_payment_intent(endive: Endive) -> None:
    cid = endive.give(1500, frequency="monthly")
    endive.standin.renew(endive.row(cid).stripe_subscription_id)
    endive.deliver()
    (renewal,) = endive.renewals(cid)
    assert renewal.stripe_payment_intent_id is None and renewal.stripe_charge_id
    http = bearer(endive.database, "editor")
    r = http.post(
        f"{endive.api.base}/api/v1/admin/contributions/{renewal.id}/refund",
        json={"amount": 500},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    endive.deliver()
    assert endive.row(renewal.id).status == "partially_refunded"
    assert endive.row(renewal.id).refunded_amount == 500
    assert endive.row(cid).status == "succeeded"  # the first payment is untouched
    endive.assert_books_match_stripe()


def test_stripes_refusal_is_shown_with_its_own_message(endive: Endive, staff: Browser) -> None:
    cid = endive.give(2000)
    endive.deliver()
    charge = endive.charge_of(cid)
    endive.standin.dispute(charge["id"])  # charged back at Stripe; the books don't know yet
    form = {"amount": "2000", "key": "not a key!"}  # a key not of this form's making is dropped
    answer = staff.form(f"/admin/contributions/{cid}/refund", form)
    assert answer.status_code == 303
    shown = html.unescape(staff.get(answer.headers["Location"]).text)
    assert "Stripe did not refund it: " in shown and "charged back" in shown
    http = bearer(endive.database, "editor")
    r = http.post(f"{endive.api.base}/api/v1/admin/contributions/{cid}/refund", json={}, timeout=10)
    assert r.status_code == 502 and "charged back" in r.json()["detail"]
    with endive.database.sessions() as s:  # nothing was refunded: nothing audited
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
        assert s.scalar(select(func.count()).select_from(JournalEntry).where(
            JournalEntry.kind == a.REFUND)) == 0  # fmt: skip


# --- the OpenAPI document ----------------------------------------------------------------------
def test_the_refund_and_the_new_filters_are_in_the_openapi_document(api) -> None:
    spec = api.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/admin/contributions/{contribution_id}/refund"]["post"]
    assert {"202", "404", "409", "422", "502", "401", "403"} <= set(op["responses"])
    assert op["security"] and "Stripe's events" in op["description"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RefundBody"}
    assert "amount" in spec["components"]["schemas"]["RefundBody"]["properties"]
    listed_params = spec["paths"]["/api/v1/admin/contributions"]["get"]["parameters"]
    assert {"frequency", "article", "email"} <= {p["name"] for p in listed_params}
