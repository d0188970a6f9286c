"""The Stripe webhook inbox for staff: what waits to be booked, what died and why; retry.

Viewers see the inbox (an operator's health check); editors put dead events back in the
queue (audited). The page and the JSON API call the same functions as `donations webhooks`.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from werkzeug.wrappers import Response

from donations.admin import audit
from donations.admin.auth import require_role
from donations.admin.models import EDITOR, VIEWER
from donations.admin.views import NAV, pages
from donations.services import services
from donations.webhooks.booker import inbox_counts, retry
from donations.webhooks.models import DEAD, PENDING, STATUSES, StripeEvent

api = ApiBlueprint(
    "webhooks_admin",
    __name__,
    url_prefix="/api/v1/admin/webhooks",
    description="The Stripe webhook inbox: events waiting or dead, and retrying them.",
)
NAV.append(("admin.webhooks", "Webhooks"))
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"adminSession": []}]
LIMIT = 200


def _events(status: str, limit: int = LIMIT) -> list[StripeEvent]:
    with services().db.sessions() as session:
        return list(
            session.scalars(
                select(StripeEvent)
                .where(StripeEvent.status == status)
                .order_by(StripeEvent.received_at.desc())
                .limit(limit)
            )
        )


def _retry(event_ids: list[str] | None) -> int:
    s = services()
    with s.db.transaction() as session:
        count = retry(session, event_ids)
        audit.record(
            session,
            "webhooks.retry",
            "stripe_event",
            ",".join(event_ids or ["all dead"])[:100],
            before={"dead": count},
            after={"queued": count},
        )
    if s.settings.webhook_booking == "web":
        s.booker.wake()  # else `donations webhooks worker` takes them at its next poll
    return count


@pages.get("/webhooks", endpoint="webhooks")
@require_role(VIEWER)
def webhooks_page() -> str:
    with services().db.sessions() as session:
        counts = inbox_counts(session)
    return render_template(
        "admin/webhooks.html", counts=counts, dead=_events(DEAD), pending=_events(PENDING)
    )


@pages.post("/webhooks/retry", endpoint="retry_webhooks")
@require_role(EDITOR)
def retry_page() -> Response:
    event_id = (request.form.get("event") or "").strip()
    ids = [event_id] if event_id else None
    count = _retry(ids)
    flash(f"{count} event(s) back in the queue.", "ok" if count else "error")
    return redirect(url_for("admin.webhooks"), code=303)


# --- JSON API ------------------------------------------------------------------------------------
class InboxEventSchema(Schema):
    id = fields.String()
    type = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    received_at = fields.DateTime(format="%Y-%m-%dT%H:%M:%SZ")
    next_attempt_at = fields.DateTime(format="%Y-%m-%dT%H:%M:%SZ", allow_none=True)
    outcome = fields.String()


class InboxSchema(Schema):
    pending = fields.Integer()
    dead = fields.Integer()
    oldest_pending_seconds = fields.Float()
    events = fields.List(fields.Nested(InboxEventSchema))


class InboxQuery(Schema):
    status = fields.String(load_default=DEAD, validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=LIMIT))


class RetryBody(Schema):
    events = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=LIMIT),
        load_default=None,
        metadata={"description": "Event ids; absent: every dead event"},
    )


class RetriedSchema(Schema):
    queued = fields.Integer()


@api.route("")
class Inbox(MethodView):
    decorators = [require_role(VIEWER)]

    @api.arguments(InboxQuery, location="query")
    @api.response(200, InboxSchema)
    @api.doc(security=SECURITY)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The inbox's counts and its events of one status (dead by default), newest first."""
        with services().db.sessions() as session:
            counts = inbox_counts(session)
        return {**counts, "events": _events(args["status"], args["limit"])}


@api.route("/retry")
class Retry(MethodView):
    decorators = [require_role(EDITOR)]

    @api.arguments(RetryBody)
    @api.response(200, RetriedSchema)
    @api.doc(security=SECURITY)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Put dead events (these, or all) back in the queue; they are booked at once."""
        return {"queued": _retry(body.get("events"))}
