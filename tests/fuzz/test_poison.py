"""What the generators rarely or never make, sent to every operation of the live /openapi.json.

Schemathesis draws 25 examples per operation from printable-ish text: it almost never sends a
NUL, never a lone surrogate, never JSON nested 5,000 deep and never a body over the limit. Each
of those once answered 500 on PostgreSQL; here every documented operation gets each of them,
and must refuse it before anything changes (every table's row count is compared):
- a control character or lone surrogate in each string field of a JSON body → 422 naming it,
  in each query parameter → 422 naming it;
- JSON nested 5,000 deep → 400;
- a body over the limit, with Content-Length or chunked → 413.
All as application/problem+json. The Stripe webhook is only reached up to its signature here
(test_webhook_fuzz.py signs poison).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from donations.admin.tokens import create_token
from donations.models import Base

pytestmark = [pytest.mark.fuzz, pytest.mark.stripe]

PROBLEM = "application/problem+json"
IN_JSON = {"NUL": "a\x00b", "ESC": "a\x1bb", "C1": "a\x85b", "lone surrogate": "a\ud800b"}
IN_QUERY = {"NUL": "a%00b", "LF": "a%0Ab", "DEL": "a%7Fb", "C1": "a%C2%85b"}
WEBHOOK = "/webhooks/stripe"


@pytest.fixture
def spec(api: Any) -> dict[str, Any]:
    return dict(api.get("/openapi.json").json())


@pytest.fixture
def editor(database: Any) -> dict[str, str]:
    with database.transaction() as s:
        return {"Authorization": f"Bearer {create_token(s, 'poison', 'editor')}"}


def row_counts(database: Any) -> dict[str, int]:
    with database.sessions() as s:
        return {
            t.name: s.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, op


def url(path: str, op: dict[str, Any]) -> str:
    for p in op.get("parameters", []):
        if p.get("in") == "path":
            value = "1" if p.get("schema", {}).get("type") == "integer" else "x"
            path = path.replace("{" + p["name"] + "}", value)
    return path


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_fields(spec: dict[str, Any], op: dict[str, Any], content_type: str) -> list[str]:
    """The body's top-level string properties (or one made up, when it documents none)."""
    media = op["requestBody"]["content"][content_type]
    schema = resolve(spec, media.get("schema", {}))
    names = [
        name
        for name, prop in (schema.get("properties") or {}).items()
        if "string" in str(resolve(spec, prop).get("type", ""))
    ]
    return names or ["note"]


def body_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    for method, path, op in operations(spec):
        for content_type in (op.get("requestBody") or {}).get("content", {}):
            if path != WEBHOOK:
                yield method, path, op, content_type


def call(api: Any, method: str, path: str, **kw: Any) -> requests.Response:
    return api.http.request(method, api.base + path, timeout=30, **kw)


def test_control_characters_in_any_json_field_are_422_naming_it(api, database, spec, editor):
    before, wrong = row_counts(database), []
    for method, path, op, content_type in body_operations(spec):
        names = string_fields(spec, op, content_type)
        for kind, text in IN_JSON.items():
            r = call(
                api,
                method,
                url(path, op),
                data=json.dumps(dict.fromkeys(names, text)),
                headers={**editor, "Content-Type": content_type},
            )
            errors = r.json().get("errors", {}) if r.headers["Content-Type"] == PROBLEM else {}
            if r.status_code != 422 or set(errors) != set(names):
                wrong.append((method, path, content_type, kind, r.status_code, r.text[:200]))
    assert wrong == []
    assert row_counts(database) == before


def test_control_characters_in_any_query_parameter_are_422_naming_it(api, database, spec, editor):
    before, wrong, seen = row_counts(database), [], 0
    for method, path, op in operations(spec):
        for p in op.get("parameters", []):
            if p.get("in") != "query":
                continue
            for kind, raw in IN_QUERY.items():
                r = call(api, method, f"{url(path, op)}?{p['name']}={raw}", headers=editor)
                errors = r.json().get("errors", {}) if r.headers["Content-Type"] == PROBLEM else {}
                if r.status_code != 422 or list(errors) != [p["name"]]:
                    wrong.append((method, path, p["name"], kind, r.status_code, r.text[:200]))
                seen += 1
    assert wrong == []
    assert seen > 100
    assert row_counts(database) == before


def test_json_nested_5000_deep_is_400_everywhere(api, database, spec, editor):
    before, wrong = row_counts(database), []
    deep = "[" * 5_000 + "]" * 5_000
    for method, path, op, content_type in body_operations(spec):
        r = call(
            api, method, url(path, op), data=deep, headers={**editor, "Content-Type": content_type}
        )
        if r.status_code != 400 or r.headers["Content-Type"] != PROBLEM:
            wrong.append((method, path, content_type, r.status_code, r.text[:200]))
    assert wrong == []
    assert row_counts(database) == before


def test_a_body_over_the_limit_is_413_everywhere_chunked_or_not(
    api, database, spec, editor, settings
):
    before, wrong = row_counts(database), []
    huge = json.dumps({"note": "x" * settings.max_content_length}).encode()
    for method, path, op in operations(spec):
        if "requestBody" not in op:
            continue
        content_type = next(iter(op["requestBody"]["content"]))
        headers = {**editor, "Content-Type": content_type}
        for how, data in (("length", huge), ("chunked", iter([huge[:1000], huge[1000:]]))):
            r = call(api, method, url(path, op), data=data, headers=headers)
            if r.status_code != 413 or r.headers["Content-Type"] != PROBLEM:
                wrong.append((method, path, how, r.status_code, r.text[:200]))
    assert wrong == []
    assert row_counts(database) == before
