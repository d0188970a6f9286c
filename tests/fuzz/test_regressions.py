"""What the fuzzers found, pinned as plain examples (each was a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from donations.admin.tokens import create_token
from tests.conftest import make_event, post_event

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
