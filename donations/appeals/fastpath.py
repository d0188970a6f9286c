"""GET /api/v1/appeal answered before Flask's request machinery: the hottest path.

Flask's own per-request work (request context, session, hooks, CORS matching) costs about as
much as a whole bare request, so the appeal endpoint could not come near a bare Flask endpoint's
throughput through it (0.4–0.5 measured; this path: ~0.98, see bench/appeal.py). Only the plain
case is answered here, with the same functions the Flask view uses; everything else (bad input →
422, debug=1, OPTIONS, any error) goes to Flask unchanged.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from donations.app_constants import REQUEST_ID
from donations.appeals.candidates import (
    CANDIDATES_CACHE_CONTROL,
    VERSION_CACHE_CONTROL,
    not_modified,
    shared_headers,
)
from donations.appeals.service import InvalidInput, answer_appeal

log = logging.getLogger(__name__)
PATH = "/api/v1/appeal"
CANDIDATES_PATH = "/api/v1/appeals"
VERSION_PATH = "/api/v1/appeals/version"
CACHE_CONTROL = "public, max-age=60, stale-while-revalidate=60"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FastAppeal:
    def __init__(self, flask_app: Any, services: Any) -> None:
        self._flask = flask_app.wsgi_app
        self._s = services
        settings = services.settings
        self._origins = frozenset(settings.allowed_origins)
        header = settings.country_header
        self._country_key = "HTTP_" + header.upper().replace("-", "_") if header else None
        self._vary = ", ".join(["Origin", *([header] if header else [])])

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if environ.get("REQUEST_METHOD") != "GET":
            return self._flask(environ, start_response)
        if path in (CANDIDATES_PATH, VERSION_PATH):
            return self._shared(path, environ, start_response)
        if path != PATH:
            return self._flask(environ, start_response)
        args: dict[str, str] = {}
        for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            args.setdefault(key, value)  # the first value wins, as in Flask's request.args
        if "debug" in args:
            return self._flask(environ, start_response)
        try:
            _req, _debug, body, _ = answer_appeal(
                self._s,
                args,
                environ.get(self._country_key) if self._country_key else None,
            )
        except InvalidInput:
            return self._flask(environ, start_response)  # the 422 answer is Flask's
        except Exception:
            log.warning("appeal fast path failed; answering through Flask", exc_info=True)
            return self._flask(environ, start_response)
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        headers = [
            ("Cache-Control", CACHE_CONTROL),
            ("Vary", self._vary),
            ("X-Content-Type-Options", "nosniff"),  # Flask's answers get it in security.py
            ("X-Request-ID", incoming if REQUEST_ID.match(incoming) else secrets.token_hex(16)),
        ]
        origin = environ.get("HTTP_ORIGIN")
        if origin and origin in self._origins:
            headers.append(("Access-Control-Allow-Origin", origin))
        if body is None:
            start_response("204 NO CONTENT", headers)
            return [b""]
        data = json.dumps({"appeal": body}, separators=(",", ":")).encode()
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response("200 OK", headers)
        return [data]

    def _shared(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """The answers every reader of an article shares (appeals/candidates.py)."""
        settings = self._s.settings
        try:
            if path == VERSION_PATH:
                answer = self._s.candidates.version(self._s)
                cache_control = VERSION_CACHE_CONTROL
            else:
                country = environ.get(self._country_key) if self._country_key else None
                query = environ.get("QUERY_STRING", "")
                answer = self._s.candidates.for_query(self._s, query, country)
                cache_control = CANDIDATES_CACHE_CONTROL
        except InvalidInput:
            return self._flask(environ, start_response)  # the 422 answer is Flask's
        except Exception:
            log.warning("appeals fast path failed; answering through Flask", exc_info=True)
            return self._flask(environ, start_response)
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        headers = [
            ("Cache-Control", cache_control),
            ("ETag", answer.etag),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Request-ID", incoming if REQUEST_ID.match(incoming) else secrets.token_hex(16)),
            *shared_headers(settings, environ.get("HTTP_ORIGIN")),
        ]
        if not_modified(environ.get("HTTP_IF_NONE_MATCH"), answer.etag):
            start_response("304 NOT MODIFIED", headers)
            return [b""]
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(answer.body)))]
        start_response("200 OK", headers)
        return [answer.body]
