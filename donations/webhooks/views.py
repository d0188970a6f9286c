"""POST /webhooks/stripe: verify the signature, store the event once, acknowledge.

Booking happens off the request path (`donations.webhooks.booker`): a slow or unreachable
Stripe makes events wait in the inbox, never a 5xx here. Only a database that cannot store
the event answers 503 (nothing was written; Stripe retries). `receive` is the whole rule; the
Flask view and the WSGI fast path (`webhooks.fastpath`) both answer with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from donations import edge, observability
from donations.errors import problem
from donations.services import Services, services
from donations.stripe import SignatureError
from donations.webhooks.inbox import (
    DUPLICATE,
    QUEUED,
    MalformedEvent,
    acknowledge,
    check_event_shape,
)

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)
PATH = "/webhooks/stripe"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]  # the 200's JSON, or the problem's title and detail
    headers: dict[str, str] = field(default_factory=dict)


def _refused(detail: str) -> Answer:
    return Answer(400, {"title": "Bad Request", "detail": detail})


def receive(
    s: Services, payload: bytes, signature: str, *, request_id: str | None = None
) -> Answer:
    """Verify a delivery's signature on its raw bytes, check the event, store it once."""
    if not signature:
        return _refused("The Stripe-Signature header is missing.")
    try:
        s.gateway.verify_webhook(payload, signature)
    except SignatureError:
        observability.webhook_failed("signature")
        return _refused("The Stripe-Signature does not verify.")
    try:
        event = edge.loads_bounded(payload)
        edge.check_signed_event(event)
        check_event_shape(event)
    except (ValueError, MalformedEvent) as exc:
        observability.webhook_failed("malformed")
        return _refused(f"The body is not a Stripe event: {exc}")
    # Stored as sent: the text loads_bounded parsed (UTF-8 only, checked above).
    outcome = acknowledge(s.db.engine, event, payload.decode("utf-8"))
    if outcome == QUEUED and s.settings.webhook_booking == "web":
        s.booker.wake()
    observability.webhook_received(event, duplicate=outcome == DUPLICATE)
    extra = {"request_id": request_id} if request_id else None
    log.info("webhook %s (%s): %s", event["id"], event["type"], outcome, extra=extra)
    return Answer(200, {"received": True, "event": event["id"], "outcome": outcome})


@bp.post(PATH)
def stripe_webhook() -> Response | tuple[Response, int]:
    if request.mimetype != "application/json":
        return problem(415, "Unsupported Media Type", "Stripe sends application/json.")
    payload = request.get_data(cache=False)  # the raw bytes: signatures cover them exactly
    signature = request.headers.get("Stripe-Signature", "")
    answer = receive(services(), payload, signature, request_id=g.get("request_id"))
    if answer.status != 200:
        return problem(answer.status, answer.body["title"], answer.body["detail"])
    return jsonify(answer.body), 200
