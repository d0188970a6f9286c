"""Checkout and thank-you in a real browser, in English and in Russian (Debian Chromium via
Playwright, paying localstripe): the appeal's `lang` chooses the language, the browser's
Intl.NumberFormat writes the money, an empty card field is flagged like the email, and the
thank-you page links back to the article. Each run keeps screenshots in pytest's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.test_contribute_browser import GOOD_CARD, THANK_YOU, contribution_id, fill_card

pytestmark = pytest.mark.browser

WORDS = {
    "en": {
        "heading": "How often would you like to give?",
        "submit": "Contribute $25.00",
        "monthly_submit": "Contribute $10.00 a month",
        "card_missing": "Please enter your card details.",
        "thanks": "Thank you for supporting",
        "amount": "$25.00",
        "status": "payment succeeded",
        "back": "Back to the article",
        "switch_to": "Русский",
    },
    "ru": {
        "heading": "Как часто вы хотите жертвовать?",
        "submit": "Поддержать: 25,00\xa0$",
        "monthly_submit": "Поддержать: 10,00\xa0$ в месяц",
        "card_missing": "Пожалуйста, введите данные карты.",
        "thanks": "Спасибо, что поддерживаете",
        "amount": "25,00\xa0$",
        "status": "платёж прошёл",
        "back": "Вернуться к статье",
        "switch_to": "English",
    },
}


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """An English-speaking browser: the Russian pages come from the appeal's link alone."""
    context = browser.new_context(viewport={"width": 1100, "height": 1500}, locale="en-US")
    context.set_default_timeout(20_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, "an empty screenshot"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_reader_gives_in_their_language_and_is_thanked_in_it(
    page, live_server, settings, shots, lang
):
    words = WORDS[lang]
    article = f"{settings.public_base_url}/demo/article?from=appeal"
    query = {
        "amount": "2500",
        "currency": "usd",
        "frequency": "one_off",
        "article": "a-story",
        "placement": "epic",
        "lang": lang,
        "url": article,
    }
    page.goto(f"{live_server.url}/contribute?{urlencode(query)}")
    page.wait_for_selector("#card-element input[placeholder=number]")
    assert page.get_attribute("html", "lang") == lang
    assert page.inner_text("legend.group__label >> nth=0") == words["heading"]
    # Money written by the browser's Intl.NumberFormat in the page's language.
    assert page.inner_text("#submit-label") == words["submit"]

    # An empty card field is flagged like the email, before anything is sent.
    page.fill("#email", f"{lang}-reader@example.org")
    page.click("#submit")
    page.locator("#card-error").filter(has_text=words["card_missing"]).wait_for()
    assert page.get_attribute("#card-element", "aria-invalid") == "true"
    assert words["card_missing"] in page.inner_text("#form-errors")
    assert page.get_attribute("#card-element", "aria-describedby") == "card-error"
    screenshot(page, shots / f"contribute-{lang}-card-missing.png")

    fill_card(page, GOOD_CARD)
    assert page.get_attribute("#card-element", "aria-invalid") is None  # typing clears it
    screenshot(page, shots / f"contribute-{lang}.png")
    page.click("#submit")
    page.wait_for_url(THANK_YOU)
    assert contribution_id(page).startswith("ctb_")
    page.wait_for_selector("#outcome[data-status=succeeded]")
    assert page.get_attribute("html", "lang") == lang
    assert words["thanks"] in page.inner_text("#outcome-title")
    assert settings.newsroom_name in page.inner_text("#outcome-title")
    assert words["amount"] in page.inner_text("#outcome-text")
    assert page.text_content("#outcome-status") == words["status"]
    back = page.locator("#back-link")
    assert back.get_attribute("href") == article
    assert words["back"] in back.inner_text()
    screenshot(page, shots / f"thank-you-{lang}.png")


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_language_switcher_reloads_the_checkout_with_its_query(page, live_server, lang):
    page.goto(
        f"{live_server.url}/contribute?currency=usd&frequency=monthly&amount=1000&lang={lang}"
    )
    page.wait_for_selector("#presets button")
    assert page.inner_text("#submit-label") == WORDS[lang]["monthly_submit"]
    other = "ru" if lang == "en" else "en"
    page.locator(".checkout__top .languages").get_by_text(WORDS[lang]["switch_to"]).click()
    page.wait_for_url(f"**/contribute?currency=usd&frequency=monthly&amount=1000&lang={other}")
    page.wait_for_selector("#presets button")
    assert page.get_attribute("html", "lang") == other
    assert page.is_checked("#frequency-monthly")
    assert page.inner_text("#submit-label") == WORDS[other]["monthly_submit"]


def test_a_russian_browser_gets_russian_pages_without_any_link(browser, live_server):
    context = browser.new_context(locale="ru-RU")
    try:
        pg = context.new_page()
        pg.goto(f"{live_server.url}/contribute?currency=eur&frequency=one_off&amount=1999")
        pg.wait_for_selector("#presets button")
        assert pg.get_attribute("html", "lang") == "ru"
        assert pg.input_value("#custom-amount") == "19,99"  # as a Russian reader types it
        assert pg.get_attribute("#custom-amount", "placeholder") == "0,00"
        assert pg.inner_text("#submit-label") == "Поддержать: 19,99\xa0€"
    finally:
        context.close()


def test_a_declined_card_is_explained_in_russian(page, live_server):
    """Stripe's own messages are English (the emulator's, and a decline's): a Russian page
    says it in its own words, for a saved card's decline and for details it cannot read."""
    query = {"amount": "1000", "currency": "usd", "frequency": "monthly", "lang": "ru"}
    page.goto(f"{live_server.url}/contribute?{urlencode(query)}")
    page.wait_for_selector("#card-element input[placeholder=number]")
    page.fill("#email", "declined-ru@example.org")
    fill_card(page, "4000000000000002")  # declined when the monthly gift's card is saved
    page.click("#submit")
    page.locator("#form-errors").filter(has_text="Ваша карта отклонена.").wait_for()
    assert "declined" not in page.inner_text("#form-errors").lower()
    fill_card(page, "1234")  # incomplete details
    page.click("#submit")
    page.locator("#card-error").filter(has_text="Не удалось использовать карту.").wait_for()
    assert "card" not in page.inner_text("#card-error").lower()
