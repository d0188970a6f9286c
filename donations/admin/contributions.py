"""Contributions for staff: a paged, filtered list, a page per contribution, and refunds.

Viewers read the list and every contribution's page (its journal entries, Stripe ids,
receipts, subscription and renewals); editors may also ask Stripe for a refund, after a
confirmation, audited. A refund changes nothing in the books here: Stripe's events bring it
in, like any refund made in Stripe's dashboard (`admin.refunds`).

The list is the JSON API's query (`reports.contributions`, `GET /api/v1/admin/contributions`)
with the same filters, so the page's CSV link downloads exactly what the page lists.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, ValidationError, fields, validate

from donations.admin import audit
from donations.admin.auth import current_principal, require_role
from donations.admin.dashboard import currencies_in_books
from donations.admin.formatting import NotAnAmount, money, parse_major
from donations.admin.models import EDITOR, VIEWER
from donations.admin.refunds import (
    AUDIT_ACTION,
    ContributionNotFound,
    RefundRefused,
    amount_to_refund,
    refundable,
    request_refund,
)
from donations.admin.stripe_links import stripe_dashboard_url
from donations.admin.views import NAV, pages
from donations.checkout.models import FREQUENCIES, STATUS_RANK
from donations.errors import problem
from donations.reports import contributions as contributions_list
from donations.reports.views import ContributionsQuery
from donations.services import services
from donations.stripe import GatewayError

api = ApiBlueprint(
    "contributions_admin",
    __name__,
    url_prefix="/api/v1/admin/contributions",
    description="Refunding a contribution (editors); its effect arrives through Stripe's events.",
)
NAV.append(("admin.contributions", "Contributions"))
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"adminSession": []}]
PAGE_SIZE = 50
# The list page's filters: the JSON API's query parameters of the same names.
FILTERS = ("from", "to", "status", "frequency", "currency", "campaign", "article", "email")
CONFIRMS = "The refund appears here when Stripe confirms it."
MINOR_UNITS = re.compile(r"[0-9]{1,13}")  # what the confirmation form sends back
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")  # the confirmation's own random key


@pages.app_template_filter("stripe_url")
def _stripe_url(object_id: str | None) -> str | None:
    return stripe_dashboard_url(object_id)


# --- the list ------------------------------------------------------------------------------------
def _list_args(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The list's query read by the JSON API's schema: (valid arguments, errors). A bad field
    is reported and left out; the others still filter."""
    schema = ContributionsQuery()
    errors: dict[str, Any] = {}
    # marshmallow checks the dates' order only once every field is valid: load again without
    # the bad fields until what is left holds, gathering every error on the way.
    for _ in range(3):
        bad = set(errors) | ({"from", "to"} if "_schema" in errors else set())
        try:
            return schema.load({k: v for k, v in raw.items() if k not in bad}), errors
        except ValidationError as exc:
            for field, messages in exc.normalized_messages().items():
                errors.setdefault(field, messages)
    return schema.load({}), errors


@pages.get("/contributions", endpoint="contributions")
@require_role(VIEWER)
def contributions_page() -> str:
    raw = {
        key: value[:400]
        for key in (*FILTERS, "cursor")
        if (value := (request.args.get(key) or "").strip())
    }
    args, errors = _list_args(raw)
    filters = contributions_list.Filters.from_args(args)
    with services().db.sessions() as session:
        rows, after = contributions_list.page(session, filters, args["cursor"], PAGE_SIZE)
    # The filters that hold, as the links (next page, CSV) carry them on.
    kept: dict[str, Any] = {k: v for k, v in raw.items() if k != "cursor" and k not in errors}
    if "currency" in kept:
        kept["currency"] = kept["currency"].lower()
    return render_template(
        "admin/contributions.html",
        rows=rows,
        values=raw,
        errors=errors,
        filtered=bool(kept),
        statuses=sorted(STATUS_RANK, key=lambda s: (STATUS_RANK[s], s)),
        frequencies=FREQUENCIES,
        currencies=currencies_in_books(),
        csv_url=url_for("reports.Contributions", format="csv", **kept),
        next_url=url_for("admin.contributions", cursor=after.encode(), **kept) if after else None,
        first_url=url_for("admin.contributions", **kept) if args["cursor"] else None,
    )


# --- one contribution ----------------------------------------------------------------------------
def _refund_requests(contribution_id: str) -> list[Any]:
    with services().db.sessions() as session:
        entries = audit.recent(
            session, limit=50, target_type="contribution", target_id=contribution_id
        )
    return [e for e in entries if e.action == AUDIT_ACTION]


@pages.get("/contributions/<contribution_id>", endpoint="contributions_detail")
@require_role(VIEWER)
def contribution_page(contribution_id: str) -> str:
    refusal = None
    with services().db.sessions() as session:
        found = contributions_list.detail(session, contribution_id)
        if found is None:
            abort(404, f"No contribution {contribution_id}.")
        try:  # what a refund would be told, said before anyone asks
            left = refundable(session, contribution_id).left
        except RefundRefused as exc:
            left, refusal = 0, str(exc)
    principal = current_principal()
    return render_template(
        "admin/contribution.html",
        d=found,
        c=found.contribution,
        left=left,
        refusal=refusal,
        refund_requests=_refund_requests(found.contribution.id),
        can_refund=principal is not None and principal.may(EDITOR),
        confirms=CONFIRMS,
    )


@pages.route(
    "/contributions/<contribution_id>/refund",
    methods=["GET", "POST"],
    endpoint="contributions_refund",
)
@require_role(EDITOR)
def refund_page(contribution_id: str) -> Any:
    """GET: the confirmation, showing the amount; POST: ask Stripe (audited)."""
    back = url_for("admin.contributions_detail", contribution_id=contribution_id)
    s = services()
    try:
        with s.db.sessions() as session:
            found = refundable(session, contribution_id)
        if request.method == "GET":
            amount = None
            if request.args.get("how") == "partial":
                amount = parse_major(request.args.get("amount") or "", found.currency)
            asked = amount_to_refund(found, amount)
            return render_template(
                "admin/contribution_refund.html",
                found=found,
                amount=asked,
                key=secrets.token_urlsafe(16),
                confirms=CONFIRMS,
            )
        amount_text = request.form.get("amount") or ""
        if not MINOR_UNITS.fullmatch(amount_text):
            raise RefundRefused("Choose the amount to refund again.", "amount")
        key = request.form.get("key") or ""
        refund, asked = request_refund(
            s.db,
            s.gateway,
            contribution_id,
            int(amount_text),
            # A double click sends the same confirmation twice: Stripe refunds once.
            idempotency_key=f"refund:{contribution_id}:{key}" if FORM_KEY.fullmatch(key) else None,
        )
    except ContributionNotFound:
        abort(404, f"No contribution {contribution_id}.")
    except (RefundRefused, NotAnAmount) as exc:
        flash(f"Not refunded: {exc}", "error")
        return redirect(back, code=303)
    except GatewayError as exc:
        flash(f"Stripe did not refund it: {exc}", "error")
        return redirect(back, code=303)
    flash(
        f"Stripe accepted refund {refund.id} of {money(asked, found.currency)} "
        f"({refund.status}). {CONFIRMS}",
        "ok",
    )
    return redirect(back, code=303)


# --- JSON API ------------------------------------------------------------------------------------
class RefundBody(Schema):
    amount = fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=10**12),
        metadata={
            "description": "Minor units of the contribution's currency; absent or null: all "
            "that is left to refund"
        },
    )


class RefundRequestedSchema(Schema):
    id = fields.String(metadata={"description": "Stripe's refund id (re_…)"})
    status = fields.String(
        metadata={"description": "Stripe's refund status: pending, succeeded, failed…"}
    )
    amount = fields.Integer(metadata={"description": "Minor units"})
    currency = fields.String()
    contribution_id = fields.String()


REFUND_DESCRIPTION = """\
Asks Stripe to refund the contribution's payment (its PaymentIntent; for a renewal, the one
of its invoice's charge) and records who asked in the audit log (`contribution.refund`).
Nothing in the books changes here: the refund is booked, and the contribution's `status` and
`refunded_amount` move, when Stripe's events about it arrive, like any refund made in Stripe's
dashboard. 409 when the contribution was never paid, is already fully refunded (as far as the
books know) or is disputed; 422 when `amount` is more than is left; 502 with Stripe's own
message when Stripe refuses (e.g. a refund in flight already took what is left) or cannot be
reached. Stripe is called only when the request is accepted here. An addition to API.md.
"""


@api.route("/<contribution_id>/refund")
class RefundResource(MethodView):
    decorators = [require_role(EDITOR)]

    @api.arguments(RefundBody)
    @api.response(202, RefundRequestedSchema)
    @api.alt_response(409, description="Not refundable: never paid, fully refunded or disputed")
    @api.alt_response(502, description="Stripe refused the refund or could not be reached")
    @api.doc(security=SECURITY, description=REFUND_DESCRIPTION)
    def post(self, body: dict[str, Any], contribution_id: str) -> Any:
        """Refund a contribution, all or part (editors, audited)."""
        s = services()
        try:
            refund, asked = request_refund(s.db, s.gateway, contribution_id, body["amount"])
        except ContributionNotFound as exc:
            return problem(404, "Not Found", str(exc))
        except RefundRefused as exc:
            if exc.field:
                return problem(
                    422, "Unprocessable Entity", str(exc), errors={exc.field: [str(exc)]}
                )
            return problem(409, "Not refundable", str(exc))
        except GatewayError as exc:
            return problem(502, "Stripe did not refund", str(exc))
        return {
            "id": refund.id,
            "status": refund.status,
            "amount": asked,
            "currency": refund.currency,
            "contribution_id": contribution_id,
        }
