"""The embeddable appeal widget (/widget.js) on the demo article, in a real browser (Debian
Chromium via Playwright): rendering in a shadow root, the CTA's prefilled link, dismissal, the
gate's dialog behaviour, an unreachable API, event counting and the reader's opt-out.

The widget asks `GET /api/v1/appeals/version` once per page, then `GET /api/v1/appeals?…` with
only what describes the page (the same URL for every reader), and decides for its reader in the
browser (docs/appeals-in-the-browser.md). Every behaviour that moved there has a test here:
frequency caps, the dismissal cool-down, the gate after N articles, supporter suppression, the
sticky variant, the language; and the requests carry no reader state (two readers ask the
identical URLs).

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
from datetime import UTC, datetime, timedelta
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
from donations.appeals.reader import bucket
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
# What the widget's request for an article may say, in this order: nothing about its reader.
PAGE_PARAMETERS = ["article", "placement", "section", "tags", "lang", "v"]
DAY_MS = 86_400_000


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
    # Only the words a test sets itself (the demo's own Russian copy would answer "ru").
    doc["variants"][0].pop("translations", None)
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
    """Every request for appeals (the version, the candidates, the legacy one) and events."""
    if "/api/v1/appeal" in request.url:
        pg.appeal_requests.append(request.url)
    elif "/api/v1/events" in request.url:
        pg.event_requests.append(request)


def candidate_requests(page: Any, placement: str | None = None) -> list[str]:
    """The widget's `GET /api/v1/appeals?…` requests (for one placement)."""
    return [
        u
        for u in page.appeal_requests
        if urlparse(u).path == "/api/v1/appeals"
        and (placement is None or query_of(u).get("placement") == placement)
    ]


def version_requests(page: Any) -> list[str]:
    return [u for u in page.appeal_requests if urlparse(u).path == "/api/v1/appeals/version"]


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


def day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def now_ms() -> int:
    return int(time.time() * 1000)


def set_state(page: Any, server: SimpleNamespace, **state: Any) -> None:
    """The reader's state in localStorage (as widget.js keeps it), before opening a page."""
    set_storage(page, server, {"donations:state": json.dumps(state)})


def epic_heading(page: Any) -> str | None:
    """The rendered epic's heading, or None when nothing is shown."""
    return page.evaluate(
        "(s) => { const r = document.querySelector(s).shadowRoot;"
        " const h = r && r.querySelector('h2'); return h ? h.textContent : null; }",
        EPIC,
    )


def titled(doc: dict[str, Any], *headings: str, **over: Any) -> dict[str, Any]:
    """The campaign with one variant per heading (ids v0, v1, …; weight 1 each)."""
    base = doc["variants"][0]
    doc["variants"] = [dict(base, id=f"v{i}", heading=h) for i, h in enumerate(headings)]
    doc.update(over)
    return doc


def admin_patch(server: SimpleNamespace, token: str, path: str, body: dict[str, Any]) -> None:
    r = requests.patch(
        f"{server.url}/api/v1/admin/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


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
    # One version request for the page, then one request per placement saying only the page.
    assert len(version_requests(page)) == 1
    version = requests.get(f"{server.url}/api/v1/appeals/version", timeout=10).json()["version"]
    [first] = candidate_requests(page, "epic")
    q = query_of(first)
    assert list(q) == PAGE_PARAMETERS
    assert q == {
        "article": ARTICLE,
        "placement": "epic",
        "section": "news",
        "tags": "putin,biden,usa",
        "lang": "en",
        "v": str(version),
    }
    assert st["rid"] not in first
    assert len(candidate_requests(page)) == 3

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
    page.reload()
    settled(page)
    assert epic.locator("css=h2").count() == 0
    # The request does not say so: the answer still offers the campaign, the browser hides it.
    [asked] = candidate_requests(page, "epic")
    assert list(query_of(asked)) == PAGE_PARAMETERS
    answer = requests.get(asked, timeout=10).json()
    assert [c["campaign"] for c in answer["candidates"]] == ["widget-test"]


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
    page.route("**/api/v1/appeals?*placement=gate*", lambda route: held.append(route))
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
    [gate_request] = candidate_requests(page, "gate")
    assert list(query_of(gate_request)) == PAGE_PARAMETERS  # the token never leaves the browser
    assert token not in gate_request
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


# The version request fails (one request, nothing more), or the version is answered and each
# placement's candidates request fails (three).
FAILING = {"version": ("**/api/v1/appeals/version*", 1), "candidates": ("**/api/v1/appeals?*", 3)}


@pytest.mark.parametrize("failing", sorted(FAILING))
def test_an_unreachable_api_leaves_the_page_as_it_is(page, server, seed, failing):
    seed(*demo_campaigns())
    pattern, failed = FAILING[failing]
    page.route(pattern, lambda route: route.abort())
    open_article(page, server)
    _article_renders_without_the_widget(page)
    assert len(version_requests(page)) == 1
    assert len(candidate_requests(page)) == (failed if failing == "candidates" else 0)
    assert page.event_requests == []


@pytest.mark.parametrize("failing", sorted(FAILING))
def test_a_slow_api_is_given_up_after_the_timeout(page, server, seed, failing):
    seed(*demo_campaigns())
    held: list[Any] = []
    pattern, requests_held = FAILING[failing]
    page.route(pattern, lambda route: held.append(route))  # never answered
    started = time.monotonic()
    page.goto(f"{server.url}/demo/article")
    _ = page.locator("h1").inner_text()
    settled(page)  # the widget gives up after 2.5 s instead of waiting 10 s or more
    assert 2.0 < time.monotonic() - started < 8.0
    assert len(held) == requests_held
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


# --- (h) decided in the browser: what moved there from the server ---------------------------
def test_a_campaign_seen_as_often_as_its_cap_gives_way_to_a_lower_priority_one(page, server, seed):
    cap = {"max_impressions": 2, "per_days": 7, "after_dismiss_days": 14}
    seed(
        titled(campaign("capped"), "Capped appeal", priority=20, frequency=cap),
        titled(campaign("fallback"), "Fallback appeal", priority=1),
    )
    for n in (1, 2):
        open_article(page, server, f"story-{n}")
        assert epic_heading(page) == "Capped appeal", f"view {n}"
    assert len(state(page)["imps"]["capped"]) == 2  # counted in the browser, one per page view
    open_article(page, server, "story-3")
    assert epic_heading(page) == "Fallback appeal"
    open_article(page, server, "story-3")  # the same article (its answer from the HTTP cache)
    assert epic_heading(page) == "Fallback appeal"

    # Impressions older than the cap's window (per_days) do not count any more.
    st = state(page)
    st["imps"]["capped"] = [now_ms() - 8 * DAY_MS, now_ms() - 9 * DAY_MS]
    set_state(page, server, **st)
    open_article(page, server, "story-4")
    assert epic_heading(page) == "Capped appeal"
    # Every request said only the page.
    assert all(list(query_of(u)) == PAGE_PARAMETERS for u in candidate_requests(page))


def test_a_dismissed_campaign_stays_hidden_for_its_cool_down_then_comes_back(page, server, seed):
    cool = {"max_impressions": None, "per_days": 30, "after_dismiss_days": 3}
    seed(titled(campaign("cooling"), "Cooling appeal", frequency=cool))
    set_state(page, server, rid="reader-1", dis={"cooling": now_ms() - 2 * DAY_MS})
    open_article(page, server)
    assert epic_heading(page) is None
    assert shadow_html(page, EPIC) is None
    # Three days (and a minute) later it is shown again.
    set_state(page, server, rid="reader-1", dis={"cooling": now_ms() - 3 * DAY_MS - 60_000})
    open_article(page, server)
    assert epic_heading(page) == "Cooling appeal"


def test_the_gate_waits_for_the_newsrooms_number_of_articles_in_30_days(
    page, server, seed, admin_token
):
    seed(*demo_campaigns())
    admin_patch(server, admin_token, "appeal-settings", {"gate_after_articles": 3})
    # Reads older than 30 days are forgotten; one yesterday, and this one: 2 < 3.
    reads = {day(40): ["old-1", "old-2", "old-3"], day(1): ["yesterday"]}
    set_state(page, server, rid="reader-1", reads=reads)
    open_article(page, server, "story-1")
    assert shadow_html(page, GATE) is None
    assert epic_heading(page)  # the epic is not gated by the reads
    assert set(state(page)["reads"]) == {day(1), today()}
    # The third article in 30 days opens the gate.
    open_article(page, server, "story-2")
    dialog = page.locator(GATE).locator("css=[role=dialog]")
    dialog.wait_for()
    assert "read 3 articles" in dialog.text_content()


def _supporter_sees(page: Any, server: SimpleNamespace, token: str | None) -> dict[str, bool]:
    """What a reader with this token (and eleven articles read) is shown on the demo article."""
    items = {
        "donations:state": json.dumps(
            {"rid": "reader-1", "reads": {today(): [f"story-{n}" for n in range(10)]}}
        )
    }
    set_storage(page, server, items)
    page.evaluate(
        "(t) => t ? localStorage.setItem('donations:supporter', t)"
        " : localStorage.removeItem('donations:supporter')",
        token,
    )
    open_article(page, server)
    shown = {name: shadow_html(page, sel) is not None for name, sel in PLACEMENTS.items()}
    if shown["gate"]:
        page.keyboard.press("Escape")  # close it (a dismissal) for the next round
    return shown


PLACEMENTS = {"epic": EPIC, "banner": BANNER, "gate": GATE}


def test_a_supporter_token_hides_appeals_in_the_browser(page, server, seed, settings):
    seed(*demo_campaigns())
    key, now = settings.secret_key, datetime.now(UTC)
    nothing = {"epic": False, "banner": False, "gate": False}
    # A recurring supporter: nothing anywhere.
    recurring = supporters.issue(key, "recurring")
    assert _supporter_sees(page, server, recurring) == nothing
    # The browser reads the payload without checking the signature: a forged token only hides
    # the appeals from whoever forged it.
    payload, stamp, _signature = recurring.split(".")
    assert _supporter_sees(page, server, f"{payload}.{stamp}.forged") == nothing
    # A compressed payload (itsdangerous starts it with ".") or garbage counts as none.
    assert _supporter_sees(page, server, f".{payload}.{stamp}.x")["epic"]
    assert _supporter_sees(page, server, "not-a-token")["epic"]
    # A one-off gift ten days ago (within the 90-day window): nothing.
    recent = supporters.issue(key, "one_off", since=now - timedelta(days=10))
    assert _supporter_sees(page, server, recent) == nothing
    # A one-off gift 100 days ago, its token still valid: the appeals, but never the gate.
    old = supporters.issue(key, "one_off", since=now - timedelta(days=100), one_off_days=200)
    assert _supporter_sees(page, server, old) == {"epic": True, "banner": True, "gate": False}
    # An expired token counts as none: everything, the gate too.
    expired = supporters.issue(key, "recurring", now=now - timedelta(days=40))
    assert expired
    assert _supporter_sees(page, server, expired) == {"epic": True, "banner": True, "gate": True}
    # No token at all: everything.
    assert _supporter_sees(page, server, None) == {"epic": True, "banner": True, "gate": True}
    # The token was never sent anywhere.
    assert not [u for u in page.appeal_requests if "supporter" in u]


def _variant_of(rid: str, weights: tuple[int, ...]) -> int:
    """The variant widget.js (and donations.appeals.reader) gives this reader."""
    point = bucket("split", "variant", rid) * sum(weights)
    running = 0
    for i, w in enumerate(weights):
        running += w
        if point < running:
            return i
    return len(weights) - 1


def test_a_reader_keeps_their_variant_and_readers_are_split(page, server, seed):
    headings = ("Variant zero", "Variant one")
    seed(titled(campaign("split"), *headings, frequency={"max_impressions": None}))
    # Two reader ids the bucket puts in different variants.
    first = {}
    for n in range(100):
        first.setdefault(_variant_of(f"reader-{n}", (1, 1)), f"reader-{n}")
    assert len(first) == 2
    for expected, rid in sorted(first.items()):
        set_state(page, server, rid=rid)
        for n in range(3):  # the same reader, across reloads and articles
            open_article(page, server, f"story-{n}")
            assert epic_heading(page) == headings[expected], (rid, n)
        assert state(page)["rid"] == rid
    # A new reader (a random id made by the widget) also keeps the one variant they got.
    set_storage(page, server, {})
    page.evaluate("() => localStorage.clear()")
    open_article(page, server)
    rid = state(page)["rid"]
    got = epic_heading(page)
    assert got == headings[_variant_of(rid, (1, 1))]
    for _ in range(2):
        page.reload()
        settled(page)
        assert epic_heading(page) == got
    assert all(rid not in u for u in page.appeal_requests)


def open_page(page: Any, server: SimpleNamespace, body: str, html_lang: str = "en") -> None:
    """A newsroom page of the test's own (served on the app's origin by Playwright)."""
    url = f"{server.url}/e2e/newsroom-page"
    html = (
        f'<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8">'
        f'<script async src="/widget.js"></script></head><body><h1>Story</h1>{body}</body></html>'
    )
    page.unroute(url)
    page.route(url, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    page.goto(url)
    settled(page)


def test_the_language_chooses_the_campaign_and_its_translation(page, server, seed):
    everyone = titled(campaign("everyone"), "Support independent journalism", priority=1)
    everyone["variants"][0]["translations"] = {
        "de": {"heading": "Unterstützen Sie unabhängigen Journalismus", "cta_label": "Jetzt geben"}
    }
    russian = titled(campaign("russian-readers"), "Поддержите независимую журналистику")
    russian.update(priority=10)
    russian["targeting"]["languages"] = ["ru"]
    seed(everyone, russian)

    def epic(lang_attr: str, html_lang: str = "en") -> tuple[str | None, str | None]:
        attr = f' data-lang="{lang_attr}"' if lang_attr else ""
        open_page(
            page,
            server,
            f'<div data-donations-appeal data-placement="epic" data-article="lang-story"{attr}>'
            "</div>",
            html_lang,
        )
        root = page.locator(EPIC)
        cta = root.locator("css=a.cta")
        return epic_heading(page), (cta.inner_text() if cta.count() else None)

    assert epic("ru") == ("Поддержите независимую журналистику", "Contribute today")
    assert epic("de") == ("Unterstützen Sie unabhängigen Journalismus", "Jetzt geben")
    assert epic("en") == ("Support independent journalism", "Contribute today")
    # Without data-lang, the page's own language (a regional one matches its base).
    assert epic("", html_lang="ru-RU")[0] == "Поддержите независимую журналистику"
    assert epic("", html_lang="de")[0] == "Unterstützen Sie unabhängigen Journalismus"
    assert (
        page.evaluate("(s) => document.querySelector(s).shadowRoot.querySelector('.w').lang", EPIC)
        == "de"
    )
    langs = [query_of(u)["lang"] for u in candidate_requests(page)]
    assert langs == ["ru", "de", "en", "ru-ru", "de"]


def _reader_requests(
    browser: Any, server: SimpleNamespace, storage: dict[str, str], cookie: str
) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """Every request ({url, headers, body}) a reader with this localStorage (and a cookie of
    the newsroom's origin) makes opening the demo article, and what they were shown."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        ctx.add_cookies([{"name": "newsroom_session", "value": cookie, "url": server.url}])
        pg = ctx.new_page()
        seen: list[Any] = []
        set_storage(pg, server, storage)
        pg.on("request", lambda r: seen.append(r))
        pg.goto(f"{server.url}/demo/article")
        settled(pg)
        shown = {name: shadow_html(pg, sel) is not None for name, sel in PLACEMENTS.items()}
        pg.wait_for_timeout(1200)  # longer than the events' batching timer
        sent = [{"url": r.url, "headers": r.all_headers(), "body": r.post_data or ""} for r in seen]
        return sent, shown
    finally:
        ctx.close()


def test_two_readers_ask_the_identical_urls_that_say_nothing_about_them(
    browser, server, seed, settings
):
    seed(*demo_campaigns())
    token = supporters.issue(settings.secret_key, "recurring")
    rid = "f00dfeedcafebabe0123456789abcdef"
    regular = {
        "donations:state": json.dumps(
            {
                "rid": rid,
                "reads": {today(): [f"story-{n}" for n in range(7)]},
                "imps": {"year-end-2020": [now_ms() - DAY_MS]},
                "dis": {"reader-gate": now_ms() - 30 * DAY_MS},
            }
        ),
        "donations:supporter": token,
    }
    first, first_shown = _reader_requests(browser, server, regular, "reader-one-cookie")
    second, second_shown = _reader_requests(browser, server, {}, "reader-two-cookie")

    def appeal_urls(sent: list[dict[str, Any]]) -> list[str]:
        return sorted(r["url"] for r in sent if "/api/v1/appeal" in r["url"])

    # The identical requests: the version and one per placement, saying only the page …
    urls = appeal_urls(first)
    for url in urls:
        if urlparse(url).path == "/api/v1/appeals":
            assert list(query_of(url)) == PAGE_PARAMETERS
    assert urls == appeal_urls(second)
    paths = sorted(urlparse(u).path for u in urls)
    assert paths == ["/api/v1/appeals"] * 3 + ["/api/v1/appeals/version"]
    # … and different decisions in the browser (a supporter sees nothing).
    assert first_shown == {"epic": False, "banner": False, "gate": False}
    assert second_shown == {"epic": True, "banner": True, "gate": False}
    # Nothing the reader's browser keeps goes out: not in a URL, a header or a body; and the
    # widget's appeal requests carry no cookie (the page's own request does).
    kept = [rid, token, "story-3", "reader-gate"]
    for r in first + second:
        out = r["url"] + json.dumps(r["headers"]) + r["body"]
        assert not [x for x in kept if x in out], r["url"]
        if "/api/v1/appeal" in r["url"]:
            assert "cookie" not in r["headers"], r["url"]
    [page_request] = [r for r in first if urlparse(r["url"]).path == "/demo/article"]
    assert "reader-one-cookie" in page_request["headers"]["cookie"]


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


# The widget's own words, as a reader reads them (the contract: English, and Russian from the
# catalog); the campaign's own copy is the editor's and stays as written.
WIDGET_WORDS = {
    "en": {
        "read": "You\u2019ve read 5 articles in the last 30 days",
        "read_one": "You\u2019ve read 21 articles in the last 30 days",
        "per_month": "a month",
        "note": "Secure payment by card. Cancel at any time.",
        "goal": "Goal $50,000",
        "close": "Close",
        "amount": "Amount",
    },
    "ru": {
        "read": "Вы прочитали 5 статей за последние 30 дней",
        "read_one": "Вы прочитали 21 статью за последние 30 дней",
        "per_month": "в месяц",
        "note": "Безопасная оплата картой. Отменить можно в любой момент.",
        "goal": "Цель 50\u00a0000\u00a0$",
        "close": "Закрыть",
        "amount": "Сумма",
    },
}


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_widget_speaks_the_pages_language_in_the_newsrooms_colours(
    page, server, seed, shots, lang
):
    words = WIDGET_WORDS[lang]
    doc = campaign("words", goal={"amount": 5_000_000, "currency": "usd"})
    doc["variants"][0]["default_frequency"] = "monthly"
    seed(doc)

    def shown(reads: int) -> dict[str, Any]:
        set_state(page, server, reads={today(): [f"story-{n}" for n in range(reads - 1)]})
        open_page(
            page,
            server,
            '<link rel="canonical" href="https://news.example/2026/story#top">'
            f'<div data-donations-appeal data-placement="epic" data-article="words-story"'
            f' data-lang="{lang}"></div>',
            lang,
        )
        return page.evaluate(
            """(s) => { const r = document.querySelector(s).shadowRoot;
              const q = (c) => r.querySelector(c);
              return { read: q('.r') && q('.r').textContent, note: q('.pm').textContent,
                goal: q('.tl span:last-child').textContent,
                amounts: [...r.querySelectorAll('.am button')].map((b) => b.textContent),
                close: q('.x').getAttribute('aria-label'),
                amount: q('.am').getAttribute('aria-label'),
                cta: q('a.cta').href,
                accent: getComputedStyle(q('a.cta')).backgroundColor,
                border: getComputedStyle(q('.p')).borderTopColor }; }""",
            EPIC,
        )

    five = shown(5)
    assert five["read"] == words["read"]
    assert shown(21)["read"] == words["read_one"]  # Russian: 21 takes the "one" form
    five = shown(5)
    assert five["note"] == words["note"]
    assert five["goal"] == words["goal"]
    assert five["close"] == words["close"] and five["amount"] == words["amount"]
    assert five["amounts"] and all(a.endswith(words["per_month"]) for a in five["amounts"])
    # The newsroom's accent (NEWSROOM_ACCENT_COLOR, default #0b4a8b) on the button and rule.
    assert five["accent"] == five["border"] == "rgb(11, 74, 139)"
    # The checkout speaks the appeal's language and the thank-you page can link back to the
    # article (its canonical address, without the fragment).
    cta = query_of(five["cta"])
    assert cta["lang"] == lang and cta["url"] == "https://news.example/2026/story"
    page.locator(EPIC).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / f"widget-epic-{lang}.png"), full_page=True)
    assert (shots / f"widget-epic-{lang}.png").stat().st_size > 10_000
