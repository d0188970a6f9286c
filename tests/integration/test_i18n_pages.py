"""Reader pages in the reader's language and the newsroom's brand, over real HTTP.

The language: the CTA link's `lang`, then the visit's cookie, then Accept-Language, then
English; a query's choice sticks for the visit (contribute → thank-you → account).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from flask import render_template

from donations.app import create_app
from donations.i18n import COOKIE
from tests.conftest import Api, close_app

CONTRIBUTION = "ctb_" + "0" * 24
HTML = {"Accept": "text/html"}
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def fresh(api: Api) -> requests.Session:
    """A browser of its own: no cookie yet, no language of its own."""
    session = requests.Session()
    session.headers["Accept-Language"] = ""
    return session


def get(session: requests.Session, api: Api, path: str, **headers: str) -> requests.Response:
    r = session.get(api.base + path, headers=headers, timeout=30)
    assert r.status_code < 500, r.text
    return r


def page_language(r: requests.Response) -> str:
    match = re.search(r'<html lang="([^"]+)">', r.text)
    assert match, "not one of our pages"
    return match.group(1)


def json_block(r: requests.Response, block_id: str) -> dict[str, Any]:
    match = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', r.text)
    assert match, f"no {block_id} block"
    return json.loads(match.group(1))


def switcher(r: requests.Response) -> dict[str, str]:
    nav = r.text.split('<nav class="languages"', 1)[1].split("</nav>", 1)[0]
    return {
        code: href.replace("&amp;", "&")
        for href, code in re.findall(r'href="([^"]+)" hreflang="(\w+)"', nav)
    }


# --- which language ---------------------------------------------------------------------------
def test_the_appeals_language_in_the_link_chooses_the_page_and_sticks_for_the_visit(api):
    browser = fresh(api)
    r = get(browser, api, "/contribute?lang=ru&currency=eur&amount=1000", **HTML)
    assert page_language(r) == "ru"
    assert "Как часто вы хотите жертвовать?" in r.text
    assert json_block(r, "checkout-config")["lang"] == "ru"
    assert browser.cookies.get(COOKIE) == "ru"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # for the visit
    # then, without a query: thank-you, the account's sign-in, an error page
    thanks = get(browser, api, f"/contribute/thank-you?contribution={CONTRIBUTION}")
    assert page_language(thanks) == "ru" and "Обрабатываем ваш платёж…" in thanks.text
    account = get(browser, api, "/account")
    assert page_language(account) == "ru" and "Прислать ссылку для входа" in account.text
    missing = get(browser, api, "/no-such-page", **HTML)
    assert missing.status_code == 404 and page_language(missing) == "ru"


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("lang=ru", None, "en-US,en;q=0.9", "ru"),  # the link beats the browser
        ("lang=en", "ru", "ru", "en"),  # and the visit's earlier choice
        ("", "ru", "en-US,en;q=0.9", "ru"),  # the visit's choice beats the browser
        ("", None, "ru-RU,ru;q=0.9,en;q=0.8", "ru"),  # the browser's first language we have
        ("", None, "de-DE,de;q=0.9,en;q=0.5", "en"),
        ("", None, "", "en"),  # the default
        ("lang=de", None, "ru", "ru"),  # a language we lack is no choice: the browser's
        ("lang=<script>", "xx", "", "en"),  # nonsense anywhere: the default
        ("lang=ru-RU", None, "", "ru"),
    ],
)
def test_the_language_is_the_links_then_the_visits_then_the_browsers_then_english(
    api, query, cookie, expected, accept
):
    browser = fresh(api)
    if cookie:
        browser.cookies.set(COOKIE, cookie)
    r = get(browser, api, f"/contribute?{query}", **{"Accept-Language": accept})
    assert page_language(r) == expected
    assert json_block(r, "checkout-config")["lang"] == expected
    assert "Accept-Language" in r.headers["Vary"] and "Cookie" in r.headers["Vary"]
    set_cookie = r.headers.get("Set-Cookie", "")
    if query.startswith("lang=") and expected == (query[5:7]) and cookie != expected:
        assert f"{COOKIE}={expected}" in set_cookie
    else:
        assert COOKIE not in set_cookie  # only a link's choice is kept


def test_the_language_switcher_keeps_the_pages_query(api):
    browser = fresh(api)
    r = get(browser, api, "/contribute?currency=eur&amount=1000&article=a-story&lang=ru")
    links = switcher(r)
    assert set(links) == {"en", "ru"}
    for code, href in links.items():
        parts = urlsplit(href)
        assert parts.path == "/contribute" and not parts.netloc
        assert parse_qsl(parts.query) == [
            ("currency", "eur"),
            ("amount", "1000"),
            ("article", "a-story"),
            ("lang", code),
        ]
    assert 'aria-current="true">Русский</a>' in r.text
    english = get(browser, api, links["en"])
    assert page_language(english) == "en" and browser.cookies.get(COOKIE) == "en"
    # every other page has it in its footer
    thanks = get(browser, api, f"/contribute/thank-you?contribution={CONTRIBUTION}")
    assert switcher(thanks)["ru"] == f"/contribute/thank-you?contribution={CONTRIBUTION}&lang=ru"
    assert switcher(get(browser, api, "/account"))["ru"] == "/account?lang=ru"


def test_the_checkouts_script_gets_its_words_in_the_pages_language_without_inline_script(api):
    browser = fresh(api)
    for lang, submit, charged in (
        ("en", "Contribute {amount} a month", "You will be charged {total} once."),
        ("ru", "Поддержать: {amount} в месяц", "С вас будет однократно списано {total}."),
    ):
        r = get(browser, api, f"/contribute?lang={lang}")
        words = json_block(r, "checkout-strings")
        assert words["submit_monthly"] == submit
        assert words["charged_once"] == charged
        assert all(isinstance(v, str) and v for v in words.values())
        # Only files and JSON data blocks: the CSP forbids inline scripts.
        for attributes in SCRIPT_TAG.findall(r.text):
            assert "src=" in attributes or 'type="application/json"' in attributes
        assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]
    thanks = get(browser, api, f"/contribute/thank-you?contribution={CONTRIBUTION}&lang=ru")
    assert json_block(thanks, "thank-you-strings")["status_succeeded"] == "платёж прошёл"


def test_a_plural_on_a_page_has_russians_three_forms(app):
    with app.test_request_context("/account?lang=ru"):
        said = {
            minutes: render_template("account/check_inbox.html", retry_after=minutes * 60)
            for minutes in (1, 3, 5)
        }
    assert "примерно через 1 минуту." in said[1]
    assert "примерно через 3 минуты." in said[3]
    assert "примерно через 5 минут." in said[5]
    with app.test_request_context("/account?lang=en"):
        english = render_template("account/check_inbox.html", retry_after=60)
    assert "in about 1 minute." in english


# --- the brand ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/contribute",
        f"/contribute/thank-you?contribution={CONTRIBUTION}",
        "/account",
        "/account/sign-in/not-a-token",
        "/no-such-page",
    ],
)
def test_every_reader_page_wears_the_newsrooms_brand(api, settings, path):
    r = get(fresh(api), api, path, **HTML)
    name = settings.newsroom_name
    assert f'<span class="site-header__name">{name}</span>' in r.text
    assert re.search(r'<link rel="stylesheet" href="/brand\.css\?v=\w+">', r.text)
    assert re.search(r'<img class="site-header__logo" src="/brand/logo\.svg\?v=\w+"', r.text)
    assert '<link rel="icon" href="/favicon.svg' in r.text
    assert f'href="mailto:{"donations@localhost"}"' in r.text  # MAIL_FROM's address
    assert f"· {name}</title>" in r.text
    assert "Reader-funded journalism" not in r.text


def test_the_brand_reaches_the_admin_header(api, settings):
    r = get(fresh(api), api, "/admin/login")
    header = r.text.split('<header class="admin-header">', 1)[1].split("</header>", 1)[0]
    assert settings.newsroom_name in header and "/brand/logo.svg" in header
    assert "/brand.css" in header


def test_the_brand_stylesheet_favicons_and_logo_are_served_and_cacheable(api):
    browser = fresh(api)
    css = get(browser, api, "/brand.css")
    assert css.headers["Content-Type"].startswith("text/css")
    assert "--accent: #0b4a8b;" in css.text
    assert "max-age" in css.headers["Cache-Control"]
    ico = get(browser, api, "/favicon.ico")
    assert ico.status_code == 200 and ico.headers["Content-Type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"
    for path in ("/favicon.svg", "/brand/logo.svg"):
        svg = get(browser, api, path)
        assert svg.headers["Content-Type"].startswith("image/svg+xml")
        assert svg.text.startswith("<svg") and "<script" not in svg.text


def test_a_configured_brand_shows_on_pages_and_its_logo_host_is_allowed(settings, database):
    branded = dataclasses.replace(
        settings,
        newsroom_name="The Moscow Times",
        newsroom_logo_url="https://static.themoscowtimes.example/logo.svg",
        newsroom_accent_color="#c8102e",
        newsroom_support_email="help@themoscowtimes.example",
        newsroom_url="https://www.themoscowtimes.example/",
    )
    app = create_app(branded, database=database)
    try:
        client = app.test_client()
        page = client.get("/contribute", headers={"Accept-Language": "ru"})
        html = page.get_data(as_text=True)
        assert 'src="https://static.themoscowtimes.example/logo.svg"' in html
        assert 'href="https://www.themoscowtimes.example/"' in html
        assert "mailto:help@themoscowtimes.example" in html
        assert "Поддержите The Moscow Times" in html
        policy = page.headers["Content-Security-Policy"]
        assert "img-src 'self' data: https://static.themoscowtimes.example" in policy
        assert "--accent: #c8102e;" in client.get("/brand.css").get_data(as_text=True)
    finally:
        close_app(app)


# --- where the reader goes back to --------------------------------------------------------------
def test_the_thank_you_page_links_back_to_the_article_the_reader_came_from(api, settings):
    browser = fresh(api)
    article = f"{settings.public_base_url}/demo/article?x=1"
    checkout = get(browser, api, f"/contribute?url={requests.utils.quote(article)}")
    assert json_block(checkout, "checkout-config")["return_url"] == article
    thanks = get(
        browser,
        api,
        f"/contribute/thank-you?contribution={CONTRIBUTION}&url={requests.utils.quote(article)}",
    )
    assert 'id="back-link"' in thanks.text
    assert f'href="{article.replace("&", "&amp;")}"' in thanks.text
    assert "Back to the article" in thanks.text
    assert json_block(thanks, "thank-you-config")["return_url"] == article


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "data:text/html,hi",
        "https://evil.example/phish",
        "//evil.example/x",
        "http://[::1",
    ],
)
def test_a_link_back_elsewhere_is_never_shown_the_newsrooms_home_is(api, settings, url):
    browser = fresh(api)
    checkout = get(browser, api, f"/contribute?url={requests.utils.quote(url)}")
    assert json_block(checkout, "checkout-config")["return_url"] is None
    thanks = get(
        browser,
        api,
        f"/contribute/thank-you?contribution={CONTRIBUTION}&url={requests.utils.quote(url)}",
    )
    home = f"{settings.public_base_url}/demo/article"  # development's newsroom home
    assert f'id="back-link" rel="noopener">← Back to {settings.newsroom_name}' in thanks.text
    assert f'href="{home}" id="back-link"' in thanks.text
    # (the language switcher keeps the query, encoded: no link goes there)
    assert f'href="{url}' not in thanks.text and 'href="javascript:' not in thanks.text
    assert 'href="data:' not in thanks.text and 'href="https://evil' not in thanks.text


# --- error pages ---------------------------------------------------------------------------------
def test_the_404_page_is_laid_out_like_the_others_in_the_readers_language(api):
    browser = fresh(api)
    r = get(browser, api, "/contribute/nowhere", **HTML, **{"Accept-Language": "ru"})
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("text/html")
    assert '<header class="site-header">' in r.text and '<nav class="languages"' in r.text
    assert "<h1>Страница не найдена</h1>" in r.text
    assert "По этому адресу нет страницы." in r.text
    english = get(browser, api, "/contribute/nowhere", **HTML)
    assert "<h1>Not Found</h1>" in english.text and "There is no page at this address." in (
        english.text
    )
    # an API client still gets a problem
    problem = get(browser, api, "/api/v1/nowhere")
    assert problem.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("query", ["name=%00", "name=" + "x" * 10_001])
def test_refused_input_is_a_page_in_the_readers_language(api, query):
    """A control character or an over-long parameter on a page: the reader's 400 page, in
    their words (the field-by-field problem is for API clients)."""
    browser = fresh(api)
    r = get(browser, api, f"/contribute?lang=ru&{query}", **HTML)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("text/html")
    assert "<h1>Неверный запрос</h1>" in r.text
    assert "not allowed" not in r.text and "characters" not in r.text
    english = get(browser, api, f"/contribute?lang=en&{query}", **HTML)
    assert "Something in the address or the form was not right." in english.text


def test_an_unexpected_error_is_a_page_for_a_browser_and_a_problem_for_a_client(settings, database):
    app = create_app(settings, database=database)
    try:

        @app.get("/contribute/boom")
        def boom() -> str:
            raise RuntimeError("a bug")

        client = app.test_client()
        page = client.get("/contribute/boom", headers={**HTML, "Accept-Language": "ru"})
        assert page.status_code == 500
        html = page.get_data(as_text=True)
        assert page.mimetype == "text/html" and '<html lang="ru">' in html
        assert "<h1>Внутренняя ошибка сервера</h1>" in html and "a bug" not in html
        problem = client.get("/contribute/boom", headers={"Accept": "application/json"})
        assert problem.status_code == 500 and problem.mimetype == "application/problem+json"
    finally:
        close_app(app)


def test_the_demo_article_carries_the_brand_and_asks_in_the_chosen_language(api, settings):
    """The demo is one newsroom (the brand's name in its masthead, as on checkout) and
    `?lang=ru` shows what a Russian page's widget gets (unknown languages: English)."""
    page = fresh(api).get(f"{api.base}/demo/article?lang=ru", timeout=10).text
    assert f'class="masthead__name" href="/demo/article">{settings.newsroom_name}</a>' in page
    assert page.count('data-lang="ru"') == 3
    assert (
        fresh(api).get(f"{api.base}/demo/article?lang=xx", timeout=10).text.count('data-lang="en"')
        == 3
    )


def test_the_demo_campaigns_speak_russian_on_a_russian_page(api, database):
    """Every demo variant has a Russian translation: a Russian reader of the demo sees no
    English appeal copy (the demo seeds these campaigns)."""
    from donations.demo import DEMO_CAMPAIGNS

    for doc in json.loads(DEMO_CAMPAIGNS.read_text(encoding="utf-8")):
        for variant in doc["variants"]:
            ru = variant["translations"]["ru"]
            assert {"heading", "body_html", "cta_label"} <= set(ru)
            assert re.search("[а-яА-Я]", ru["heading"] + ru["cta_label"]), variant["id"]
