"""The strict Content-Security-Policy in a real browser: no page reports a violation.

Listens for `securitypolicyviolation` events (installed before any page script runs) and for
console errors, on the reader pages, the donor account, the admin login and dashboard, the
campaign editor (widget preview) and the embeddable appeal.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from donations.admin.auth import create_user
from donations.admin.tokens import create_token
from donations.appeals.snapshot import config_row

pytestmark = pytest.mark.browser

EMAIL = "csp-editor@newsroom.example"
PASSWORD = "correct horse battery staple"
DEMO_CAMPAIGNS = (
    Path(__file__).resolve().parents[2] / "donations" / "appeals" / "demo_campaigns.json"
)
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
    + ` (${e.sourceFile}:${e.lineNumber})`);
}, true);
"""


@pytest.fixture(autouse=True)
def _fresh(_clean_database: None, database: Any, server: SimpleNamespace) -> None:
    with database.transaction() as session:
        config_row(session).version = time.time_ns() // 1000
        create_user(session, EMAIL, PASSWORD, "editor")
        token = create_token(session, "csp-browser-tests")
    server.services.appeals.invalidate()
    for doc in json.loads(DEMO_CAMPAIGNS.read_text(encoding="utf-8")):
        r = requests.post(
            f"{server.url}/api/v1/admin/campaigns",
            json=doc,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(LISTEN)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.problems.append(str(exc)))
    yield pg
    context.close()


def violations(page: Any) -> list[str]:
    page.wait_for_timeout(300)  # events are dispatched asynchronously
    found: list[str] = page.evaluate("() => window.__csp || []")
    for frame in page.frames[1:]:
        # A cross-origin or detached frame: its own page is checked on its own.
        with contextlib.suppress(Exception):
            found += frame.evaluate("() => window.__csp || []")
    return found


def assert_clean(page: Any) -> None:
    assert violations(page) == []
    assert [p for p in page.problems if "Content Security Policy" in p or "CSP" in p] == []


@pytest.mark.parametrize(
    "path",
    ["/contribute", "/contribute?currency=eur", "/demo/article", "/account", "/admin/login"],
)
def test_reader_and_sign_in_pages_raise_no_csp_violation(page, server, path):
    page.goto(f"{server.url}{path}", wait_until="networkidle")
    assert page.evaluate("() => document.readyState") == "complete"
    assert_clean(page)


def test_the_contribute_page_still_works_under_the_policy(page, server):
    page.goto(f"{server.url}/contribute", wait_until="networkidle")
    # contribute.js ran (it draws the preset buttons) and Stripe.js mounted its card field.
    assert page.locator("#presets button").count() >= 3
    page.locator("#card-element *").first.wait_for(state="attached")
    assert_clean(page)


def test_the_demo_article_widget_is_styled_under_the_policy(page, server):
    page.goto(f"{server.url}/demo/article", wait_until="networkidle")
    epic = page.locator("[data-donations-appeal][data-placement=epic]")
    epic.locator("css=[role=complementary]").wait_for()
    # The shadow root's stylesheet applied (its nonce matched the page's style-src).
    padding = page.evaluate(
        """() => {
            const box = document.querySelector('[data-donations-appeal][data-placement=epic]')
              .shadowRoot.querySelector('.p');
            return getComputedStyle(box).paddingTop;
        }"""
    )
    assert padding not in ("", "0px")
    assert_clean(page)


def test_the_embed_is_styled_and_counts_without_violations(page, server):
    page.goto(
        f"{server.url}/embed/appeal?article=csp-check&placement=epic", wait_until="networkidle"
    )
    if page.locator(".appeal").count():
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('.appeal')).backgroundColor"
        )
        assert background not in ("", "rgba(0, 0, 0, 0)")
    assert_clean(page)


def test_the_admin_dashboard_and_editor_raise_no_csp_violation(page, server):
    page.goto(f"{server.url}/admin/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/admin/")
    page.wait_for_load_state("networkidle")
    assert_clean(page)
    page.goto(f"{server.url}/admin/campaigns", wait_until="networkidle")
    assert_clean(page)
    link = page.locator("a[href*='/admin/campaigns/']").first
    if link.count():
        link.click()
        page.wait_for_load_state("networkidle")
        assert_clean(page)
