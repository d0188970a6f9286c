"""The donor's account in a real browser (Debian Chromium via Playwright): follow an emailed
sign-in link, see the account page, update the card with (fake) Stripe.js, and keep the
supporter token the page issues in localStorage so appeals stop on this browser too."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from sqlalchemy import select

from donations import supporters
from donations.checkout.models import Contribution, Subscription
from tests.conftest import wait_for

pytestmark = pytest.mark.browser

EMAIL = "browser-donor@example.org"


@pytest.fixture
def queued_links(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sign-in URLs as queued (the mail sender clears payloads once it has sent them)."""
    from donations.donors import links

    found: list[str] = []
    real = links.enqueue

    def recording(session: Any, **kw: Any) -> bool:
        if kw["kind"] == "sign_in_link":
            found.append(kw["payload"]["url"])
        return real(session, **kw)

    monkeypatch.setattr(links, "enqueue", recording)
    return found


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400}, locale="en-US")
    context.set_default_timeout(20_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def monthly_subscription(server: SimpleNamespace, database: Any, stripe_client: Any) -> str:
    started = requests.post(
        f"{server.url}/api/v1/contributions",
        json={"amount": 1500, "currency": "usd", "frequency": "monthly", "email": EMAIL},
        timeout=30,
    ).json()
    cid = started["contribution"]["id"]
    seti_id = started["stripe"]["client_secret"].split("_secret_")[0]
    stripe_client.v1.setup_intents.confirm(seti_id, params={"payment_method": "pm_card_visa"})
    r = requests.post(f"{server.url}/api/v1/contributions/{cid}/subscribe", json={}, timeout=30)
    assert r.status_code == 201, r.text
    with database.sessions() as s:
        return s.scalar(select(Subscription.id).where(Subscription.contribution_id == cid))


def test_a_donor_signs_in_by_link_updates_the_card_and_becomes_a_supporter_here(
    page, server, database, stripe_client, settings, queued_links
):
    sub_id = monthly_subscription(server, database, stripe_client)

    page.goto(f"{server.url}/account")
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_selector("#check-inbox")
    url = wait_for(lambda: queued_links)[-1]
    assert url.startswith(f"{server.url}/account/sign-in/")

    page.goto(url)
    page.click("#continue")
    page.wait_for_selector("#contributions")
    assert EMAIL in page.inner_text("main")
    with database.sessions() as s:
        cid = s.get(Subscription, sub_id).contribution_id
        assert s.get(Contribution, cid) is not None
    assert page.locator(f"tr[data-contribution='{cid}']").count() == 1
    token = page.evaluate("() => localStorage.getItem('donations:supporter')")
    assert supporters.verify(settings.secret_key, token).kind == "recurring"

    # the link is used up: a second visit is refused
    page.goto(url)
    assert "expired or was already used" in page.inner_text("main")

    page.goto(f"{server.url}/account")
    page.click(f"[data-subscription='{sub_id}'] >> text=Update card")
    page.wait_for_selector("#card-element input[placeholder=number]")
    card = page.locator("#card-element")
    card.locator("input[placeholder=number]").fill("4242424242424242")
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("34")
    card.locator("input[placeholder=cvc]").fill("123")
    card.locator("input[placeholder=postal_code]").fill("10001")
    customer_id = stripe_client.v1.subscriptions.retrieve(sub_id).customer
    before = stripe_client.v1.customers.retrieve(
        customer_id
    ).invoice_settings.default_payment_method
    page.click("#save-card")
    page.wait_for_selector("[data-flash=ok]")
    assert "Your card is updated" in page.inner_text("[data-flash=ok]")
    after = stripe_client.v1.customers.retrieve(customer_id).invoice_settings.default_payment_method
    assert after and after != before


ACCOUNT_WORDS = {
    "en": {
        "sign_in": "Email me a sign-in link",
        "inbox": "Check your inbox",
        "title": "Your contributions",
        "amount": "$15.00",
        "every": "every month",
        "annual_offer": "Suggested: $180.00 a year.",
    },
    "ru": {
        "sign_in": "Прислать ссылку для входа",
        "inbox": "Проверьте почту",
        "title": "Ваши пожертвования",
        "amount": "15,00\xa0$",
        "every": "каждый месяц",
        "annual_offer": "Предлагаем: 180,00\xa0$ в год.",
    },
}


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_donor_manages_their_gift_in_their_language(
    page, server, database, stripe_client, queued_links, shots, lang
):
    words = ACCOUNT_WORDS[lang]
    sub_id = monthly_subscription(server, database, stripe_client)
    # The receipt's link carries the email's language; the visit keeps it.
    page.goto(f"{server.url}/account?lang={lang}")
    assert page.get_attribute("html", "lang") == lang
    assert page.inner_text("button[type=submit]") == words["sign_in"]
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_selector("#check-inbox")
    assert words["inbox"] in page.inner_text("h1")
    page.screenshot(path=str(shots / f"check-inbox-{lang}.png"), full_page=True)
    url = wait_for(lambda: queued_links)[-1]
    page.goto(url)
    page.click("#continue")
    page.wait_for_selector("#contributions")
    assert page.get_attribute("html", "lang") == lang
    assert page.inner_text("h1") == words["title"]
    sub = page.locator(f"[data-subscription='{sub_id}']")
    assert words["amount"] in sub.inner_text() and words["every"] in sub.inner_text()
    assert words["annual_offer"] in sub.inner_text()
    assert page.input_value(f"#interval-amount-{sub_id}") == "180"
    shot = shots / f"account-{lang}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
