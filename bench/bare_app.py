"""The baseline for bench/appeal.py: a bare Flask app with one JSON endpoint, nothing else.

    python -m granian --interface wsgi bare_app:app   (with bench/ on PYTHONPATH)

`GET /bare` answers a fixed dict of the same shape and about the same size as an appeal,
through `jsonify`, so the difference to `GET /api/v1/appeal` is what the real app adds:
its extensions, hooks, query parsing, the choice and the headers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify

APPEAL: dict[str, Any] = {
    "appeal": {
        "impression": "imp_5d1c0b6f3e2a4b9c8d7e6f50",
        "campaign": "year-end-2026",
        "variant": "control",
        "placement": "epic",
        "heading": "Independent journalism needs you this year-end",
        "body_html": (
            "<p>We have no owner and no paywall. Our reporting is funded by readers like you, "
            "who believe that facts should be free for everyone to read.</p><p>If you value "
            "what you read here, <strong>please support us today</strong>: every "
            "contribution, however big or small, keeps us independent.</p>"
        ),
        "cta": {
            "label": "Contribute today",
            "url": "http://127.0.0.1:8000/contribute?amount=1000&currency=usd&frequency=monthly"
            "&article=2026%2F11%2Fpolitics%2Fbudget-vote-1234&campaign=year-end-2026"
            "&variant=control&placement=epic&impression=imp_5d1c0b6f3e2a4b9c8d7e6f50",
        },
        "amounts": {
            "currency": "usd",
            "minimum": 100,
            "presets": {
                "one_off": [500, 1000, 2500],
                "monthly": [500, 1000],
                "annual": [5000, 10000],
            },
            "default_frequency": "monthly",
        },
        "ticker": {
            "goal": 5000000,
            "raised": 1234500,
            "currency": "usd",
            "ends_at": "2027-01-01T00:00:00Z",
        },
        "dismissible": True,
        "articles_read": 7,
    }
}

app = Flask(__name__)


@app.get("/bare")
def bare() -> Response:
    return jsonify(APPEAL)


# The floor for bench/nginx_cache.py: a raw WSGI callable (no framework) answering fixed bytes
# the size of an article's candidates answer (GET /api/v1/appeals: a few variants; the bench
# sets DONATIONS_RAW_BYTES to the size it measured), with the same kind of headers.
RAW_BODY = json.dumps(
    {"version": "1", "candidates": [APPEAL["appeal"]] * 3}, separators=(",", ":")
).encode()
_wanted = int(os.environ.get("DONATIONS_RAW_BYTES") or 0)
if _wanted > len(RAW_BODY):
    padding = "x" * (_wanted - len(RAW_BODY) - len(',"pad":""'))
    RAW_BODY = RAW_BODY[:-1] + b',"pad":"' + padding.encode() + b'"}'

RAW_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(RAW_BODY))),
    ("Cache-Control", "public, max-age=60, s-maxage=60, stale-while-revalidate=60"),
    ("ETag", '"0123456789abcdef01234567"'),
]


def raw(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", RAW_HEADERS)
    return [RAW_BODY]
