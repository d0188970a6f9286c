"""POST /webhooks/stripe answered before Flask's request machinery.

An acknowledgement is one signature check, one parse and one insert; Flask's per-request work
would cost more than all three (bench/webhooks.py measures acknowledgements against raw
single-row INSERTs on the same database). Only the plain case is answered here, with the very
function the Flask view uses (`views.receive`); anything else (another content type, a body
without Content-Length, a database error) goes to Flask with the body it sent.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from donations.app_constants import REQUEST_ID
from donations.observability import ENDPOINT_KEY
from donations.webhooks.views import PATH, receive

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ENDPOINT = PATH  # the label Flask's own answers get (its URL rule)


class FastWebhook:
    def __init__(self, app: WSGIApp, flask_wsgi: WSGIApp, services: Any) -> None:
        self._app = app  # what answers everything else
        self._flask = flask_wsgi  # Flask itself, for the unusual webhook
        self._s = services
        self._limit = services.settings.max_content_length

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            length = -1
        if content_type != "application/json" or not 0 <= length <= self._limit:
            return self._flask(environ, start_response)
        payload = environ["wsgi.input"].read(length)
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.match(incoming) else secrets.token_hex(16)
        try:
            answer = receive(
                self._s,
                payload,
                environ.get("HTTP_STRIPE_SIGNATURE", ""),
                request_id=request_id,
            )
        except Exception:  # the database, say: Flask answers it (503) as for any request
            log.warning("webhook fast path failed; answering through Flask", exc_info=True)
            environ["wsgi.input"] = io.BytesIO(payload)
            return self._flask(environ, start_response)
        environ[ENDPOINT_KEY] = ENDPOINT
        if answer.status == 200:
            body, media = answer.body, "application/json"
        else:
            body = {"type": "about:blank", "status": answer.status, **answer.body}
            media = "application/problem+json"
        data = json.dumps(body, separators=(",", ":")).encode()
        start_response(
            f"{answer.status} {'OK' if answer.status == 200 else 'BAD REQUEST'}",
            [
                ("Content-Type", media),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("X-Request-ID", request_id),
            ],
        )
        return [data]
