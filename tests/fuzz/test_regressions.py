"""What the fuzzers found, pinned as plain examples (each was a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from donations.admin.tokens import create_token
from tests.conftest import make_event, post_event, sign

pytestmark = pytest.mark.fuzz


@pytest.fixture
def editor(database: Any) -> dict[str, str]:
    with database.transaction() as s:
        return {"Authorization": f"Bearer {create_token(s, 'regressions', 'editor')}"}


def test_huge_token_id_is_not_found(api: Any, editor: dict[str, str]) -> None:
    response = api.http.delete(f"{api.base}/api/v1/admin/tokens/43387454985", headers=editor)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_huge_audit_cursor_is_invalid(api: Any, editor: dict[str, str]) -> None:
    response = api.get("/api/v1/admin/audit?before=43387454985", headers=editor)
    assert response.status_code == 422


def test_patch_with_partial_include_exclude(api: Any, editor: dict[str, str]) -> None:
    response = api.http.patch(
        f"{api.base}/api/v1/admin/campaigns/nothing-here",
        data=json.dumps({"targeting": {"countries": {}}}),
        headers={**editor, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 404


def test_signed_event_with_far_future_created(api: Any) -> None:
    event = make_event("payment_intent.canceled", {"id": "pi_nothing"})
    event["created"] = 2**40
    assert post_event(api, event).status_code == 200


def test_signed_event_without_object_id(api: Any) -> None:
    response = post_event(api, make_event("charge.succeeded", {}))
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"


# --- issue 10: text anyone can send (each answered 500 on PostgreSQL) ---------------------------
GIFT = {"amount": 2500, "currency": "usd", "frequency": "one_off", "email": "a@example.org"}
EVENT = {
    "type": "impression",
    "impression": "imp_1",
    "campaign": "year-end-2020",
    "variant": "control",
    "placement": "epic",
    "article": "an-article",
}


def post_json(api: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return api.post(
        path,
        data=json.dumps(body),  # a lone surrogate goes out as the escape \ud800
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("text", ["poison\x00nul", "lone\ud800surrogate"])
@pytest.mark.parametrize(
    "change",
    [
        {"name": "TEXT"},
        {"attribution": {"article": "TEXT"}},
        {"attribution": {"impression": "TEXT"}},
        {"attribution": {"campaign": "TEXT"}},
    ],
)
def test_nul_or_lone_surrogate_in_a_contribution_is_422(api: Any, text: str, change: Any) -> None:
    body = json.loads(json.dumps({**GIFT, **change}).replace("TEXT", json.dumps(text)[1:-1]))
    response = post_json(api, "/api/v1/contributions", body)
    assert response.status_code == 422, response.text
    assert set(response.json()["errors"]) == set(change)


@pytest.mark.parametrize("text", ["poison\x00nul", "lone\ud800surrogate"])
@pytest.mark.parametrize("field", ["article", "impression", "campaign"])
def test_nul_or_lone_surrogate_in_an_event_is_422(api: Any, text: str, field: str) -> None:
    response = post_json(api, "/api/v1/events", {"events": [{**EVENT, field: text}]})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("path", ["/api/v1/contributions", "/api/v1/events"])
def test_json_nested_5000_deep_is_400(api: Any, path: str) -> None:
    response = api.post(
        path, data="[" * 5_000 + "]" * 5_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"


def test_patch_with_a_variant_lacking_its_id_is_422(api: Any, editor: dict[str, str]) -> None:
    campaign = {
        "id": "regress",
        "name": "Regress",
        "placements": ["epic"],
        "variants": [{"id": "control", "heading": "Hi", "body_html": "<p>x</p>"}],
    }
    assert post_json(api, "/api/v1/admin/campaigns", campaign, editor).status_code == 201
    response = api.http.patch(
        f"{api.base}/api/v1/admin/campaigns/regress",
        data=json.dumps({"variants": [{"heading": "No id"}]}),
        headers={**editor, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert "id" in response.json()["errors"]["variants"]["0"]


@pytest.mark.parametrize(
    "change",
    [
        {"id": "evt_" + "x" * 10_000},
        {"type": "payment_intent." + "x" * 10_000},
        {"id": "evt_poison\x00nul"},
        {"id": "evt_lone\ud800"},
        {"data": {"object": {"id": "pi_" + "x" * 10_000}}},
        {"data": {"object": {"id": "pi_x", "metadata": {"note": "lone\ud800"}}}},
    ],
    ids=[
        "10 KB id",
        "10 KB type",
        "NUL in id",
        "lone surrogate in id",
        "10 KB object id",
        "lone surrogate in metadata",
    ],
)
def test_signed_event_that_is_not_stripe_shaped_is_400(api: Any, change: Any) -> None:
    response = post_event(api, {**make_event("payment_intent.canceled", {"id": "pi_x"}), **change})
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"


def test_signed_event_nested_1000_deep_is_400(api: Any) -> None:
    event = json.dumps(make_event("payment_intent.canceled", {"id": "pi_x", "metadata": "DEEP"}))
    payload = event.replace('"DEEP"', "[" * 1_000 + "]" * 1_000)
    response = api.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
    )
    assert response.status_code == 400, response.text


def test_signed_event_with_control_characters_in_customers_text_is_stored(api: Any) -> None:
    # Customers' own text (a name, metadata) is Stripe's to allow: stored as sent, never a 500.
    obj = {"id": "pi_nothing", "metadata": {"note": "nul\x00 esc\x1b"}, "description": "\x85"}
    response = post_event(api, make_event("payment_intent.canceled", obj))
    assert response.status_code == 200, response.text
