"""POST /webhooks/stripe: verify the signature, then record and book the event once."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, jsonify, request

from donations import observability
from donations.errors import problem
from donations.services import services
from donations.stripe import GatewayError, SignatureError
from donations.webhooks.inbox import (
    DUPLICATE,
    MalformedEvent,
    check_event_shape,
    process_event,
)

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook() -> Response | tuple[Response, int]:
    if request.mimetype != "application/json":
        return problem(415, "Unsupported Media Type", "Stripe sends application/json.")
    signature = request.headers.get("Stripe-Signature", "")
    if not signature:
        return problem(400, "Bad Request", "The Stripe-Signature header is missing.")
    payload = request.get_data(cache=False)  # the raw bytes: signatures cover them exactly
    s = services()
    try:
        s.gateway.verify_webhook(payload, signature)
    except SignatureError:
        observability.webhook_failed("signature")
        return problem(400, "Bad Request", "The Stripe-Signature does not verify.")
    try:
        event = json.loads(payload)
        check_event_shape(event)
    except (ValueError, MalformedEvent) as exc:
        observability.webhook_failed("malformed")
        return problem(400, "Bad Request", f"The body is not a Stripe event: {exc}")
    try:
        outcome = process_event(s.db, s.gateway, event)
    except MalformedEvent as exc:
        observability.webhook_failed("malformed", event["type"])
        return problem(400, "Bad Request", str(exc))
    except GatewayError as exc:
        observability.webhook_failed("stripe_unreachable", event["type"])
        # Could not re-fetch from Stripe: nothing was written; 503 makes Stripe retry.
        log.warning("webhook %s (%s) deferred: %s", event["id"], event["type"], exc)
        return problem(
            503,
            "Service Unavailable",
            "Stripe could not be reached; retry later.",
            headers={"Retry-After": "30"},
        )
    except Exception:
        observability.webhook_failed("error", event["type"])
        raise
    observability.webhook_processed(event, duplicate=outcome == DUPLICATE)
    log.info("webhook %s (%s): %s", event["id"], event["type"], outcome)
    return jsonify({"received": True, "event": event["id"], "outcome": outcome}), 200
