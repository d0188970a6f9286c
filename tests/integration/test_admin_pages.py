"""The admin campaign pages, the editor's preview endpoint, the dashboard page and the money
filter, through Flask's test client with a signed-in browser session (cookie + CSRF token)."""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from donations.admin.auth import create_user
from donations.admin.campaign_errors import EDITOR_WORDS
from donations.admin.formatting import money
from donations.appeals.models import Campaign, EventCount
from donations.cli import cli
from tests.conftest import wait_for

PASSWORD = "correct horse battery staple"
CAMPAIGN: dict[str, Any] = {
    "id": "spring-drive",
    "name": "Spring drive",
    "status": "live",
    "placements": ["epic", "banner"],
    "priority": 5,
    "starts_at": "2020-03-01T00:00:00Z",
    "ends_at": None,
    "targeting": {"sections": {"include": ["news"], "exclude": []}},
    "goal": {"amount": 1_000_000, "currency": "usd"},
    "variants": [
        {
            "id": "control",
            "weight": 1,
            "heading": "Keep our reporting free",
            "body_html": "<p>Readers like you <strong>fund</strong> us.</p>",
            "cta_label": "Give now",
            "default_frequency": "monthly",
            "amounts": {
                "usd": {"one_off": [1000, 2500], "monthly": [500, 1000], "annual": [5000]},
                "jpy": {"one_off": [1000, 3000], "monthly": [500], "annual": [10000]},
            },
        },
        {"id": "urgent", "weight": 1, "heading": "We need you today"},
    ],
}
APPEAL = "/api/v1/appeal?article=a1&section=news&placement=epic&rid=reader1"


class Browser:
    """A signed-in browser: the session cookie, and the CSRF token its pages carry."""

    def __init__(self, client: FlaskClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def form(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> Any:
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.csrf
        return self.client.post(path, data=body)

    def api(self, method: str, path: str, body: Any = None, *, csrf: bool = True) -> Any:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return self.client.open(path, method=method, json=body, headers=headers)


def sign_in(app: Flask, database: Any, email: str, role: str) -> Browser:
    with database.transaction() as session:
        create_user(session, email, PASSWORD, role)
    client = app.test_client()
    page = client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "the login form carries its CSRF token"
    answer = client.post(
        "/admin/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert answer.status_code == 303, answer.text
    home = client.get("/admin/")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', home.text)
    assert csrf, "signed-in pages carry the session's CSRF token"
    return Browser(client, csrf.group(1))


@pytest.fixture
def editor(app: Flask, database: Any) -> Browser:
    return sign_in(app, database, "editor@newsroom.example", "editor")


@pytest.fixture
def viewer(app: Flask, database: Any) -> Browser:
    return sign_in(app, database, "viewer@newsroom.example", "viewer")


@pytest.fixture
def campaign(editor: Browser, app: Flask) -> Iterator[dict[str, Any]]:
    created = editor.api("POST", "/api/v1/admin/campaigns", CAMPAIGN)
    assert created.status_code == 201, created.text
    yield created.json


def stored(database: Any, campaign_id: str) -> dict[str, Any] | None:
    with database.sessions() as session:
        row = session.get(Campaign, campaign_id)
        return dict(row.document) if row is not None else None


def shown_campaign(app: Flask) -> str | None:
    answer = app.test_client().get(APPEAL)
    return answer.json["appeal"]["campaign"] if answer.status_code == 200 else None


# --- pages ---------------------------------------------------------------------------------------
def test_signed_out_visitors_are_sent_to_the_login_page(app: Flask) -> None:
    for path in ("/admin/", "/admin/campaigns", "/admin/campaigns/new", "/admin/campaigns/x"):
        answer = app.test_client().get(path)
        assert answer.status_code == 302
        assert "/admin/login" in answer.headers["Location"]


def test_the_campaign_list_says_so_when_there_are_none(editor: Browser) -> None:
    page = editor.get("/admin/campaigns")
    assert page.status_code == 200
    assert "No campaigns yet" in page.text
    assert 'href="/admin/campaigns/new"' in page.text


def test_the_list_shows_status_placements_priority_schedule_variants_goal_and_actions(
    editor: Browser, campaign: dict[str, Any]
) -> None:
    page = editor.get("/admin/campaigns").text
    assert "Spring drive" in page and "spring-drive" in page
    assert 'class="status status--live"' in page
    assert "epic, banner" in page
    assert "2020-03-01 00:00 UTC → open-ended" in page
    assert "control" in page and "urgent" in page
    assert "$10,000.00" in page  # the goal, through the money filter
    assert 'value="paused"' in page and 'value="ended"' in page  # quick actions
    assert "/admin/campaigns/spring-drive/delete" in page
    assert 'href="/admin/campaigns"' in page  # in the navigation


def test_the_editor_page_carries_the_document_the_fields_and_the_preview(
    editor: Browser, campaign: dict[str, Any]
) -> None:
    page = editor.get("/admin/campaigns/spring-drive").text
    assert 'id="campaign-document"' in page and '"spring-drive"' in page
    assert 'value="Keep our reporting free"' in page
    assert 'value="10, 25"' in page  # usd one-off presets, in dollars
    assert 'value="1000, 3000"' in page  # jpy has no minor unit
    assert 'value="10000"' in page  # the goal in dollars
    assert 'data-preview="gate"' in page
    assert "/widget.js" in page and "admin/campaign-editor.js" in page
    for field in ("f-name", "f-status", "f-starts", "f-ends", "f-max-imp", "f-holdback"):
        assert f'<label for="{field}">' in page
    assert " on" + "click=" not in page and "onfocus=" not in page  # no inline handlers
    assert editor.get("/admin/campaigns/nothing-here").status_code == 404


def test_an_editor_creates_edits_pauses_resumes_ends_and_deletes_a_campaign(
    app: Flask, editor: Browser, database: Any
) -> None:
    assert editor.get("/admin/campaigns/new").status_code == 200
    # The editor page sends the form's document to the admin API with the CSRF header.
    created = editor.api("POST", "/api/v1/admin/campaigns", CAMPAIGN)
    assert created.status_code == 201
    assert "spring-drive" in editor.get("/admin/campaigns").text

    edited = copy.deepcopy(created.json)
    edited["name"] = "Spring drive, week two"
    edited["variants"][1]["heading"] = "Only a few days left"
    changed = editor.api("PATCH", "/api/v1/admin/campaigns/spring-drive", edited)
    assert changed.status_code == 200
    assert stored(database, "spring-drive")["variants"][1]["heading"] == "Only a few days left"

    for status, said in (("paused", "is paused"), ("live", "is live"), ("ended", "has ended")):
        answer = editor.form("/admin/campaigns/spring-drive/status", {"status": status})
        assert answer.status_code == 303
        assert stored(database, "spring-drive")["status"] == status
        assert f"spring-drive {said}." in editor.get("/admin/campaigns").text
    assert editor.form("/admin/campaigns/spring-drive/status", {"status": "x"}).status_code == 400

    confirm = editor.get("/admin/campaigns/spring-drive/delete")
    assert confirm.status_code == 200 and "Delete “Spring drive, week two”?" in confirm.text
    assert editor.form("/admin/campaigns/spring-drive/delete").status_code == 303
    assert stored(database, "spring-drive") is None
    assert "spring-drive was deleted." in editor.get("/admin/campaigns").text
    assert editor.form("/admin/campaigns/spring-drive/delete").status_code == 404


def test_an_invalid_edit_is_refused_with_errors_naming_each_field(
    editor: Browser, campaign: dict[str, Any], database: Any
) -> None:
    bad = copy.deepcopy(campaign)
    bad["variants"][0]["amounts"]["usd"]["monthly"] = ["five"]
    bad["name"] = ""
    answer = editor.api("PATCH", "/api/v1/admin/campaigns/spring-drive", bad)
    assert answer.status_code == 422
    errors = answer.json["errors"]
    assert "name" in errors
    assert "monthly" in errors["variants"]["0"]["amounts"]["usd"]["value"]
    backwards = {**campaign, "ends_at": "2020-01-01T00:00:00Z"}
    answer = editor.api("PATCH", "/api/v1/admin/campaigns/spring-drive", backwards)
    assert answer.status_code == 422 and "ends_at" in answer.json["errors"]
    assert stored(database, "spring-drive") == campaign


def test_a_change_reaches_the_appeal_endpoint_within_seconds(
    app: Flask, editor: Browser, campaign: dict[str, Any]
) -> None:
    assert wait_for(lambda: shown_campaign(app) == "spring-drive", timeout=5)
    editor.form("/admin/campaigns/spring-drive/status", {"status": "paused"})
    wait_for(lambda: shown_campaign(app) is None, timeout=5)
    editor.form("/admin/campaigns/spring-drive/status", {"status": "live"})
    wait_for(lambda: shown_campaign(app) == "spring-drive", timeout=5)
    editor.form("/admin/campaigns/spring-drive/delete")
    wait_for(lambda: shown_campaign(app) is None, timeout=5)


def test_a_viewer_sees_the_pages_but_every_write_is_forbidden(
    viewer: Browser, campaign: dict[str, Any], database: Any
) -> None:
    assert viewer.get("/admin/").status_code == 200
    listing = viewer.get("/admin/campaigns")
    assert listing.status_code == 200 and "Spring drive" in listing.text
    assert 'value="paused"' not in listing.text  # no quick actions offered
    page = viewer.get("/admin/campaigns/spring-drive")
    assert page.status_code == 200 and "needs the editor role" in page.text
    assert viewer.get("/admin/campaigns/spring-drive/delete").status_code == 200
    assert viewer.get("/admin/campaigns/new").status_code == 403

    writes = [
        viewer.form("/admin/campaigns/spring-drive/status", {"status": "paused"}),
        viewer.form("/admin/campaigns/spring-drive/delete"),
        viewer.api("POST", "/api/v1/admin/campaigns", {**CAMPAIGN, "id": "other"}),
        viewer.api("PATCH", "/api/v1/admin/campaigns/spring-drive", {"name": "x"}),
        viewer.api("DELETE", "/api/v1/admin/campaigns/spring-drive"),
        viewer.api("POST", "/api/v1/admin/campaigns/preview", {"document": CAMPAIGN}),
    ]
    assert [w.status_code for w in writes] == [403] * len(writes)
    assert stored(database, "spring-drive") == campaign


def test_writes_without_the_csrf_token_are_forbidden(
    editor: Browser, campaign: dict[str, Any], database: Any
) -> None:
    writes = [
        editor.form("/admin/campaigns/spring-drive/status", {"status": "paused"}, csrf=False),
        editor.form("/admin/campaigns/spring-drive/delete", csrf=False),
        editor.api("POST", "/api/v1/admin/campaigns", {**CAMPAIGN, "id": "other"}, csrf=False),
        editor.api("PATCH", "/api/v1/admin/campaigns/spring-drive", {"name": "x"}, csrf=False),
        editor.api("DELETE", "/api/v1/admin/campaigns/spring-drive", csrf=False),
        editor.api("POST", "/api/v1/admin/campaigns/preview", {"document": CAMPAIGN}, csrf=False),
    ]
    assert [w.status_code for w in writes] == [403] * len(writes)
    wrong = editor.client.post(
        "/admin/campaigns/spring-drive/status", data={"status": "paused", "csrf_token": "nope"}
    )
    assert wrong.status_code == 403
    assert stored(database, "spring-drive") == campaign


# --- the preview endpoint ------------------------------------------------------------------------
def _shape(value: Any) -> Any:
    """The keys of nested objects (and types of leaves): what "the same shape" means."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__ if value is not None else None


def test_the_preview_answers_the_appeal_shape_of_get_appeal_and_counts_nothing(
    app: Flask, editor: Browser, campaign: dict[str, Any], database: Any
) -> None:
    live = wait_for(lambda: app.test_client().get(APPEAL).json, timeout=5)["appeal"]
    answer = editor.api(
        "POST",
        "/api/v1/admin/campaigns/preview",
        {"document": campaign, "variant": live["variant"], "placement": "epic"},
    )
    assert answer.status_code == 200
    preview = answer.json["appeal"]
    assert _shape(preview) == _shape(live)
    for key in ("campaign", "variant", "heading", "body_html", "amounts", "ticker"):
        assert preview[key] == live[key]
    assert answer.headers["Cache-Control"] == "no-store"
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EventCount)) == 0


def test_the_preview_shows_any_variant_placement_and_currency_of_an_unsaved_draft(
    editor: Browser,
) -> None:
    draft = {**CAMPAIGN, "id": "not-saved-yet", "status": "draft", "ends_at": None}
    answer = editor.api(
        "POST",
        "/api/v1/admin/campaigns/preview",
        {
            "document": draft,
            "variant": "urgent",
            "placement": "gate",
            "currency": "jpy",
            "articles_read": 7,
        },
    )
    assert answer.status_code == 200, answer.text
    appeal = answer.json["appeal"]
    assert (appeal["campaign"], appeal["variant"], appeal["placement"]) == (
        "not-saved-yet",
        "urgent",
        "gate",
    )
    assert appeal["heading"] == "We need you today"
    assert appeal["articles_read"] == 7
    # "urgent" has no presets at all: as for readers, it falls back to usd.
    assert appeal["amounts"]["currency"] == "usd"
    control = editor.api(
        "POST",
        "/api/v1/admin/campaigns/preview",
        {"document": draft, "variant": "control", "currency": "jpy"},
    ).json["appeal"]
    assert control["amounts"]["currency"] == "jpy"
    assert control["amounts"]["presets"]["one_off"] == [1000, 3000]


def test_the_preview_rejects_an_invalid_document_with_422_naming_the_field(
    editor: Browser,
) -> None:
    bad = copy.deepcopy(CAMPAIGN)
    bad["variants"][0]["heading"] = ""
    bad["placements"] = ["sidebar"]
    answer = editor.api("POST", "/api/v1/admin/campaigns/preview", {"document": bad})
    assert answer.status_code == 422
    errors = answer.json["errors"]["document"]
    assert "heading" in errors["variants"]["0"]
    assert "placements" in errors
    unknown = editor.api(
        "POST", "/api/v1/admin/campaigns/preview", {"document": CAMPAIGN, "variant": "nope"}
    )
    assert unknown.status_code == 422 and "variant" in unknown.json["errors"]
    assert editor.api("POST", "/api/v1/admin/campaigns/preview", {}).status_code == 422


# --- the dashboard -------------------------------------------------------------------------------
def test_the_dashboard_offers_a_range_presets_currencies_and_the_csv_export(
    editor: Browser,
) -> None:
    page = editor.get("/admin/?from=2026-01-01&to=2026-01-31&currency=usd")
    assert page.status_code == 200
    text = page.text
    assert 'name="from" type="date" value="2026-01-01"' in text
    assert 'name="to" type="date" value="2026-01-31"' in text
    assert "Last 7 days" in text and "Last 90 days" in text
    assert "/api/v1/admin/contributions?format=csv&amp;from=2026-01-01&amp;to=2026-01-31" in text
    assert "vendor/chartjs/chart.umd.min.js" in text and "cdn" not in text.lower()
    assert '<canvas id="daily-chart"' in text
    assert '"exponents"' in text


def test_a_bad_range_on_the_dashboard_is_explained_not_a_crash(editor: Browser) -> None:
    page = editor.get("/admin/?from=2026-02-01&to=2026-01-01")
    assert page.status_code == 200
    assert "The start date must not be after the end date." in page.text


def test_the_vendored_chart_library_is_served_with_its_licence(app: Flask) -> None:
    client = app.test_client()
    with client.get("/static/vendor/chartjs/chart.umd.min.js") as script:
        assert script.status_code == 200 and b"Chart.js v4" in script.data[:200]
    with client.get("/static/vendor/chartjs/LICENSE.md") as licence:
        assert b"MIT" in licence.data


# --- money ---------------------------------------------------------------------------------------
def test_money_is_shown_in_each_currencys_own_format() -> None:
    assert money(123456, "usd", "en_US") == "$1,234.56"
    assert money(5000, "jpy", "en_US") == "¥5,000"
    assert money(123456, "eur", "en_US") == "€1,234.56"
    assert money(123456, "eur", "de_DE") == "1.234,56\xa0€"
    assert money(123456, "eur", "fr_FR") == "1\u202f234,56\xa0€"
    assert money(-250, "gbp", "en_GB") == "-£2.50"
    assert money(None, "usd") == "—"


def test_the_money_filter_follows_the_admins_language(app: Flask) -> None:
    money_filter = app.jinja_env.filters["money"]
    with app.test_request_context("/admin/", headers={"Accept-Language": "de-DE,de;q=0.9"}):
        assert money_filter(123456, "eur") == "1.234,56\xa0€"
    with app.test_request_context("/admin/"):
        assert money_filter(123456, "usd") == "$1,234.56"
    # A reader's page writes money in the page's language (one of ours), not the browser's.
    with app.test_request_context("/contribute", headers={"Accept-Language": "de-DE,de;q=0.9"}):
        assert money_filter(123456, "eur") == "€1,234.56"
    with app.test_request_context("/contribute?lang=ru"):
        assert money_filter(123456, "eur") == "1\xa0234,56\xa0€"


# --- campaign errors in plain words, and the example file ----------------------------------------
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "campaign.json"


def load_campaigns(database_url: str, path: Path) -> Any:
    return CliRunner().invoke(
        cli, ["campaigns", "load", str(path)], env={"DATABASE_URL": database_url}
    )


def test_the_example_campaign_file_loads_as_api_md_describes_it(
    settings: Any, database: Any
) -> None:
    document = json.loads(EXAMPLE.read_text())
    assert set(document) == {
        "id", "name", "status", "placements", "priority", "starts_at", "ends_at",
        "targeting", "frequency", "goal", "holdback", "variants",
    }  # fmt: skip
    for _ in range(2):  # an idempotent upsert
        result = load_campaigns(settings.database_url, EXAMPLE)
        assert result.exit_code == 0, result.output
        assert f"loaded {document['id']} (draft)" in result.output
    saved = stored(database, document["id"])
    # `translations` (an addition to API.md): the example shows a Russian one per variant.
    assert all(set(v["translations"]) == {"ru"} for v in saved["variants"])
    assert saved == document


def test_campaigns_load_names_every_mistake_in_plain_words_and_loads_nothing(
    settings: Any, database: Any, tmp_path: Path
) -> None:
    good = json.loads(EXAMPLE.read_text())
    bad = copy.deepcopy(good)
    bad["id"] = "Year End"
    bad["variants"][0]["amounts"]["usd"]["one_off"] = [1000, "25.00"]
    bad["variants"][0]["amounts"]["USD"] = {"monthly": [500]}
    bad["variants"][1]["weight"] = -1
    bad["targeting"]["articles_read"] = {"min": 5, "max": 2}
    path = tmp_path / "campaigns.json"
    undated = {**good, "id": "undated", "starts_at": "2026-12-01"}
    documents = [{**good, "id": "fine"}, bad, {**good, "id": "x", "variants": []}, undated, "oops"]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(documents).encode())  # a byte-order mark too
    result = load_campaigns(settings.database_url, path)
    assert result.exit_code == 1
    out = result.output
    for said in (
        "campaign “Year End” in ",
        "  - Campaign id: Use 1–100 lowercase letters, digits and dashes.",
        "  - Variant 1, amounts in USD, one-off, amount 2: Not a valid integer.",
        "  - Variant 1, amounts, currency “USD”: Use a currency's three-letter code in lower "
        "case, such as usd.",
        "  - Variant 2, weight: Must be greater than or equal to 0",
        "  - Targeting, articles read, at most: Must not be below “at least”.",
        "campaign “x” in ",
        "  - Variants: Give 1 to 20 variants.",
        "campaign “undated” in ",
        "  - Starts at: Use a date and time with its time zone, such as 2026-12-01T00:00:00Z.",
        "campaign 5 in ",
        "  - A campaign is a JSON object, with an id, a name, variants and the rest.",
        "Nothing was loaded.",
    ):
        assert said in out, (said, out)
    assert "\\u" not in out and "variants.0" not in out and '{"' not in out
    assert stored(database, "fine") is None  # all or none


def test_the_campaign_editor_gets_the_words_its_errors_are_written_in(
    editor: Browser, campaign: dict[str, Any]
) -> None:
    page = editor.get("/admin/campaigns/spring-drive").text
    config = json.loads(
        html.unescape(re.search(r'id="campaign-config">(.*?)</script>', page, re.S).group(1))
    )
    assert config["error_words"] == json.loads(json.dumps(EDITOR_WORDS))
    assert config["error_words"]["top"]["ends_at"] == "Ends at"
