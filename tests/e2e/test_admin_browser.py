"""The admin in a real browser (Debian Chromium via Playwright): sign in through the login form,
create a campaign in the editor while the real widget previews it, see it on the demo article,
and open the dashboard to find its chart drawn from seeded books.

Like the widget tests, this module runs its own server whose PUBLIC_BASE_URL is its address.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from donations.admin.auth import create_user
from donations.admin.models import AuditEntry
from donations.appeals.models import EventCount
from donations.appeals.snapshot import config_row
from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from donations.ledger import journal, postings
from donations.reports import rollups

pytestmark = pytest.mark.browser

EMAIL = "editor@newsroom.example"
PASSWORD = "correct horse battery staple"
HEADING = "Local news needs local readers"
EPIC_PREVIEW = "[data-preview=epic]"
# Set to a folder (e.g. /tmp) to keep screenshots: admin-editor.png and admin-dashboard.png.
SCREENSHOTS = os.environ.get("ADMIN_SCREENSHOTS", "")


@pytest.fixture(autouse=True)
def _fresh(_clean_database: None, database: Any, server: SimpleNamespace) -> None:
    """A new campaigns version (the cleaned tables restart its counter) and an editor."""
    with database.transaction() as session:
        config_row(session).version = time.time_ns() // 1000
        create_user(session, EMAIL, PASSWORD, "editor")
    server.services.appeals.invalidate()


LONG_SLUG = "the-city-council-votes-on-the-budget-for-schools-libraries-and-parks-" + "x" * 80


@pytest.fixture
def books(database: Any) -> None:
    """A week of usd gifts and their Stripe fees, so the daily chart has something to draw, and
    an article with a very long slug among the top articles."""
    today = datetime.now(UTC).replace(tzinfo=None, hour=12, minute=0, second=0, microsecond=0)
    with database.transaction() as session:
        seen = {"day": today.date(), "campaign": "c", "variant": "control", "placement": "epic",
                "article": LONG_SLUG, "type": "impression", "count": 120}  # fmt: skip
        session.add(EventCount(**seen))
        rollups.add_events(session, [seen])
        for n in range(7):
            when = today - timedelta(days=n)
            gift = 1000 + 500 * n
            journal.post(
                session,
                key=f"payment:ch_dash_{n}",
                kind=a.PAYMENT_ONE_OFF,
                currency="usd",
                occurred_at=when,
                stripe_object_id=f"ch_dash_{n}",
                lines=postings.payment(
                    gift,
                    gift,
                    0,
                    currency="usd",
                    settled=gift,
                    settlement_currency="usd",
                    recurring=False,
                ),
            )
            journal.post(
                session,
                key=f"fee:txn_dash_{n}",
                kind=a.STRIPE_FEE,
                currency="usd",
                occurred_at=when,
                stripe_object_id=f"txn_dash_{n}",
                lines=postings.stripe_fee(30 + gift * 29 // 1000, "usd"),
            )


@pytest.fixture
def page(browser: Any, server: SimpleNamespace) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.events_sent = []
    pg.on(
        "request",
        lambda r: pg.events_sent.append(r.url) if "/api/v1/events" in r.url else None,
    )
    yield pg
    context.close()


def sign_in(page: Any, server: SimpleNamespace) -> None:
    page.goto(f"{server.url}/admin/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")


def preview_heading(page: Any, placement: str = "epic") -> str | None:
    return page.evaluate(
        """(p) => {
            const host = document.querySelector(`[data-preview=${p}]`);
            const h = host && host.shadowRoot && host.shadowRoot.querySelector('h2, .in p');
            return h ? h.textContent : null;
        }""",
        placement,
    )


def test_an_editor_creates_a_campaign_with_a_live_preview_and_readers_see_it(
    page: Any, server: SimpleNamespace
) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Campaigns").first.click()
    page.get_by_role("link", name="New campaign").click()
    page.wait_for_function("() => !!(window.donations && window.donations.preview)")

    page.get_by_label("Campaign id").fill("local-news")
    page.get_by_label("Name", exact=True).fill("Local news drive")
    page.get_by_label("Status").select_option("live")
    page.get_by_label("Heading").fill("A first try")
    page.get_by_label("Body (HTML)").fill("<p>Every gift <strong>counts</strong>.</p>")
    page.get_by_label("One-off amounts").fill("20, 50")
    page.get_by_label("Monthly amounts").fill("5, 10, 25")
    page.wait_for_function(
        "() => { const h = document.querySelector('[data-preview=epic]');"
        " return h.shadowRoot && h.shadowRoot.querySelector('h2')"
        " && h.shadowRoot.querySelector('h2').textContent === 'A first try'; }"
    )
    # The preview follows the typing (debounced), in every placement.
    page.get_by_label("Heading").fill(HEADING)
    page.wait_for_function(
        "(t) => { const root = document.querySelector('[data-preview=epic]').shadowRoot;"
        " const h = root.querySelector('h2'); return h && h.textContent === t; }",
        arg=HEADING,
    )
    assert preview_heading(page, "banner") == HEADING
    assert preview_heading(page, "gate") == HEADING
    buttons = page.locator(EPIC_PREVIEW).locator("css=.am button").all_inner_texts()
    assert buttons == ["$5 a month", "$10 a month", "$25 a month"]  # monthly by default
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "admin-editor.png"), full_page=True)
    # The preview neither counts nor remembers anything about a reader.
    assert page.evaluate("() => localStorage.getItem('donations:state')") is None

    # A mistake is shown beside its field, from the server's schema.
    page.get_by_label("Weight").fill("-3")
    page.get_by_role("button", name="Create campaign").click()
    weight = page.get_by_label("Weight")
    page.wait_for_function(
        "() => document.querySelector('[data-v=weight]').getAttribute('aria-invalid') === 'true'"
    )
    assert "greater than or equal to 0" in page.locator(".field-error").first.inner_text()
    assert page.locator("#error-summary").is_visible()
    # The summary says where in words, as `donations campaigns load` does: no field paths.
    summary = page.locator("#error-summary li").first.inner_text()
    assert summary.startswith("Variant 1, weight: Must be greater than or equal to 0"), summary
    weight.fill("1")

    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_url(f"{server.url}/admin/campaigns/local-news?saved=1")
    assert page.get_by_text("Campaign saved.").is_visible()
    assert page.events_sent == []
    assert page.errors == []

    # Readers see it at once on an article.
    reader = page.context.new_page()
    reader.goto(f"{server.url}/demo/article")
    reader.wait_for_function("() => !!window.donations")
    reader.evaluate("() => window.donations.ready")
    epic = reader.locator("[data-donations-appeal][data-placement=epic]").locator("css=h2")
    epic.wait_for()
    assert epic.inner_text() == HEADING

    # And the list shows it, with its quick actions.
    page.goto(f"{server.url}/admin/campaigns")
    row = page.locator("tr", has_text="Local news drive")
    assert row.locator(".status").inner_text() == "live"
    row.get_by_role("button", name="Pause Local news drive").click()
    assert page.get_by_text("local-news is paused.").is_visible()


def test_the_dashboard_draws_the_daily_chart_and_the_reports(
    page: Any, server: SimpleNamespace, books: None
) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Last 7 days").click()
    page.wait_for_selector("#daily-chart[data-ready='1']")
    figures = page.evaluate(
        """() => {
            const chart = window.Chart.getChart(document.getElementById('daily-chart'));
            return chart.data.datasets.map((d) => ({label: d.label, data: d.data}));
        }"""
    )
    assert [d["label"] for d in figures] == ["Gross", "Net"]
    assert len(figures[0]["data"]) == 7 and sum(figures[0]["data"]) == 175.0  # $175 in gifts
    assert all(0 < net < gross for gross, net in zip(figures[0]["data"], figures[1]["data"]))
    page.wait_for_timeout(400)  # the drawing animation
    painted = page.evaluate(
        """() => {
            const c = document.getElementById('daily-chart');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
            return n;
        }"""
    )
    assert painted > 1000
    summary = page.locator("[data-report=summary]")
    summary.locator("table").wait_for()
    assert "$175.00" in summary.inner_text()
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "admin-dashboard.png"), full_page=True)
    assert "No recurring contributions yet." in page.locator("[data-report=recurring]").inner_text()
    # The top articles fit their card: a long slug is cut with an ellipsis, whole in its title.
    slug = page.locator("[data-report=articles] .truncate").first
    slug.wait_for()
    assert slug.get_attribute("title") == LONG_SLUG
    fits = page.evaluate(
        """() => {
            const card = document.querySelector('[data-report=articles]').closest('.card');
            const table = card.querySelector('table');
            const cut = card.querySelector('.truncate');
            return {cut: cut.scrollWidth > cut.clientWidth,
                    ellipsis: getComputedStyle(cut).textOverflow,
                    table: table.getBoundingClientRect().right,
                    card: card.getBoundingClientRect().right};
        }"""
    )
    assert fits["cut"] and fits["ellipsis"] == "ellipsis"
    assert fits["table"] <= fits["card"], fits
    csv = page.get_by_role("link", name="Download contributions (CSV)").get_attribute("href")
    assert csv is not None and csv.startswith("/api/v1/admin/contributions?format=csv&from=")
    assert page.errors == []


def test_an_editor_refunds_part_of_a_contribution_after_confirming_it(
    page: Any, server: SimpleNamespace, database: Any, stripe_client: Any, shots: Path
) -> None:
    """A one-off gift paid at the emulator; the editor finds it in the list, asks for a partial
    refund, sees the amount on the confirmation and confirms; Stripe has the refund, the audit
    log says who asked, and the page says the books follow when Stripe confirms it."""
    http = requests.Session()
    started = http.post(
        f"{server.url}/api/v1/contributions",
        json={"amount": 2500, "currency": "usd", "frequency": "one_off",
              "email": "reader@example.org", "cover_fees": False},
        timeout=30,
    )  # fmt: skip
    assert started.status_code == 201, started.text
    cid = started.json()["contribution"]["id"]
    paid = http.post(
        f"{server.url}/api/v1/contributions/{cid}/confirm",
        json={"payment_method": "pm_card_visa"},
        timeout=30,
    )
    assert paid.status_code == 200, paid.text
    with database.transaction() as session:  # as the payment's webhook would (tested elsewhere)
        row = session.get(Contribution, cid)
        if not row.is_paid:
            row.status, row.succeeded_at = "succeeded", row.created_at
        pi = row.stripe_payment_intent_id

    sign_in(page, server)
    page.get_by_role("link", name="Contributions").first.click()
    page.get_by_role("link", name=f"Contribution {cid}").click()
    page.wait_for_url(f"{server.url}/admin/contributions/{cid}")
    assert "Left to refund: $25.00" in page.locator("#refund").inner_text()
    page.get_by_label("Amount to refund in USD").fill("10")
    page.get_by_role("button", name="Refund this amount…").click()

    page.get_by_role("heading", name="Refund $10.00?").wait_for()
    assert "The refund appears here when Stripe confirms it." in page.inner_text("main")
    page.screenshot(path=str(shots / "admin-refund-confirm.png"), full_page=True)
    page.get_by_role("button", name="Refund $10.00").click()

    page.wait_for_url(f"{server.url}/admin/contributions/{cid}")
    flash = page.locator(".flash--ok").inner_text()
    assert "Stripe accepted refund re_" in flash and "$10.00" in flash
    assert "The refund appears here when Stripe confirms it." in flash
    page.screenshot(path=str(shots / "admin-refund-done.png"), full_page=True)
    assert (shots / "admin-refund-done.png").stat().st_size > 10_000
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": pi}).data
    assert [r.amount for r in refunds] == [1000]
    with database.sessions() as session:
        entry = session.query(AuditEntry).filter_by(action="contribution.refund").one()
    assert entry.actor == f"user:{EMAIL}" and entry.after["refund"] == refunds[0].id
    assert page.errors == []
