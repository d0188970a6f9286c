"""Every error as application/problem+json (RFC 9457), never a stack trace."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, Response, current_app, json, render_template, request
from flask_babel import gettext
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, default_exceptions

from donations.checkout.service import CheckoutError
from donations.edge import RefusedInput
from donations.i18n import N_
from donations.stripe import GatewayError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    type_: str = "about:blank",
) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _flatten_messages(messages: Any) -> dict[str, Any]:
    """webargs nests messages by location ({"json": {"amount": [...]}}); clients want fields."""
    if not isinstance(messages, dict):
        return {"_schema": messages if isinstance(messages, list) else [str(messages)]}
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if location in ("json", "query", "querystring", "form", "headers", "view_args", "files"):
            if isinstance(fields, dict):
                flat.update(fields)
            else:
                flat["_schema"] = fields
        else:
            flat[location] = fields
    return flat


def _first_line(error: BaseException | None) -> str:
    """An error's class and first line: enough to diagnose, without the DETAIL lines that
    may quote row values (personal data)."""
    if error is None:
        return "unknown error"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


NOT_PAGES = ("/api/", "/webhooks/", "/openapi.json", "/docs")


def _wants_page() -> bool:
    """A person's browser on one of the HTML pages (not an API client) gets an HTML page."""
    if request.path.startswith(NOT_PAGES):
        return False
    best = request.accept_mimetypes.best_match([PROBLEM, "application/json", "text/html"])
    return best == "text/html"


# Error pages speak the reader's language: the titles Flask gives (kept as the English
# wording), and for werkzeug's stock descriptions a plain sentence of ours.
PAGE_TITLES = {
    400: N_("Bad Request"),
    401: N_("Unauthorized"),
    403: N_("Forbidden"),
    404: N_("Not Found"),
    405: N_("Method Not Allowed"),
    410: N_("Gone"),
    413: N_("Request Entity Too Large"),
    422: N_("Invalid request"),
    429: N_("Too Many Requests"),
    500: N_("Internal Server Error"),
    503: N_("Service Unavailable"),
}
PAGE_DETAILS = {
    400: N_("Something in the address or the form was not right. Please go back and try again."),
    401: N_("Please sign in to see this page."),
    403: N_("You are not allowed to do this."),
    404: N_("There is no page at this address. The link may be mistyped or out of date."),
    405: N_("This page cannot be used this way."),
    500: N_("Something went wrong on our side. Please try again in a moment."),
    503: N_("This service is not available right now. Please try again in a moment."),
}


def _page(status: int, title: str, detail: str | None, headers: dict[str, str]) -> Response:
    stock = default_exceptions.get(status)
    if detail is None or (stock is not None and detail == stock.description):
        detail = PAGE_DETAILS.get(status)
    body = render_template(
        "error.html",
        status=status,
        title=gettext(PAGE_TITLES.get(status, title)) if title else title,
        # A detail marked for translation where it is raised is translated; others stay.
        detail=gettext(detail) if detail else None,
    )
    response = Response(body, status=status, mimetype="text/html")
    for key, value in headers.items():
        response.headers[key] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if status == 422 and messages is not None:
            return problem(
                422,
                "Invalid request",
                "Some fields are missing or invalid.",
                errors=_flatten_messages(messages),
            )
        detail = exc.description if isinstance(exc.description, str) else None
        if status == 400 and messages is not None:
            detail = "The request body is not valid JSON."
        headers = {}
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="donations-admin"'
        if _wants_page():
            return _page(status, exc.name, detail, headers)
        return problem(status, exc.name, detail, headers=headers)

    @app.errorhandler(RefusedInput)
    def _refused(exc: RefusedInput) -> Response:
        # The edge's rule (donations.edge): control characters, depth, length.
        status = exc.code or 400
        title = "Invalid request" if status == 422 else "Bad Request"
        if _wants_page():  # a person: the page's words in their language, not the field list
            return _page(status, title, None, {})
        return problem(status, title, exc.description, errors=exc.errors)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        # Flask-Limiter's after_request also writes Retry-After and X-RateLimit-* headers.
        limiter = current_app.extensions.get("donations.limiter")
        current = getattr(limiter, "current_limit", None) if limiter else None
        wait = math.ceil(current.reset_at - time.time()) if current else 60
        return problem(
            429,
            "Too Many Requests",
            "Too many attempts from here; please wait and retry.",
            headers={"Retry-After": str(max(wait, 1))},
        )

    @app.errorhandler(GatewayError)
    def _gateway(exc: GatewayError) -> Response:
        return problem(exc.status, exc.title, str(exc), type_=f"/problems/{type(exc).__name__}")

    @app.errorhandler(CheckoutError)
    def _checkout(exc: CheckoutError) -> Response:
        return problem(exc.status, exc.title, str(exc))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(exc: DBAPIError) -> Response:
        # Lost connections, timeouts, locks: transient from the client's side (and Stripe
        # retries webhooks on 5xx). The transaction was rolled back: nothing is half-written.
        log.error(
            "database unavailable on %s %s: %s",
            request.method,
            request.path,
            _first_line(exc.orig),
        )
        return problem(
            503,
            "Service Unavailable",
            "The database is not available; please retry.",
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:  # programming errors included: a 500
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_page():
            try:
                return _page(500, "Internal Server Error", None, {})
            except Exception:  # the page itself failed: the plain answer below
                log.exception("the error page failed to render")
        return problem(500, "Internal Server Error", "Something went wrong on our side.")
