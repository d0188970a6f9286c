"""The hosted checkout pages in a real browser (Debian Chromium via Playwright), paying
localstripe through its fake Stripe.js, with webhooks moving the status as in production.

The fake card element is five plain inputs (placeholders number, exp_month, exp_year (two
digits), cvc, postal_code). Declines: localstripe declines the *charge* of 4000000000000341
(a one-off PaymentIntent) and the *attachment* of 4000000000000002 (a SetupIntent).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from sqlalchemy import select

from donations import supporters
from donations.checkout.models import Contribution
from tests.conftest import wait_for

pytestmark = pytest.mark.browser

GOOD_CARD = "4242424242424242"
DECLINED_CHARGE_CARD = "4000000000000341"
DECLINED_SETUP_CARD = "4000000000000002"
THREE_D_SECURE_CARD = "4000002760003184"
# The page's language (and the article to go back to) ride along.
THANK_YOU = re.compile(r".*/contribute/thank-you\?contribution=ctb_[0-9a-f]{24}(&[^#]*)?$")
# Set to a path (e.g. /tmp/contribute.png) to keep a screenshot of the filled form.
SCREENSHOT = os.environ.get("CONTRIBUTE_SCREENSHOT", "")


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh browser context (empty localStorage) per test; uncaught page errors fail it."""
    context = browser.new_context(viewport={"width": 1100, "height": 1500}, locale="en-US")
    context.set_default_timeout(20_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def open_contribute(page: Any, live_server: Any, **query: str) -> None:
    page.goto(f"{live_server.url}/contribute?{urlencode(query)}")
    page.wait_for_selector("#card-element input[placeholder=number]")


def fill_card(page: Any, number: str) -> None:
    card = page.locator("#card-element")
    card.locator("input[placeholder=number]").fill(number)
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("34")
    card.locator("input[placeholder=cvc]").fill("123")
    card.locator("input[placeholder=postal_code]").fill("10001")


def contribution_id(page: Any) -> str:
    return parse_qs(urlparse(page.url).query)["contribution"][0]


def contribution(api: Any, cid: str) -> dict[str, Any]:
    r = api.get(f"/api/v1/contributions/{cid}")
    assert r.status_code == 200, r.text
    return r.json()["contribution"]


def rows(database: Any) -> list[Contribution]:
    with database.sessions() as s:
        return list(s.scalars(select(Contribution).order_by(Contribution.created_at)))


def test_a_one_off_contribution_with_a_good_card_is_paid_and_thanked(
    page, live_server, api, settings
):
    open_contribute(page, live_server, amount="2500", currency="usd", frequency="one_off")
    page.fill("#email", "reader@example.org")
    page.fill("#name", "A Reader")

    page.check("#cover-fees")
    expected_total, expected_fee = settings.currencies["usd"].charge_for(2500, True)
    shown_fee = int(page.get_attribute("#fee-extra", "data-minor"))
    assert shown_fee == expected_fee == 106
    assert page.inner_text("#fee-extra") == "$1.06"
    assert "$26.06" in page.inner_text("#submit")

    fill_card(page, GOOD_CARD)
    page.click("#submit")
    page.wait_for_url(THANK_YOU)
    cid = contribution_id(page)

    page.wait_for_selector("#outcome[data-status=succeeded]")
    assert "Thank you" in page.inner_text("#outcome-title")
    assert "$26.06" in page.inner_text("#outcome-text")
    assert page.text_content("#outcome-status") == "payment succeeded"

    token = wait_for(lambda: page.evaluate("localStorage.getItem('donations:supporter')"))
    supporter = supporters.verify(settings.secret_key, token)
    assert supporter is not None and supporter.kind == "one_off"

    c = contribution(api, cid)
    assert c["status"] == "succeeded"
    assert (c["amount"], c["fee_covered"], c["total"]) == (2500, shown_fee, expected_total)
    assert c["frequency"] == "one_off"


def test_a_declined_card_shows_the_decline_and_the_reader_can_retry_with_another_card(
    page, live_server, api, database
):
    open_contribute(page, live_server, amount="1000", currency="usd", frequency="one_off")
    page.fill("#email", "declined@example.org")
    fill_card(page, DECLINED_CHARGE_CARD)
    page.click("#submit")

    errors = page.locator("#form-errors")
    errors.filter(has_text="declined").wait_for()
    assert "Your card was declined." in errors.inner_text()
    assert errors.get_attribute("aria-live") in ("assertive", "polite")
    assert "/contribute/thank-you" not in page.url
    assert page.is_enabled("#submit")
    # The failure webhook lands ~1 s later and marks the contribution failed.
    [declined] = wait_for(lambda: [r for r in rows(database) if r.status == "failed"])
    assert declined.failure_message == "Your card was declined."

    # Another card pays the same contribution; the thank-you page must not take the stale
    # "failed" (it reads so until the success webhook lands) for the outcome.
    fill_card(page, GOOD_CARD)
    page.click("#submit")
    page.wait_for_url(THANK_YOU)
    assert contribution_id(page) == declined.id
    page.wait_for_selector("#outcome[data-status=succeeded]")
    assert "Thank you" in page.inner_text("#outcome-title")
    assert contribution(api, declined.id)["status"] == "succeeded"
    assert [(r.id, r.status) for r in rows(database)] == [(declined.id, "succeeded")]


def test_a_monthly_contribution_sets_up_the_card_and_starts_a_subscription(
    page, live_server, api, settings
):
    open_contribute(page, live_server, currency="usd", frequency="monthly")
    assert page.is_checked("#frequency-monthly")
    page.click("#presets button[data-amount='1000']")
    assert page.get_attribute("#presets button[data-amount='1000']", "aria-pressed") == "true"
    page.fill("#email", "monthly@example.org")
    fill_card(page, GOOD_CARD)
    page.click("#submit")

    page.wait_for_url(THANK_YOU)
    cid = contribution_id(page)
    page.wait_for_selector("#outcome[data-status=succeeded]")
    assert "monthly" in page.inner_text("#outcome-text")
    token = wait_for(lambda: page.evaluate("localStorage.getItem('donations:supporter')"))
    assert supporters.verify(settings.secret_key, token).kind == "recurring"

    c = contribution(api, cid)
    assert c["status"] == "succeeded"
    assert c["frequency"] == "monthly"
    assert (c["amount"], c["total"]) == (1000, 1000)
    assert c["subscription"] and c["subscription"].startswith("sub_")


def test_a_declined_card_on_a_recurring_contribution_is_reported_on_the_page(page, live_server):
    open_contribute(page, live_server, amount="500", currency="usd", frequency="monthly")
    page.fill("#email", "monthly-declined@example.org")
    fill_card(page, DECLINED_SETUP_CARD)
    page.click("#submit")
    page.locator("#form-errors").filter(has_text="declined").wait_for()
    assert "/contribute/thank-you" not in page.url


def test_the_prefilled_query_appears_in_the_form_and_the_attribution_is_recorded(
    page, live_server, database
):
    open_contribute(
        page,
        live_server,
        amount="1234",
        currency="eur",
        frequency="annual",
        article="putin-congratulates-biden",
        campaign="year-end-2020",
        variant="control",
        placement="epic",
        impression="imp_0123456789abcdef",
    )
    assert page.is_checked("#frequency-annual")
    assert page.input_value("#currency") == "eur"
    assert page.inner_text("#currency-badge") == "EUR"
    assert page.input_value("#custom-amount") == "12.34"  # not a preset: shown in major units
    assert page.locator("#presets button[aria-pressed=true]").count() == 0
    assert "€12.34" in page.inner_text("#submit")

    page.fill("#email", "annual@example.org")
    page.check("#cover-fees")
    fill_card(page, GOOD_CARD)
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    page.click("#submit")
    page.wait_for_url(THANK_YOU)
    cid = contribution_id(page)

    with database.sessions() as s:
        row = s.get(Contribution, cid)
    assert (row.currency, row.frequency, row.amount) == ("eur", "annual", 1234)
    assert row.fee_covered == row.total - 1234 > 0
    assert (row.article, row.campaign, row.variant, row.placement, row.impression) == (
        "putin-congratulates-biden",
        "year-end-2020",
        "control",
        "epic",
        "imp_0123456789abcdef",
    )
    page.wait_for_selector("#outcome[data-status=succeeded]")


@pytest.mark.parametrize(
    ("lang", "currency", "typed", "minor"),
    [
        ("en", "usd", "25.5", 2550),
        ("en", "usd", "1,000", 100000),
        ("en", "eur", "19,99", 1999),
        ("en", "gbp", "7", 700),
        ("en", "jpy", "1,500", 1500),
        # Russian writes a decimal comma and may group thousands with a dot.
        ("ru", "usd", "2,5", 250),
        ("ru", "usd", "1.000", 100000),
        ("ru", "usd", "1 000,50", 100050),
        ("ru", "eur", "19.99", 1999),  # a dot not followed by three digits: a decimal point
    ],
)
def test_a_typed_amount_becomes_exact_minor_units_and_the_fee_matches_the_server(
    page, live_server, settings, lang, currency, typed, minor
):
    open_contribute(page, live_server, currency=currency, frequency="one_off", lang=lang)
    page.fill("#custom-amount", typed)
    page.check("#cover-fees")
    total, fee = settings.currencies[currency].charge_for(minor, True)
    assert int(page.get_attribute("#fee-extra", "data-minor")) == fee
    assert int(page.get_attribute("#submit", "data-total")) == total


def test_amounts_outside_the_limits_and_a_missing_email_are_explained_before_any_request(
    page, live_server, database
):
    open_contribute(page, live_server, currency="usd", frequency="one_off")
    page.fill("#custom-amount", "0.50")
    page.click("#submit")
    errors = page.locator("#form-errors")
    errors.filter(has_text="minimum").wait_for()
    assert "email" in errors.inner_text().lower()
    assert page.get_attribute("#custom-amount", "aria-invalid") == "true"
    assert "$1.00" in page.inner_text("#amount-error")
    page.fill("#custom-amount", "2.505")
    page.click("#submit")
    errors.filter(has_text="decimal").wait_for()
    assert rows(database) == []


def test_a_russian_decimal_comma_is_never_read_as_thousands(page, live_server, database):
    """"2,505" on a Russian page is 2.505 dollars (three decimals: refused), not $2,505."""
    open_contribute(page, live_server, currency="usd", frequency="one_off", lang="ru")
    page.fill("#email", "comma@example.org")
    page.fill("#custom-amount", "2,505")
    page.click("#submit")
    page.locator("#amount-error").filter(has_text="2").wait_for()
    assert page.get_attribute("#custom-amount", "aria-invalid") == "true"
    assert "2\u00a0505" not in page.inner_text("#submit")
    page.fill("#custom-amount", "abc")
    page.click("#submit")
    page.locator("#amount-error").filter(has_text="25,00").wait_for()  # the example, in Russian
    assert rows(database) == []


def test_the_thank_you_page_explains_an_unknown_contribution(page, live_server):
    page.goto(f"{live_server.url}/contribute/thank-you?contribution=ctb_{'0' * 24}")
    page.wait_for_selector("#outcome[data-status=unknown]")
    assert "could not find" in page.inner_text("#outcome-title")
    assert page.is_visible("#retry-link")


def test_the_servers_validation_errors_are_shown_next_to_their_fields(page, live_server, database):
    # The browser's own check accepts "reader@example"; the API answers 422 naming the field.
    open_contribute(page, live_server, amount="500", currency="usd", frequency="one_off")
    page.fill("#email", "reader@example")
    fill_card(page, GOOD_CARD)
    page.click("#submit")
    page.locator("#form-errors").filter(has_text="Email").wait_for()
    assert "valid email" in page.inner_text("#email-error").lower()
    assert page.get_attribute("#email", "aria-invalid") == "true"
    assert "/contribute/thank-you" not in page.url
    assert rows(database) == []


def test_a_card_that_needs_3d_secure_is_authenticated_in_the_page_and_paid(page, live_server, api):
    open_contribute(page, live_server, amount="2500", currency="usd", frequency="one_off")
    page.fill("#email", "three-ds@example.org")
    fill_card(page, THREE_D_SECURE_CARD)
    page.click("#submit")
    # The emulator's stand-in for the bank's 3-D Secure dialog (real Stripe.js shows its own).
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(THANK_YOU)
    page.wait_for_selector("#outcome[data-status=succeeded]")
    assert contribution(api, contribution_id(page))["status"] == "succeeded"


def test_a_failed_3d_secure_authentication_is_reported_and_can_be_retried(page, live_server):
    open_contribute(page, live_server, amount="2500", currency="usd", frequency="one_off")
    page.fill("#email", "three-ds-fail@example.org")
    fill_card(page, THREE_D_SECURE_CARD)
    page.click("#submit")
    page.get_by_role("button", name="Fail authentication").click()
    page.locator("#form-errors").filter(has_text="authenticat").wait_for()
    assert "/contribute/thank-you" not in page.url

    # Trying again with the same card, and authenticating this time, pays the contribution.
    page.click("#submit")
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(THANK_YOU)
    page.wait_for_selector("#outcome[data-status=succeeded]")
