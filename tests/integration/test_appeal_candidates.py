"""GET /api/v1/appeals: one answer for every reader of an article, with headers a CDN can
trust (docs/appeals-in-the-browser.md)."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from donations.app import create_app
from donations.appeals.candidates import CANDIDATES_CACHE_CONTROL
from donations.appeals.impressions import TOKEN
from tests.integration.test_appeal_api import CAMPAIGN

ARTICLE = "putin-congratulates-biden"


@pytest.fixture
def live(admin):
    r = admin("POST", "/api/v1/admin/campaigns", json=CAMPAIGN)
    assert r.status_code == 201, r.text


@pytest.fixture
def admin(api, database):
    from donations.admin.tokens import create_token

    with database.transaction() as s:
        token = create_token(s, "candidates")

    def call(method, path, **kw):
        return api.http.request(
            method, api.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
        )

    return call


def version(api) -> str:
    return str(api.get("/api/v1/appeals/version").json()["version"])


def candidates(api, **params):
    query = {"article": ARTICLE, "placement": "epic", "section": "news", **params}
    return api.get("/api/v1/appeals", params=query)


def test_the_answer_names_no_reader_and_carries_what_a_browser_decides_with(api, live):
    v = version(api)
    r = candidates(api, v=v)
    assert r.status_code == 200
    body = r.json()
    assert (body["article"], body["placement"], body["version"]) == (ARTICLE, "epic", v)
    assert body["rules"] == {"gate_after_articles": 5, "one_off_supporter_days": 90}
    (c,) = body["candidates"]
    assert c["campaign"] == CAMPAIGN["id"]
    for field in ("articles_read", "frequency", "holdback", "dismissible", "ticker", "starts_at"):
        assert field in c
    for variant in c["variants"]:
        assert TOKEN.fullmatch(variant["impression"])
        assert {"id", "weight", "heading", "body_html", "cta", "amounts"} <= set(variant)
        assert variant["impression"] in variant["cta"]["url"]
    assert r.headers["Cache-Control"] == CANDIDATES_CACHE_CONTROL
    assert "Set-Cookie" not in r.headers and "Vary" not in r.headers


def test_any_reader_state_in_the_query_is_refused_so_the_url_stays_shared(api, live):
    for name, value in (("rid", "abc"), ("views", "3"), ("supporter", "x"), ("seen", "a:1")):
        r = candidates(api, **{name: value})
        assert r.status_code == 422
        assert name in r.json()["errors"]


def test_an_etag_turns_a_repeat_into_a_304_and_a_change_into_a_new_one(api, admin, live):
    first = candidates(api, v=version(api))
    etag = first.headers["ETag"]
    assert candidates(api, v="1", **{}).headers["ETag"] == etag  # v only shapes the URL
    again = api.get(
        "/api/v1/appeals",
        params={"article": ARTICLE, "placement": "epic", "section": "news"},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"]
    changed = {**CAMPAIGN["variants"][0], "heading": "Another heading"}
    r = admin("PATCH", f"/api/v1/admin/campaigns/{CAMPAIGN['id']}", json={"variants": [changed]})
    assert r.status_code == 200, r.text
    app_store = api  # the snapshot is rebuilt within seconds
    from tests.conftest import wait_for

    wait_for(lambda: candidates(app_store).headers["ETag"] != etag, timeout=10)


@pytest.mark.parametrize(
    ("origins", "header", "vary", "allow"),
    [
        ((), None, None, None),
        (("https://news.example",), None, None, "https://news.example"),
        (("https://a.example", "https://b.example"), None, "Origin", "https://a.example"),
        ((), "CF-IPCountry", "CF-IPCountry", None),
    ],
)
def test_vary_names_only_what_changes_the_answer(
    settings, database, live, origins, header, vary, allow
):
    app = create_app(
        settings.with_overrides(allowed_origins=origins, country_header=header),
        database=database,
    )
    client = app.test_client()
    r = client.get(
        f"/api/v1/appeals?article={ARTICLE}&placement=epic&section=news",
        headers={"Origin": "https://a.example", **({header: "GB"} if header else {})},
    )
    assert r.status_code == 200
    assert r.headers.get("Vary") == vary
    assert r.headers.get("Access-Control-Allow-Origin") == allow
    if header:
        assert r.json["country"] == "GB"
        assert r.json["candidates"][0]["variants"][0]["amounts"]["currency"] == "gbp"


def test_the_version_moves_when_an_editor_changes_a_campaign(api, admin, live):
    from tests.conftest import wait_for

    before = version(api)
    r = admin("PATCH", f"/api/v1/admin/campaigns/{CAMPAIGN['id']}", json={"priority": 77})
    assert r.status_code == 200
    wait_for(lambda: version(api) != before, timeout=10)
    head = api.get("/api/v1/appeals/version")
    assert "s-maxage=10" in head.headers["Cache-Control"] and head.headers["ETag"]


def test_the_answers_carry_the_widgets_words_in_the_pages_language_and_the_brand(api, live):
    """Additive to API.md: `ui` (the widget's own words, from the catalogs) and `brand`."""
    for lang, close, secure in (
        ("en", "Close", "Secure payment by card."),
        ("ru", "Закрыть", "Безопасная оплата картой."),
        ("ru-RU", "Закрыть", "Безопасная оплата картой."),
        ("de", "Close", "Secure payment by card."),  # no German catalog: English
    ):
        body = candidates(api, lang=lang).json()
        assert (body["ui"]["close"], body["ui"]["secure"]) == (close, secure), lang
        assert body["brand"] == {
            "name": "Independent Newsroom",
            "accent": "#0b4a8b",
            "on_accent": "#ffffff",
        }
        appeal = api.get(
            "/api/v1/appeal", params={"article": ARTICLE, "section": "news", "lang": lang}
        ).json()["appeal"]
        assert appeal["ui"]["close"] == close and appeal["brand"] == body["brand"]
    # Russian has the three plural forms of "You've read N articles".
    ui = candidates(api, lang="ru").json()["ui"]
    assert {"read.one", "read.few", "read.many"} <= set(ui)


def test_the_cta_of_a_reader_query_carries_the_articles_address_for_the_way_back(api, live):
    url = "https://news.example/2026/story"
    appeal = api.get(
        "/api/v1/appeal", params={"article": ARTICLE, "section": "news", "url": url}
    ).json()["appeal"]
    assert f"url={quote_plus(url)}" in appeal["cta"]["url"]


def test_the_embed_page_speaks_the_appeals_language(api, live):
    en = api.get("/embed/appeal", params={"article": ARTICLE, "section": "news", "views": "5"})
    ru = api.get(
        "/embed/appeal", params={"article": ARTICLE, "section": "news", "views": "5", "lang": "ru"}
    )
    assert en.status_code == ru.status_code == 200
    assert "Secure payment by card." in en.text and "5 articles in the last 30 days" in en.text
    assert "Безопасная оплата картой." in ru.text and "Secure payment" not in ru.text
    assert "Вы прочитали 5 статей за последние 30 дней" in ru.text
    assert 'href="/brand.css"' in ru.text
