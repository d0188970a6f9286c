"""Input at the edge: one rule for every text a client sends (donations/edge.py).

Control characters and lone surrogates are refused before anything is stored or sent to
Stripe (PostgreSQL cannot store NUL; no driver can encode a lone surrogate), JSON nests at
most 32 deep, strings are bounded, a body over the limit is a 413 however it is sent, and a
method a route does not have is a 405 with `Allow`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import func, select

from donations.admin.tokens import create_token
from donations.appeals.models import EventCount
from donations.checkout.models import Contribution
from donations.edge import MAX_DEPTH, check_signed_event, loads_bounded
from donations.stripe import StripeGateway
from tests.integration.test_appeal_api import CAMPAIGN

GOOD = {"amount": 2500, "currency": "usd", "frequency": "one_off", "email": "a@example.org"}
EVENT = {
    "type": "impression",
    "impression": "imp_1",
    "campaign": "year-end-2020",
    "variant": "control",
    "placement": "epic",
    "article": "an-article",
}
# Each must be refused in a one-line field: NUL, another C0 control, DEL, a C1 control, a line
# feed, and a lone surrogate (only JSON's \ud800 escape can carry one).
NOT_ONE_LINE = ["a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\nb", "a\ud800b"]


def contributions(database: Any) -> int:
    with database.sessions() as s:
        return s.scalar(select(func.count()).select_from(Contribution)) or 0


def event_counts(app: Any, database: Any) -> int:
    app.extensions["donations"].events.flush_all()
    with database.sessions() as s:
        return s.scalar(select(func.count()).select_from(EventCount)) or 0


def post_json(api: Any, path: str, body: Any, **headers: str) -> Any:
    """json.dumps escapes a lone surrogate as \\ud800: exactly what a client can send."""
    return api.post(
        path, data=json.dumps(body), headers={"Content-Type": "application/json", **headers}
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def stripe_untouched(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[mock.Mock]:
    """The live app's gateway, replaced by one that records every call (asserted unused)."""
    gateway = mock.Mock(spec=StripeGateway)
    monkeypatch.setattr(app.extensions["donations"], "gateway", gateway)
    yield gateway
    assert gateway.method_calls == []


@pytest.fixture
def editor(api: Any, database: Any) -> Any:
    with database.transaction() as s:
        token = create_token(s, "edge", "editor")

    def call(method: str, path: str, body: Any = None) -> Any:
        return api.http.request(
            method,
            api.base + path,
            data=None if body is None else json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=30,
        )

    return call


# --- control characters and lone surrogates -----------------------------------------------------
@pytest.mark.parametrize("text", NOT_ONE_LINE)
@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda t: {"name": t}, ["name"]),
        (lambda t: {"attribution": {"article": t}}, ["attribution", "article"]),
        (lambda t: {"attribution": {"impression": t}}, ["attribution", "impression"]),
        (lambda t: {"attribution": {"campaign": t}}, ["attribution", "campaign"]),
    ],
    ids=["name", "attribution.article", "attribution.impression", "attribution.campaign"],
)
def test_a_contribution_with_control_characters_is_refused_before_stripe_naming_the_field(
    api, database, stripe_untouched, text, change, path
):
    r = post_json(api, "/api/v1/contributions", {**GOOD, **change(text)})
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    errors = r.json()["errors"]
    for part in path:
        errors = errors[part]
    assert errors and isinstance(errors, list)
    assert contributions(database) == 0


@pytest.mark.parametrize("text", NOT_ONE_LINE)
@pytest.mark.parametrize("field", ["article", "impression", "campaign"])
def test_an_event_with_control_characters_is_refused_and_counts_nothing(
    api, app, database, text, field
):
    r = post_json(api, "/api/v1/events", {"events": [EVENT, {**EVENT, field: text}]})
    assert r.status_code == 422, r.text
    assert field in r.json()["errors"]["events"]["1"]
    assert event_counts(app, database) == 0


def test_the_events_sent_as_text_plain_obey_the_same_rule(api, app, database):
    body = json.dumps({"events": [{**EVENT, "article": "poison\x00nul"}]})
    r = api.post("/api/v1/events", data=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 422, r.text
    assert "article" in r.json()["errors"]["events"]["0"]
    assert event_counts(app, database) == 0


def test_every_bad_field_is_named_at_once(api, database, stripe_untouched):
    body = {**GOOD, "name": "x\x00", "attribution": {"article": "y\ud800", "variant": "ok"}}
    r = post_json(api, "/api/v1/contributions", body)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert set(errors) == {"name", "attribution"}
    assert set(errors["attribution"]) == {"article"}


def test_a_bad_field_name_is_refused_at_its_parent(api, database, stripe_untouched):
    r = post_json(api, "/api/v1/contributions", {**GOOD, "attribution": {"art\x00icle": "x"}})
    assert r.status_code == 422
    assert "attribution" in r.json()["errors"]


def test_a_campaign_body_may_span_lines_but_its_name_may_not(editor):
    ok = {
        **CAMPAIGN,
        "variants": [{**CAMPAIGN["variants"][0], "body_html": "<p>a</p>\r\n\t<p>b</p>"}],
    }
    assert editor("POST", "/api/v1/admin/campaigns", ok).status_code == 201
    for bad in ({"name": "Year\nend"}, {"variants": [{**ok["variants"][0], "body_html": "\x00"}]}):
        r = editor("PATCH", f"/api/v1/admin/campaigns/{CAMPAIGN['id']}", bad)
        assert r.status_code == 422, r.text
        assert set(r.json()["errors"]) == set(bad)
    assert (
        editor("GET", f"/api/v1/admin/campaigns/{CAMPAIGN['id']}").json()["name"]
        == (CAMPAIGN["name"])
    )


def test_every_string_is_bounded_even_where_no_schema_looks(api, database, stripe_untouched):
    r = post_json(api, "/api/v1/contributions", {**GOOD, "surprise": "x" * 5_000})
    assert r.status_code == 422
    assert r.json()["errors"]["surprise"] == ["Longer than 4096 characters."]
    r = post_json(api, "/api/v1/contributions", {**GOOD, "name": "x" * 201})
    assert r.status_code == 422 and "name" in r.json()["errors"]
    assert contributions(database) == 0


# --- query strings and forms --------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["%00", "%1B", "%0A", "%7F", "%C2%85"])
def test_a_control_character_in_the_appeal_query_is_422_naming_it(api, raw):
    # The appeal's WSGI fast path skips Flask: such a query must still meet the rule.
    r = api.get(f"/api/v1/appeal?article=a{raw}b&placement=epic")
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert list(r.json()["errors"]) == ["article"]


def test_a_control_character_in_an_api_query_is_422_naming_it(api, editor):
    r = editor("GET", "/api/v1/admin/reports/summary?from=2026-01-01%00&to=2026-01-31")
    assert r.status_code == 422
    assert list(r.json()["errors"]) == ["from"]


def test_a_page_query_or_form_with_control_characters_gets_a_400_page(api):
    html = {"Accept": "text/html"}
    r = api.get("/contribute?currency=usd%00", headers=html)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/html")
    r = api.post("/account/sign-in", data={"email": "a\x00@example.org"}, headers=html)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/html")
    r = api.post("/admin/login", data={"email": "a@example.org", "password": "p\x00"})
    assert r.status_code == 400
    assert list(r.json()["errors"]) == ["password"]


# --- nesting and malformed JSON -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/contributions", "application/json"),
        ("/api/v1/events", "application/json"),
        ("/api/v1/events", "text/plain"),
        ("/api/v1/admin/campaigns", "application/json"),
        ("/api/v1/admin/campaigns/preview", "application/json"),
    ],
)
def test_json_nested_5000_deep_is_a_clean_400(api, app, database, editor, path, content_type):
    body = '{"events": ' + nested(5_000) + "}"
    r = api.post(path, data=body, headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "nested deeper than 32" in r.json()["detail"]
    assert contributions(database) == 0
    assert event_counts(app, database) == 0


def test_nesting_up_to_the_bound_is_judged_by_the_schema(api, database, stripe_untouched):
    inner = json.loads(nested(MAX_DEPTH - 1))
    r = post_json(api, "/api/v1/contributions", {**GOOD, "name": inner})
    assert r.status_code == 422  # the schema's own "Not a valid string."
    assert "name" in r.json()["errors"]


def test_nan_and_infinity_are_not_json(api, database, stripe_untouched):
    body = '{"amount": NaN, "currency": "usd", "frequency": "one_off", "email": "a@example.org"}'
    r = api.post("/api/v1/contributions", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400


# --- every bad field named ----------------------------------------------------------------------
def test_a_422_names_every_bad_field_not_only_the_first(api, database, stripe_untouched):
    r = post_json(api, "/api/v1/contributions", {**GOOD, "amount": -5, "frequency": "weekly"})
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"amount", "frequency"}
    r = post_json(
        api, "/api/v1/contributions", {**GOOD, "amount": 10**9, "email": "nope", "currency": "usd"}
    )
    assert set(r.json()["errors"]) == {"amount", "email"}
    r = post_json(api, "/api/v1/contributions", {**GOOD, "currency": "xyz", "frequency": "x"})
    assert set(r.json()["errors"]) == {"currency", "frequency"}
    assert contributions(database) == 0


def test_patching_a_variant_without_id_names_the_field_and_changes_nothing(editor):
    assert editor("POST", "/api/v1/admin/campaigns", CAMPAIGN).status_code == 201
    url = f"/api/v1/admin/campaigns/{CAMPAIGN['id']}"
    before = editor("GET", url).json()
    r = editor("PATCH", url, {"variants": [{"heading": "No id", "body_html": "<p>x</p>"}]})
    assert r.status_code == 422, r.text
    assert "id" in r.json()["errors"]["variants"]["0"]
    r = editor("PATCH", url, {"variants": [{"id": "control"}]})
    assert r.status_code == 422
    assert "heading" in r.json()["errors"]["variants"]["0"]
    assert editor("GET", url).json() == before


def test_patching_a_variant_without_body_html_gives_it_an_empty_body_as_post_does(editor):
    assert editor("POST", "/api/v1/admin/campaigns", CAMPAIGN).status_code == 201
    r = editor(
        "PATCH",
        f"/api/v1/admin/campaigns/{CAMPAIGN['id']}",
        {"variants": [{"id": "control", "heading": "Only a heading"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["variants"][0]["body_html"] == ""


# --- 413 and 405 --------------------------------------------------------------------------------
def chunks(body: bytes, size: int = 8_192) -> Iterator[bytes]:
    """A generator body: requests sends it chunked, without Content-Length."""
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_a_chunked_body_over_the_limit_is_413_and_changes_nothing(
    api, database, settings, stripe_untouched
):
    body = json.dumps({**GOOD, "name": "x" * settings.max_content_length}).encode()
    r = api.post(
        "/api/v1/contributions", data=chunks(body), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert contributions(database) == 0


def test_a_chunked_body_within_the_limit_is_read_whole(api, database, settings, stripe_untouched):
    # Padded to just under the limit: werkzeug alone cut chunked bodies at the limit.
    body = json.dumps({**GOOD, "frequency": "weekly"}).encode()
    body += b" " * (settings.max_content_length - len(body))
    r = api.post(
        "/api/v1/contributions", data=chunks(body), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert set(r.json()["errors"]) == {"frequency"}


def _url(rule: Any) -> str:
    return re.sub(
        r"<(?:[^:>]+:)?([^>]+)>", lambda m: "1" if "int" in m.group(0) else "x", rule.rule
    )


def test_every_route_answers_a_method_it_lacks_with_405_and_allow(app):
    client = app.test_client()
    seen = 0
    for rule in app.url_map.iter_rules():
        url = _url(rule)
        allowed = {
            m for rule2 in app.url_map.iter_rules() if _url(rule2) == url for m in rule2.methods
        }
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            if method in allowed:
                continue
            # Bodies that other checks would refuse first (415, 422) if they ran before routing.
            for body, content_type in (
                ("x", "text/plain"),
                ('{"x": "\\u0000"}', "application/json"),
            ):
                r = client.open(url, method=method, data=body, content_type=content_type)
                assert r.status_code == 405, (method, url, r.status_code, r.get_data(as_text=True))
                assert set(r.headers["Allow"].split(", ")) >= rule.methods, (method, url)
            seen += 1
            break
    assert seen > 30


def test_put_on_the_contribution_api_is_405_not_415(api):
    r = api.http.put(f"{api.base}/api/v1/contributions", data="x", timeout=30)
    assert r.status_code == 405
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "POST" in r.headers["Allow"]


# --- what the webhook endpoint calls ------------------------------------------------------------
def stripe_event(**changes: Any) -> dict[str, Any]:
    return {
        "id": "evt_1PxYz2Ab",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1PxYz2Ab", "object": "payment_intent"}},
        **changes,
    }


def test_an_ordinary_stripe_event_passes():
    check_signed_event(stripe_event())
    check_signed_event(stripe_event(type="balance.available", data={"object": {"object": "b"}}))
    check_signed_event(loads_bounded(json.dumps(stripe_event()).encode()))
    # Customers' own text is Stripe's to allow: a control character there is not judged.
    check_signed_event(stripe_event(data={"object": {"id": "pi_1", "description": "a\x00\x85"}}))


@pytest.mark.parametrize(
    "event",
    [
        stripe_event(id="evt_" + "x" * 10_000),
        stripe_event(id="evt_a\x00b"),
        stripe_event(id="pi_notanevent"),
        stripe_event(id=7),
        stripe_event(type="t" * 10_000),
        stripe_event(type="payment_intent.succeeded\x00"),
        stripe_event(data={"object": {"id": "pi_" + "x" * 300}}),
        stripe_event(data={"object": {"id": "pi_a\nb"}}),
        stripe_event(data={"object": {"id": "pi_a\ud800"}}),
        stripe_event(data={"object": {"metadata": json.loads(nested(40))}}),
        stripe_event(data={"object": {"id": "pi_1", "metadata": {"note": "a\udc00"}}}),
        ["not", "an", "object"],
    ],
    ids=[
        "10 KB id",
        "NUL in id",
        "not evt_",
        "number id",
        "10 KB type",
        "NUL in type",
        "long object id",
        "LF in object id",
        "lone surrogate in object id",
        "40 deep",
        "lone surrogate in metadata",
        "a list",
    ],
)
def test_a_stripe_event_that_is_not_stripe_shaped_is_refused(event):
    with pytest.raises(ValueError):
        check_signed_event(event)


@pytest.mark.parametrize(
    "raw",
    [
        nested(1_000).encode(),
        nested(5_000),
        b'{"id": "\xff"}',
        "NaN",
        '{"a": Infinity}',
        "{",
        '"\\' * 30_000,  # once quadratic in the depth scan: seconds, not milliseconds
    ],
    ids=["1000 deep", "5000 deep", "not UTF-8", "NaN", "Infinity", "cut", "unterminated"],
)
def test_loads_bounded_refuses_with_value_error(raw):
    with pytest.raises(ValueError):
        loads_bounded(raw)


def test_loads_bounded_counts_brackets_inside_strings_as_text():
    assert loads_bounded('{"a": "' + "[" * 100 + '"}') == {"a": "[" * 100}
    assert loads_bounded(nested(MAX_DEPTH)) is not None
    with pytest.raises(ValueError):
        loads_bounded(nested(MAX_DEPTH + 1))
