"""The embeddable appeal widget (/widget.js) on the demo article, in a real browser (Debian
Chromium via Playwright): rendering in a shadow root, the CTA's prefilled link, dismissal, the
gate's dialog behaviour, an unreachable API, event counting and the reader's opt-out.

The widget renders inside open shadow roots; Playwright's CSS locators pierce them, e.g.
`page.locator("[data-donations-appeal][data-placement=epic]").locator("css=h2")`.

These tests run their own server (module scope) whose PUBLIC_BASE_URL is its real address,
so the appeal's CTA link (built from PUBLIC_BASE_URL) leads back to it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlalchemy import select

from donations import supporters
from donations.admin.tokens import create_token
from donations.appeals.models import EventCount
from donations.appeals.snapshot import config_row
from donations.appeals.throttle import event_limiter
from tests.conftest import wait_for

pytestmark = pytest.mark.browser

ARTICLE = "putin-congratulates-biden"
HEADLINE = "Putin Congratulates U.S. President-Elect Biden"
DEMO_CAMPAIGNS = (
    Path(__file__).resolve().parents[2] / "donations" / "appeals" / "demo_campaigns.json"
)
EPIC = "[data-donations-appeal][data-placement=epic]"
BANNER = "[data-donations-appeal][data-placement=banner]"
GATE = "[data-donations-appeal][data-placement=gate]"
# Set to a folder (e.g. /tmp) to keep screenshots: demo-epic.png and demo-gate.png.
SCREENSHOTS = os.environ.get("WIDGET_SCREENSHOTS", "")


@pytest.fixture(autouse=True)
def _fresh_appeals(_clean_database: None, database: Any, server: SimpleNamespace) -> None:
    """The e2e conftest empties every table, which restarts the campaigns' version counter:
    move it somewhere no earlier test has been, so this server's snapshot is rebuilt."""
    with database.transaction() as session:
        config_row(session).version = time.time_ns() // 1000
    server.services.appeals.invalidate()
    # Every test's page counts from 127.0.0.1 with the same tokens: fresh per-client budgets.
    event_limiter(server.app).reset()


@pytest.fixture
def admin_token(database: Any) -> str:
    with database.transaction() as session:
        return create_token(session, "widget-browser-tests")


@pytest.fixture
def seed(server: SimpleNamespace, admin_token: str):
    def post(*docs: dict[str, Any]) -> None:
        for doc in docs:
            r = requests.post(
                f"{server.url}/api/v1/admin/campaigns",
                json=doc,
                headers={"Authorization": f"Bearer {admin_token}"},
                timeout=10,
            )
            assert r.status_code == 201, r.text
        # The POST invalidates the snapshot, but while one request rebuilds it, concurrent
        # ones (the page asks for three placements at once) are served the previous one.
        # One request first, alone, so the page's requests all see the new campaigns.
        warm = requests.get(
            f"{server.url}/api/v1/appeal", params={"article": "warm-up"}, timeout=10
        )
        assert warm.status_code in (200, 204)
        ids = {c.id for c in server.services.appeals.current().campaigns}
        assert ids == {doc["id"] for doc in docs}, ids

    return post


def demo_campaigns() -> list[dict[str, Any]]:
    return json.loads(DEMO_CAMPAIGNS.read_text(encoding="utf-8"))


def campaign(cid: str = "widget-test", placements: tuple[str, ...] = ("epic",), **over: Any):
    """One live single-variant campaign (monthly by default) built from the demo's copy."""
    doc = copy.deepcopy(demo_campaigns()[0])
    doc.update(id=cid, name=cid, placements=list(placements))
    doc["variants"] = [doc["variants"][0]]
    doc.update(over)
    return doc


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A fresh browser context (empty localStorage) per test; uncaught page errors fail it."""
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.appeal_requests = []  # type: ignore[attr-defined]
    pg.event_requests = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: _note_request(pg, r))
    yield pg
    assert not errors, f"uncaught errors in the page: {errors}"


def _note_request(pg: Any, request: Any) -> None:
    if "/api/v1/appeal" in request.url:
        pg.appeal_requests.append(request.url)
    elif "/api/v1/events" in request.url:
        pg.event_requests.append(request)


def settled(page: Any) -> None:
    """Wait until the widget has asked for (and rendered or skipped) every placement."""
    page.wait_for_function("() => !!window.donations")
    page.evaluate("() => window.donations.ready")


def open_article(page: Any, server: SimpleNamespace, article: str | None = None) -> None:
    suffix = f"?article={article}" if article else ""
    page.goto(f"{server.url}/demo/article{suffix}")
    settled(page)


def shadow_html(page: Any, selector: str) -> str | None:
    return page.evaluate(
        "(s) => { const el = document.querySelector(s); "
        "return el.shadowRoot ? el.shadowRoot.innerHTML : null; }",
        selector,
    )


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def state(page: Any) -> dict[str, Any]:
    return json.loads(page.evaluate("() => localStorage.getItem('donations:state')") or "{}")


def set_storage(page: Any, server: SimpleNamespace, items: dict[str, str]) -> None:
    page.goto(f"{server.url}/healthz")
    page.evaluate(
        "(items) => { for (const [k, v] of Object.entries(items)) localStorage.setItem(k, v); }",
        items,
    )


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


# --- (a) the epic on the demo article ------------------------------------------------------
def test_the_demo_article_shows_the_epic_in_a_shadow_root(page, server, seed):
    seed(*demo_campaigns())
    open_article(page, server)

    assert HEADLINE in page.inner_text("h1")
    assert page.locator("time[datetime='2020-12-15']").count() == 1
    assert page.locator(".cards a").count() == 4

    epic = page.locator(EPIC)
    box = epic.locator("css=[role=complementary]")
    box.wait_for()
    assert box.get_attribute("aria-label")
    heading = epic.locator("css=h2").inner_text()
    headings = [v["heading"] for v in demo_campaigns()[0]["variants"]]
    assert heading in headings
    assert epic.locator("css=.b p").count() == 2  # the body_html paragraphs
    bar = epic.locator("css=[role=progressbar]")
    assert bar.get_attribute("aria-valuemax") == "5000000"
    assert bar.get_attribute("aria-valuenow") == "0"
    assert "raised of our $50,000 goal" in bar.get_attribute("aria-valuetext")
    assert epic.locator("css=.am button").count() >= 3
    cta = epic.locator("css=a.cta")
    assert cta.get_attribute("href").startswith(f"{server.url}/contribute?")
    # The page's CSS cannot reach it: it lives in a shadow root with its own stylesheet.
    assert page.evaluate(f"() => !!document.querySelector('{EPIC}').shadowRoot")
    assert epic.locator("css=style").count() == 1

    banner = page.locator(BANNER)
    banner.locator("css=[role=complementary]").wait_for()
    assert banner.locator("css=button[aria-label=Close]").count() == 1
    assert banner.locator("css=a.cta").is_visible()
    # The gate waits for five articles read; this is the first.
    assert shadow_html(page, GATE) is None

    st = state(page)
    assert st["reads"] == {today(): [ARTICLE]}
    assert len(st["rid"]) == 32
    assert st["imps"]["year-end-2020"]  # one impression for the page view (epic + banner)
    [first] = [u for u in page.appeal_requests if "placement=epic" in u]
    q = query_of(first)
    assert (q["article"], q["section"], q["tags"], q["lang"], q["views"]) == (
        ARTICLE,
        "news",
        "putin,biden,usa",
        "en",
        "1",
    )
    assert q["rid"] == st["rid"]

    if SCREENSHOTS:
        page.evaluate(
            "(s) => window.scrollTo(0, document.querySelector(s).getBoundingClientRect().top"
            " + window.scrollY - 260)",
            EPIC,
        )
        page.wait_for_timeout(400)
        page.screenshot(path=os.path.join(SCREENSHOTS, "demo-epic.png"))


# --- (b) the CTA -----------------------------------------------------------------------------
def test_the_cta_opens_contribute_with_the_chosen_amount_and_the_attribution(page, server, seed):
    seed(campaign())
    open_article(page, server)
    epic = page.locator(EPIC)
    cta = epic.locator("css=a.cta")
    cta.wait_for()
    # The default amount is the first monthly preset; the reader picks another.
    assert epic.locator("css=.am button[aria-pressed=true]").get_attribute("data-amount") == "500"
    epic.locator("css=.am button[data-amount='2000']").click()
    assert (
        epic.locator("css=.am button[data-amount='2000']").get_attribute("aria-pressed") == "true"
    )
    assert epic.locator("css=.am button[aria-pressed=true]").count() == 1
    cta.click()

    page.wait_for_url("**/contribute?**")
    q = query_of(page.url)
    assert (q["amount"], q["currency"], q["frequency"]) == ("2000", "usd", "monthly")
    assert (q["campaign"], q["variant"], q["placement"], q["article"]) == (
        "widget-test",
        "control",
        "epic",
        ARTICLE,
    )
    assert q["impression"].startswith("imp_")
    page.wait_for_selector("#presets button")
    assert page.is_checked("#frequency-monthly")
    assert page.input_value("#currency") == "usd"
    assert page.get_attribute("#presets button[data-amount='2000']", "aria-pressed") == "true"


# --- (c) dismissal -------------------------------------------------------------------------
def test_a_dismissed_epic_hides_and_stays_hidden_on_reload(page, server, seed):
    seed(campaign())
    open_article(page, server)
    epic = page.locator(EPIC)
    close = epic.locator("css=button[aria-label=Close]")
    close.wait_for()
    close.click()
    assert epic.locator("css=h2").count() == 0
    assert page.locator(EPIC).bounding_box()["height"] == 0
    st = state(page)
    assert list(st["dis"]) == ["widget-test"]

    page.appeal_requests.clear()
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r) if "/api/v1/appeal" in r.url else None)
    page.reload()
    settled(page)
    assert epic.locator("css=h2").count() == 0
    [asked] = [u for u in page.appeal_requests if "placement=epic" in u]
    q = query_of(asked)
    assert q["dismissed"] == "widget-test"
    assert q["last_dismissed"].endswith("Z")
    [answer] = [r for r in responses if "placement=epic" in r.url]
    assert answer.status == 204  # the service does the hiding


# --- (d) the gate --------------------------------------------------------------------------
def _focus_in_gate(page: Any) -> bool:
    return page.evaluate(
        "(s) => { const host = document.querySelector(s); const a = host.shadowRoot && "
        "host.shadowRoot.activeElement; return document.activeElement === host && !!a && "
        "!!a.closest('[role=dialog]'); }",
        GATE,
    )


def _focused_in_gate(page: Any) -> str:
    return page.evaluate(
        "(s) => { const a = document.querySelector(s).shadowRoot.activeElement; "
        "return a ? (a.getAttribute('aria-label') || a.textContent.trim()) : ''; }",
        GATE,
    )


def test_the_gate_appears_after_five_articles_traps_focus_and_closes_on_escape(page, server, seed):
    seed(*demo_campaigns())
    for n in range(1, 5):
        open_article(page, server, f"story-{n}")
        assert shadow_html(page, GATE) is None, f"gate shown after {n} articles"
    assert state(page)["reads"][today()] == [f"story-{n}" for n in range(1, 5)]

    # Fifth article: hold the gate's request until the reader has focused a link on the page.
    held: list[Any] = []
    page.route("**/api/v1/appeal?*placement=gate*", lambda route: held.append(route))
    page.goto(f"{server.url}/demo/article?article=story-5")
    while not held:
        page.wait_for_timeout(25)
    link = page.locator(".cards a").first
    link.focus()
    held[0].continue_()
    settled(page)

    gate = page.locator(GATE)
    dialog = gate.locator("css=[role=dialog]")
    dialog.wait_for()
    assert dialog.get_attribute("aria-modal") == "true"
    labelled = dialog.get_attribute("aria-labelledby")
    assert gate.locator(f"css=h2#{labelled}").inner_text()
    assert "read 5 articles" in dialog.text_content()
    assert _focus_in_gate(page)

    # Tab and Shift+Tab cycle through the dialog's controls and never leave it.
    controls = dialog.locator("css=a[href], button").count()
    assert controls >= 3  # presets, the CTA, close
    names = []
    for _ in range(controls + 2):
        page.keyboard.press("Tab")
        assert _focus_in_gate(page)
        names.append(_focused_in_gate(page))
    assert names[controls] == names[0]  # wrapped around
    assert "Close" in names
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert _focus_in_gate(page)
    assert page.evaluate("() => document.documentElement.style.overflow") == "hidden"

    if SCREENSHOTS:
        page.wait_for_timeout(400)
        page.screenshot(path=os.path.join(SCREENSHOTS, "demo-gate.png"))

    page.keyboard.press("Escape")
    assert gate.locator("css=[role=dialog]").count() == 0
    assert page.evaluate("() => document.activeElement.textContent") == link.inner_text()
    assert page.evaluate("() => document.documentElement.style.overflow") == ""
    assert "reader-gate" in state(page)["dis"]


def test_the_gate_is_never_shown_to_a_supporter(page, server, seed, settings):
    seed(*demo_campaigns())
    token = supporters.issue(settings.secret_key, "recurring")
    reads = {today(): [f"story-{n}" for n in range(10)]}
    set_storage(
        page,
        server,
        {
            "donations:supporter": token,
            "donations:state": json.dumps({"rid": "r1", "reads": reads}),
        },
    )
    open_article(page, server)
    gate_requests = [u for u in page.appeal_requests if "placement=gate" in u]
    assert [query_of(u)["views"] for u in gate_requests] == ["11"]
    assert query_of(gate_requests[0])["supporter"] == token
    for placement in (GATE, EPIC, BANNER):
        assert shadow_html(page, placement) is None
    # Without the token, the same reader gets the gate.
    page.evaluate("() => localStorage.removeItem('donations:supporter')")
    page.reload()
    settled(page)
    page.locator(GATE).locator("css=[role=dialog]").wait_for()


# --- (e) the API is down -----------------------------------------------------------------------
def _article_renders_without_the_widget(page: Any) -> None:
    assert page.locator("h1").is_visible()
    assert HEADLINE in page.inner_text("h1")
    assert page.locator(".body p").first.is_visible()
    for placement in (EPIC, BANNER, GATE):
        assert shadow_html(page, placement) is None
        assert page.locator(placement).bounding_box()["height"] == 0
    assert page.evaluate("() => document.documentElement.style.overflow") == ""


def test_an_unreachable_api_leaves_the_page_as_it_is(page, server, seed):
    seed(*demo_campaigns())
    page.route("**/api/v1/appeal*", lambda route: route.abort())
    open_article(page, server)
    _article_renders_without_the_widget(page)
    assert len(page.appeal_requests) == 3
    assert page.event_requests == []


def test_a_slow_api_is_given_up_after_the_timeout(page, server, seed):
    seed(*demo_campaigns())
    held: list[Any] = []
    page.route("**/api/v1/appeal*", lambda route: held.append(route))  # never answered
    started = time.monotonic()
    page.goto(f"{server.url}/demo/article")
    _ = page.locator("h1").inner_text()
    settled(page)  # the widget gives up after 2.5 s instead of waiting 10 s or more
    assert 2.0 < time.monotonic() - started < 8.0
    assert len(held) == 3
    _article_renders_without_the_widget(page)
    # A late answer changes nothing: the requests were aborted.
    for route in held:
        with contextlib.suppress(Exception):
            route.continue_()
    page.wait_for_timeout(500)
    _article_renders_without_the_widget(page)
    assert page.event_requests == []


# --- (f) events ------------------------------------------------------------------------------
def test_an_impression_and_a_click_are_counted(page, server, seed, database):
    seed(campaign())
    open_article(page, server)
    cta = page.locator(EPIC).locator("css=a.cta")
    cta.wait_for()
    cta.click()
    page.wait_for_url("**/contribute?**")

    def counted() -> dict[str, int]:
        server.services.events.flush_redis()
        with database.sessions() as s:
            rows = s.scalars(select(EventCount).where(EventCount.campaign == "widget-test")).all()
        found = {r.type: r.count for r in rows}
        return found if {"impression", "click"} <= set(found) else {}

    found = wait_for(counted, timeout=15)
    assert found["impression"] == 1
    assert found["click"] == 1
    with database.sessions() as s:
        rows = s.scalars(select(EventCount).where(EventCount.campaign == "widget-test")).all()
    assert {(r.variant, r.placement, r.article) for r in rows} == {("control", "epic", ARTICLE)}
    sent = page.event_requests
    assert sent and all(r.method == "POST" for r in sent)
    assert sent[0].headers.get("content-type", "").startswith("text/plain")


def test_the_embed_page_counts_its_impression_with_the_token_it_was_served(
    page, server, seed, database
):
    seed(campaign())
    page.goto(f"{server.url}/embed/appeal?article={ARTICLE}&rid=reader-1")
    page.locator("main.appeal").wait_for()

    def counted() -> dict[str, int]:
        server.services.events.flush_all()
        with database.sessions() as s:
            rows = s.scalars(select(EventCount).where(EventCount.campaign == "widget-test")).all()
        return {r.type: r.count for r in rows if r.article == ARTICLE}

    token = page.locator("main.appeal").get_attribute("data-impression")
    assert token and token.startswith("imp_") and len(token) == 24
    # Counted: the page sent the token it was served (a forged one would count nothing).
    assert wait_for(lambda: counted().get("impression"), timeout=15) == 1


# --- (g) opt-out -----------------------------------------------------------------------------
def test_an_opted_out_reader_gets_nothing_and_sends_nothing(page, server, seed):
    seed(*demo_campaigns())
    set_storage(page, server, {"donations:optout": "1"})
    open_article(page, server)
    page.wait_for_timeout(1500)  # longer than the event batching timer
    assert page.appeal_requests == []
    assert page.event_requests == []
    for placement in (EPIC, BANNER, GATE):
        assert shadow_html(page, placement) is None
    assert state(page) == {}

    # Opting in brings the appeals back; opting out removes them and forgets the state.
    page.evaluate("() => window.donations.optIn()")
    page.locator(EPIC).locator("css=h2").wait_for()
    assert state(page)["reads"]
    page.evaluate("() => window.donations.optOut()")
    assert page.locator(EPIC).locator("css=h2").count() == 0
    assert page.locator(BANNER).locator("css=a.cta").count() == 0
    assert state(page) == {}
    assert page.evaluate("() => localStorage.getItem('donations:optout')") == "1"


# --- the script and the iframe page over plain HTTP -------------------------------------------
def test_widget_js_is_served_as_javascript_with_a_short_cache(server):
    r = requests.get(f"{server.url}/widget.js", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/javascript")
    assert r.headers["Cache-Control"] == "public, max-age=300"
    assert "data-donations-appeal" in r.text


def test_the_embed_page_renders_the_appeal_or_nothing(server, seed):
    seed(campaign())
    base = f"{server.url}/embed/appeal"
    r = requests.get(base, params={"article": ARTICLE, "rid": "reader-1"}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    heading = demo_campaigns()[0]["variants"][0]["heading"]
    assert heading in r.text
    assert 'role="progressbar"' in r.text
    assert f'href="{server.url}/contribute?amount=1000&amp;currency=usd' in r.text
    empty = requests.get(base, params={"article": ARTICLE, "placement": "gate"}, timeout=10)
    assert empty.status_code == 200
    assert "<main" not in empty.text
    bad = requests.get(base, params={"placement": "sidebar"}, timeout=10)
    assert bad.status_code == 422
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert set(bad.json()["errors"]) == {"article", "placement"}
