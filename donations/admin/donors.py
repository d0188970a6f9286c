"""Donor privacy requests for staff: look a donor up, export what is held, erase them.

Personal data, so editors only (viewers read reports, not people). The page and the JSON API
call the same functions as `donations export-donor` and `donations erase-donor`.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from donations import privacy
from donations.admin.auth import require_role
from donations.admin.models import EDITOR
from donations.admin.views import NAV, pages
from donations.errors import problem
from donations.services import services
from donations.stripe import GatewayError

api = ApiBlueprint(
    "donors_admin",
    __name__,
    url_prefix="/api/v1/admin/donors",
    description="Donor privacy requests: export and erasure (editors).",
)
NAV.append(("admin.donors", "Donors"))
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"adminSession": []}]


class EmailQuery(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))


class ErasureSchema(Schema):
    donor_id = fields.String()
    contributions_kept = fields.Integer()
    subscriptions_canceled = fields.Integer()
    stripe_customer_deleted = fields.Boolean()


class ErasedSchema(Schema):
    erased = fields.Nested(ErasureSchema)


def _erase(email: str) -> privacy.Erasure:
    s = services()
    with s.db.transaction() as session:
        return privacy.erase_donor(session, s.gateway, email)


@api.route("/export")
class Export(MethodView):
    decorators = [require_role(EDITOR)]

    @api.arguments(EmailQuery, location="query")
    @api.response(200)
    @api.alt_response(404, description="No donor has this email")
    @api.doc(
        security=SECURITY,
        responses={
            "200": {
                "description": "The donor, contributions, subscriptions, ledger entries, "
                "sign-in links, sessions and emails (metadata only)",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    def get(self, args: dict[str, Any]) -> Any:
        """Everything held about the donor with this email (as `donations export-donor`)."""
        try:
            with services().db.sessions() as session:
                return privacy.export_donor(session, args["email"])
        except privacy.DonorNotFound as exc:
            return problem(404, "Not Found", str(exc))


@api.route("/erase")
class Erase(MethodView):
    decorators = [require_role(EDITOR)]

    @api.arguments(EmailQuery)
    @api.response(200, ErasedSchema)
    @api.alt_response(404, description="No donor has this email")
    @api.alt_response(503, description="Stripe unavailable: nothing was changed")
    @api.doc(security=SECURITY)
    def post(self, body: dict[str, Any]) -> Any:
        """Erase the donor here and at Stripe; amounts stay in the books (audited)."""
        try:
            done = _erase(body["email"])
        except privacy.DonorNotFound as exc:
            return problem(404, "Not Found", str(exc))
        except GatewayError as exc:
            return problem(503, "Stripe unavailable", f"{exc} Nothing was changed; try again.")
        return {"erased": done.__dict__}


@pages.get("/donors", endpoint="donors")
@require_role(EDITOR)
def donors_page() -> str:
    email = (request.args.get("email") or "").strip()[:320]
    found = None
    if email:
        with services().db.sessions() as session:
            try:
                found = privacy.export_donor(session, email)
            except privacy.DonorNotFound:
                found = None
    return render_template("admin/donors.html", email=email, found=found)


@pages.post("/donors/erase", endpoint="erase_donor")
@require_role(EDITOR)
def erase_page() -> Response:
    email = (request.form.get("email") or "").strip()[:320]
    if request.form.get("confirm") != "yes":
        flash("Tick the confirmation box to erase this donor.", "error")
        return redirect(url_for("admin.donors", email=email), code=303)
    try:
        done = _erase(email)
    except privacy.DonorNotFound:
        flash("No donor has that email address.", "error")
        return redirect(url_for("admin.donors"), code=303)
    except GatewayError as exc:
        flash(f"Stripe could not be reached ({exc}); nothing was changed.", "error")
        return redirect(url_for("admin.donors", email=email), code=303)
    flash(
        f"Donor {done.donor_id} erased: {done.contributions_kept} contributions kept as amounts "
        f"only, {done.subscriptions_canceled} recurring gifts ended.",
        "ok",
    )
    return redirect(url_for("admin.donors"), code=303)
