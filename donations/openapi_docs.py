"""What flask-smorest cannot write into the OpenAPI document: errors, and the Stripe webhook.

flask-smorest documents errors with its own `Error` schema as `application/json`; this service
answers every error as `application/problem+json` (RFC 9457, see `donations.errors`). After the
blueprints are registered, `complete_spec` adds `POST /webhooks/stripe` (a plain Flask view: it
needs the raw body) and `document_errors` puts a `Problem` schema in the components and gives
each operation the error responses the service's shared machinery can produce for it:

- every operation: 503 (database unavailable, with Retry-After) and `default` (500);
- every API operation: 422 (`errors` names each bad field; any query parameter holding control
  characters is one, see `donations.edge`); every other operation: 400 for such a query;
- operations with a JSON body: 400 (malformed JSON, or nested too deep), 413 (too large, with or
  without Content-Length), 415 (wrong content type);
- operations with path parameters: 404 (unknown resource);
- operations behind the admin security schemes: 401 (missing or invalid credentials) and 403
  (the role or the CSRF token does not allow it);
- the checkout operations, which are rate limited: 429 (with Retry-After).

Responses a view documents itself (e.g. "409: a campaign with this id exists") keep their
description; they get the problem+json body when they have none.
"""

from __future__ import annotations

import copy
from typing import Any

from flask_smorest import Api

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "description": "A URI reference naming the problem type."},
        "title": {"type": "string", "description": "A short summary of the problem type."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong with this request."},
        "errors": {
            "type": "object",
            "description": "For invalid input: each bad field with its messages.",
            "additionalProperties": True,
        },
    },
    "required": ["type", "title", "status"],
    # RFC 9457 allows extension members.
    "additionalProperties": True,
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}

# status -> (component name, description, headers)
STANDARD: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "400": (
        "BadRequest",
        "The body is not valid JSON (or nests deeper than 32), or the query string holds "
        "control characters.",
        None,
    ),
    "401": ("Unauthorized", "Missing or invalid credentials.", None),
    "403": ("Forbidden", "The credentials do not allow this (role, or missing CSRF token).", None),
    "404": ("NotFound", "No such resource.", None),
    "413": ("PayloadTooLarge", "The body is too large.", None),
    "415": ("UnsupportedMediaType", "The body's content type is not accepted.", None),
    "422": ("InvalidRequest", "Some fields are missing or invalid; `errors` names each.", None),
    "429": ("TooManyRequests", "Rate limited; retry after `Retry-After` seconds.", RETRY_AFTER),
    "503": ("ServiceUnavailable", "Temporarily unavailable; retry later.", RETRY_AFTER),
    "default": ("UnexpectedError", "An unexpected error on the service's side.", None),
}

# flask-smorest's own error components, replaced by the ones above.
SMOREST_RESPONSES = {"DEFAULT_ERROR": "default", "UNPROCESSABLE_ENTITY": "422"}

BODY_METHODS = ("post", "put", "patch")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
RATE_LIMITED = ("/api/v1/contributions",)


def _problem_response(description: str, headers: dict[str, Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ref(status: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{STANDARD[status][0]}"}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["503", "default"]
    has_body = "requestBody" in operation
    if path.startswith("/api/"):
        statuses.append("422")
    else:
        statuses.append("400")
    if method in BODY_METHODS and has_body:
        statuses += ["400", "413", "415"]
    if "{" in path:
        statuses.append("404")
    if operation.get("security"):
        statuses += ["401", "403"]
    if method in BODY_METHODS and path.startswith(RATE_LIMITED):
        statuses.append("429")
    return statuses


STRIPE_WEBHOOK: dict[str, Any] = {
    "post": {
        "tags": ["stripe"],
        "summary": "Stripe's webhook: verified, recorded once, booked (API.md, Stripe).",
        "description": "The `Stripe-Signature` header is verified against the raw body with "
        "each configured secret. 200 for processed and for duplicate events; 400 for a bad or "
        "missing signature or a body that is not a Stripe event; 503 only for a transient "
        "fault (Stripe retries), never after a partial write.",
        "parameters": [
            {
                "in": "header",
                "name": "Stripe-Signature",
                "required": True,
                "schema": {"type": "string"},
                "description": "`t=…,v1=…` as Stripe computes it",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "A Stripe event",
                        "properties": {
                            "id": {"type": "string", "example": "evt_123"},
                            "type": {"type": "string", "example": "payment_intent.succeeded"},
                            "data": {
                                "type": "object",
                                "properties": {"object": {"type": "object"}},
                            },
                        },
                        "required": ["id", "type", "data"],
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": (
                    "Stored in the inbox and acknowledged (booked afterwards by a worker), or a "
                    "duplicate of an event already stored"
                ),
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "received": {"type": "boolean"},
                                "event": {"type": "string"},
                                "outcome": {
                                    "type": "string",
                                    "description": (
                                        "`queued` (to be booked), `duplicate`, or "
                                        "`acknowledged: …` for a type this service does not book"
                                    ),
                                },
                            },
                            "required": ["received", "event", "outcome"],
                        }
                    }
                },
            },
            "400": {
                "description": "Missing or bad signature, or not a Stripe event",
                "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
            },
        },
    }
}


def complete_spec(api: Api) -> None:
    """Finish the served document (call after registering the API blueprints): the Stripe
    webhook (a plain Flask view, it reads the raw body) and every error as problem+json."""
    # Straight into apispec's paths (its `path()` wants a Flask view registered with smorest).
    api.spec._paths["/webhooks/stripe"] = copy.deepcopy(STRIPE_WEBHOOK)
    document_errors(api)


def document_errors(api: Api) -> None:
    """Describe every error response as problem+json."""
    spec = api.spec
    components = spec.components
    components.schema("Problem", component=PROBLEM_SCHEMA)
    for name, description, headers in STANDARD.values():
        components.response(name, _problem_response(description, headers))

    replaced = {
        f"#/components/responses/{name}": status for name, status in SMOREST_RESPONSES.items()
    }
    # apispec keeps the registered paths here; `to_dict()` serves this very mapping.
    paths: dict[str, dict[str, Any]] = spec._paths
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in METHODS or not isinstance(operation, dict):
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                ref = response.get("$ref") if isinstance(response, dict) else None
                if ref in replaced:
                    responses[status] = _ref(replaced[ref])
                elif (
                    isinstance(response, dict)
                    and ref is None
                    and (status == "default" or status[0] in "45")
                    and not response.get("content")
                ):
                    headers = STANDARD[status][2] if status in STANDARD else None
                    responses[status] = {
                        **_problem_response(response.get("description", ""), headers),
                        **{k: v for k, v in response.items() if k != "content"},
                    }
            for status in _statuses(path, method, operation):
                responses.setdefault(status, _ref(status))

    # apispec writes `"format": null` for a DateTime with a strftime format: not a valid
    # Schema Object. The field's metadata gives the pattern; drop the nulls.
    for schema in components.schemas.values():
        _drop_null_formats(schema)

    # Nothing refers to flask-smorest's error components any more.
    for name in SMOREST_RESPONSES:
        components.responses.pop(name, None)
        components.responses_lazy.pop(name, None)
    components.schemas.pop("Error", None)
    components.schemas_lazy.pop("Error", None)


def _drop_null_formats(node: Any) -> None:
    if isinstance(node, dict):
        for key in ("format", "pattern"):
            if key in node and node[key] is None:
                del node[key]
        for value in node.values():
            _drop_null_formats(value)
    elif isinstance(node, list):
        for value in node:
            _drop_null_formats(value)
