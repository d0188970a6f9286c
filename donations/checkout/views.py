"""Checkout API and pages: thin views over checkout.service."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import abort, render_template, request
from flask.views import MethodView
from flask_smorest import Blueprint

from donations import errors, security, supporters
from donations.checkout import service
from donations.checkout.models import Contribution
from donations.checkout.schemas import (
    LANG,
    ConfirmResultSchema,
    ConfirmSchema,
    ContributionCreateSchema,
    ContributionEnvelopeSchema,
    EmptySchema,
    StartedSchema,
)
from donations.services import services

api = Blueprint(
    "contributions",
    __name__,
    url_prefix="/api/v1/contributions",
    description="Start, pay and follow a contribution.",
)
pages = FlaskBlueprint("contribute", __name__)

ID_PATTERN = r"^ctb_[0-9a-f]{24}$"


def _check_id(contribution_id: str) -> None:
    if not re.match(ID_PATTERN, contribution_id):
        abort(404, f"No contribution {contribution_id!r}.")


def _supporter_token(contribution: Contribution) -> str | None:
    if contribution.status not in ("succeeded", "partially_refunded"):
        return None
    kind = "recurring" if contribution.is_recurring else "one_off"
    return supporters.issue(services().settings.secret_key, kind)


@api.route("")
class Contributions(MethodView):
    @api.arguments(ContributionCreateSchema)
    @api.response(201, StartedSchema)
    @api.alt_response(402, description="Card declined")
    @api.alt_response(429, description="Too many attempts (Retry-After says when to retry)")
    @api.alt_response(502, description="Stripe unreachable or refused the request")
    @api.alt_response(503, description="The human check could not be verified; retry")
    def post(self, data: dict[str, Any]) -> Any:
        """Start a contribution: a PaymentIntent (one-off) or a SetupIntent (recurring)."""
        s = services()
        refused = _human_check(data.get("captcha_token"))
        if refused is not None:
            return refused
        with s.db.transaction() as session:
            started = service.start_contribution(
                session,
                s.gateway,
                s.settings.currencies[data["currency"]],
                amount=data["amount"],
                frequency=data["frequency"],
                email=data["email"],
                name=data.get("name"),
                cover_fees=data["cover_fees"],
                attribution=data.get("attribution") or {},
                lang=data.get("lang"),
            )
        return {
            "contribution": started.contribution,
            "stripe": {
                "publishable_key": s.gateway.publishable_key,
                "intent": started.intent,
                "client_secret": started.client_secret,
            },
        }


def _human_check(token: str | None) -> Any:
    """None when the optional human check is off or passed; else the problem to answer."""
    settings = services().settings
    if not settings.captcha_provider:
        return None
    try:
        security.verify_human(settings, token, request.remote_addr)
    except security.HumanCheckFailed as exc:
        return errors.problem(
            422,
            "Invalid request",
            "Some fields are missing or invalid.",
            errors={"captcha_token": [str(exc)]},
        )
    except security.HumanCheckUnavailable as exc:
        return errors.problem(503, "Service Unavailable", str(exc), headers={"Retry-After": "5"})
    return None


@api.route("/<contribution_id>")
class ContributionResource(MethodView):
    @api.response(200, ContributionEnvelopeSchema)
    def get(self, contribution_id: str) -> dict[str, Any]:
        """The contribution's current status (the thank-you page polls this)."""
        _check_id(contribution_id)
        s = services()
        with s.db.sessions() as session:
            contribution = service.get_contribution(session, contribution_id)
        return {"contribution": contribution, "supporter_token": _supporter_token(contribution)}


@api.route("/<contribution_id>/confirm")
class ConfirmPayment(MethodView):
    @api.arguments(ConfirmSchema)
    @api.response(200, ConfirmResultSchema)
    @api.alt_response(402, description="Card declined: the message says why")
    @api.alt_response(409, description="Not a one-off contribution, or canceled")
    def post(self, data: dict[str, Any], contribution_id: str) -> dict[str, Any]:
        """Pay a one-off contribution with the payment method Stripe.js made from the card.

        Additive to API.md: server-side confirmation, so declines come back as a clear 402.
        When 3-D Secure is needed, `requires_action` is true and the page finishes with
        `stripe.confirmCardPayment(client_secret)`.
        """
        _check_id(contribution_id)
        s = services()
        with s.db.transaction() as session:
            contribution, pi, declined = service.confirm_payment(
                session, s.gateway, contribution_id, data["payment_method"]
            )
        if declined is not None or pi is None:
            raise declined or RuntimeError("no payment intent")
        return {
            "contribution": contribution,
            "stripe": {
                "status": pi.status,
                "client_secret": pi.client_secret,
                "requires_action": pi.status == "requires_action",
            },
        }


@api.route("/<contribution_id>/subscribe")
class Subscribe(MethodView):
    @api.arguments(EmptySchema)
    @api.response(201, ContributionEnvelopeSchema)
    @api.alt_response(200, schema=ContributionEnvelopeSchema, description="Already subscribed")
    @api.alt_response(402, description="Card declined")
    @api.alt_response(409, description="The SetupIntent has not succeeded yet")
    def post(self, _data: dict[str, Any], contribution_id: str) -> Any:
        """Create the subscription of a monthly or annual contribution (once)."""
        _check_id(contribution_id)
        s = services()
        with s.db.transaction() as session:
            contribution, created = service.subscribe(session, s.gateway, contribution_id)
        body = {"contribution": contribution, "supporter_token": None}
        return body, (201 if created else 200)


@pages.route("/contribute")
def contribute_page() -> str:
    from donations.money import exponent

    s = services()
    rules = s.settings.currencies
    currency = request.args.get("currency", "usd").lower()
    if currency not in rules:
        currency = "usd"
    # The reader's language rides along from the appeal's link into the contribution (for
    # receipts); a malformed value is dropped rather than refused.
    lang = request.args.get("lang", "").lower()
    if not (2 <= len(lang) <= 8 and re.match(LANG, lang)):
        lang = ""
    return render_template(
        "contribute.html",
        currencies={
            code: {
                "minimum": r.minimum,
                "maximum": r.maximum,
                "fee_rate": str(r.fee_rate),
                "fee_fixed": r.fee_fixed,
                "exponent": exponent(code),
            }
            for code, r in rules.items()
        },
        currency=currency,
        lang=lang or None,
        stripe_js_url=s.settings.stripe_js_url,
        emulator=s.settings.uses_stripe_emulator,
        publishable_key=s.gateway.publishable_key,
        captcha_provider=s.settings.captcha_provider,
        captcha_site_key=s.settings.captcha_site_key,
        captcha_script=security.CAPTCHA_SCRIPTS.get(s.settings.captcha_provider or ""),
    )


@pages.route("/contribute/thank-you")
def thank_you_page() -> str:
    from donations.money import exponent

    contribution_id = request.args.get("contribution", "")
    if not re.match(ID_PATTERN, contribution_id):
        contribution_id = ""
    return render_template(
        "thank_you.html",
        contribution_id=contribution_id,
        exponents={code: exponent(code) for code in services().settings.currencies},
    )
