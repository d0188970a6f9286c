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
from types import SimpleNamespace
from typing import Any

import pytest

from donations.admin.auth import create_user
from donations.appeals.snapshot import config_row
from donations.ledger import accounts as a
from donations.ledger import journal, postings

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


@pytest.fixture
def books(database: Any) -> None:
    """A week of usd gifts and their Stripe fees, so the daily chart has something to draw."""
    today = datetime.now(UTC).replace(tzinfo=None, hour=12, minute=0, second=0, microsecond=0)
    with database.transaction() as session:
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
    csv = page.get_by_role("link", name="Download contributions (CSV)").get_attribute("href")
    assert csv is not None and csv.startswith("/api/v1/admin/contributions?format=csv&from=")
    assert page.errors == []
