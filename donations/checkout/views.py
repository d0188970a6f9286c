"""Checkout API and pages: thin views over checkout.service."""

from __future__ import annotations

import hmac
import re
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, abort, after_this_request, render_template, request
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint
from marshmallow import fields

from donations import brand, errors, i18n, security, supporters
from donations.admin.auth import cookies_secure
from donations.checkout import service
from donations.checkout.models import Contribution
from donations.checkout.schemas import (
    ConfirmResultSchema,
    ConfirmSchema,
    ContributionCreateSchema,
    ContributionEnvelopeSchema,
    EmptySchema,
    StartedSchema,
)
from donations.db import utcnow
from donations.services import services
from donations.stripe import GatewayError

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


# --- who completed the payment -------------------------------------------------------------
# The supporter token goes only to whoever holds the contribution's PaymentIntent/SetupIntent
# client secret, never to anyone who merely knows the id (it travels in thank-you URLs):
# - a page of this service's (the hosted /contribute → thank-you flow) gets, with the client
#   secret in the 201, an HttpOnly cookie scoped to this contribution's API path holding an
#   HMAC of the id: its polls of GET …/{id} send it by themselves;
# - any other client (a newsroom's own checkout) sends the client secret it holds in the
#   X-Client-Secret header, checked against the contribution's intent at Stripe.
PAYER_COOKIE = "donations_payer"
PAYER_COOKIE_AGE = 24 * 3600  # the thank-you page polls for minutes; reloads within a day
CLIENT_SECRET_HEADER = "X-Client-Secret"  # noqa: S105 - a header name
PAID_FOR_TOKEN = ("succeeded", "partially_refunded")


def _payer_proof(contribution_id: str) -> str:
    key = services().settings.secret_key.encode()
    return hmac.new(key, f"donations.payer:{contribution_id}".encode(), "sha256").hexdigest()


def _give_payer_cookie(contribution_id: str) -> None:
    """Mark this browser as the one that received the contribution's client secret."""
    proof = _payer_proof(contribution_id)
    secure = cookies_secure(services().settings)

    @after_this_request
    def _set(response: Response) -> Response:
        response.set_cookie(
            PAYER_COOKIE,
            proof,
            max_age=PAYER_COOKIE_AGE,
            path=f"{api.url_prefix}/{contribution_id}",
            secure=secure,
            httponly=True,
            samesite="Strict",
        )
        return response


def _client_secret_matches(contribution: Contribution, sent: str) -> bool:
    """Is `sent` the client secret of this contribution's PaymentIntent or SetupIntent?
    Stripe's client secrets are `<intent id>_secret_<…>`: only one naming the contribution's
    own intent is checked at Stripe (one call, and only once the payment succeeded)."""
    gateway = services().gateway
    intent_id = sent.partition("_secret_")[0]
    try:
        if intent_id and intent_id == contribution.stripe_payment_intent_id:
            actual = gateway.retrieve_payment_intent(intent_id).client_secret
        elif intent_id and intent_id == contribution.stripe_setup_intent_id:
            actual = gateway.retrieve_setup_intent(intent_id).client_secret
        else:
            return False
    except GatewayError:
        return False  # asked again at the next poll
    return bool(actual) and hmac.compare_digest(actual.encode(), sent.encode())


def completed_payment(contribution: Contribution) -> bool:
    """Does this request come from whoever completed the payment (see above)?"""
    cookie = request.cookies.get(PAYER_COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), _payer_proof(contribution.id).encode()):
        return True
    sent = request.headers.get(CLIENT_SECRET_HEADER, "")
    return 0 < len(sent) <= 200 and _client_secret_matches(contribution, sent)


def _supporter_token(contribution: Contribution) -> str | None:
    """A supporter token, for whoever completed the payment once it succeeded."""
    if contribution.status not in PAID_FOR_TOKEN or not completed_payment(contribution):
        return None
    s = services()
    kind = "recurring" if contribution.is_recurring else "one_off"
    return supporters.issue(
        s.settings.secret_key,
        kind,
        now=utcnow(),
        one_off_days=s.appeals.current().rules.one_off_supporter_days,
        since=contribution.succeeded_at,
    )


class ContributionStatusSchema(ContributionEnvelopeSchema):
    supporter_token = fields.String(
        allow_none=True,
        metadata={
            "description": "A signed supporter token (stored by the widget so appeals stop "
            "asking this reader), given only to whoever completed the payment: the browser "
            "that received the client secret (a cookie scoped to this contribution) or a "
            f"request sending that client secret in `{CLIENT_SECRET_HEADER}`; null until "
            "the contribution succeeded and for everyone else. It expires: 30 days for a "
            "recurring supporter (renewed on the donor's account page), the one-off "
            "supporter window (90 days by default) after a one-off gift."
        },
    )


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
        started = service.start_contribution(
            s.db,
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
        _give_payer_cookie(started.contribution.id)
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
    @api.response(200, ContributionStatusSchema)
    @api.doc(
        parameters=[
            {
                "in": "header",
                "name": CLIENT_SECRET_HEADER,
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "The client secret of the contribution's PaymentIntent or "
                "SetupIntent (from the 201 of POST /api/v1/contributions): proves the caller "
                "completed the payment, so the answer carries its `supporter_token`.",
            }
        ]
    )
    def get(self, contribution_id: str) -> dict[str, Any]:
        """The contribution's current status (the thank-you page polls this).

        Additive to API.md: `supporter_token`, only for whoever completed the payment."""
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
        with s.db.transaction(reads_first=True) as session:
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
        # The page's language (the appeal's `lang` first: donations.i18n) goes into the
        # contribution, so its receipts speak it too.
        lang=i18n.current_language(),
        # The article the reader came from (the appeal's `url`), for the thank-you page.
        return_url=brand.return_url(request.args.get("url"), s.settings),
        strings=checkout_strings(),
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

    s = services()
    contribution_id = request.args.get("contribution", "")
    if not re.match(ID_PATTERN, contribution_id):
        contribution_id = ""
    back = brand.return_url(request.args.get("url"), s.settings)
    return render_template(
        "thank_you.html",
        contribution_id=contribution_id,
        exponents={code: exponent(code) for code in s.settings.currencies},
        back_url=back or brand.current().home_url,
        back_to_article=back is not None,
        strings=thank_you_strings(),
    )


# --- the pages' words for their scripts -------------------------------------------------------
# Placeholders in {braces} are filled in by the browser (contribute.js, thank-you.js).
def checkout_strings() -> dict[str, str]:
    return {
        "submit": _("Contribute"),
        "submit_one_off": _("Contribute {amount}"),
        "submit_monthly": _("Contribute {amount} a month"),
        "submit_annual": _("Contribute {amount} a year"),
        "preset_monthly": _("{amount} a month"),
        "preset_annual": _("{amount} a year"),
        "per_month_short": _("/month"),
        "per_year_short": _("/year"),
        "processing": _("Processing…"),
        "limits": _("Minimum {minimum}, maximum {maximum}."),
        "minimum": _("The minimum is {amount}."),
        "maximum": _("The maximum is {amount}."),
        "not_a_number": _("Please enter an amount as a number, like {example}."),
        "no_decimals": _("{currency} amounts have no decimal places."),
        "decimals": _("Please use at most {places} decimal places."),
        "too_large": _("That amount is too large."),
        "choose_to_continue": _("Choose or enter an amount to continue."),
        "charged_once": _("You will be charged {total} once."),
        "charged_monthly": _(
            "You will be charged {total} today, then {total} every month until you cancel."
        ),
        "charged_annually": _(
            "You will be charged {total} today, then {total} every year until you cancel."
        ),
        "includes_fee": _("That includes {fee} to cover processing fees."),
        "check_following": _("Please check the following:"),
        "choose_amount": _("Please choose or enter an amount."),
        "email_missing": _("Please enter your email address."),
        "email_invalid": _("Please enter a valid email address, like name@example.org."),
        "name_invalid": _("Please shorten your name to 200 characters or fewer."),
        "card_missing": _("Please enter your card details."),
        "card_incomplete": _("Your card details look incomplete. Please check them."),
        "card_unusable": _("Your card could not be used. Please check the details and try again."),
        "card_not_loaded": _(
            "The card form could not be loaded. Please check your connection and reload the page."
        ),
        "not_authenticated": _(
            "Your card could not be authenticated. Please try again or use another card."
        ),
        "declined": _("Your card was declined."),
        "try_another_card": _("{message} Please try another card."),
        "unreachable": _(
            "We could not reach our server. Please check your connection and try again."
        ),
        "went_wrong": _("Something went wrong. Please try again."),
        "field_amount": _("Amount"),
        "field_currency": _("Currency"),
        "field_frequency": _("Frequency"),
        "field_email": _("Email"),
        "field_name": _("Name"),
        "field_cover_fees": _("Fee cover"),
        "field_attribution": _("Link"),
        "field_captcha_token": _("Human check"),
    }


def thank_you_strings() -> dict[str, str]:
    newsroom = brand.current().name
    return {
        "title_suffix": newsroom,
        "status_pending": _("processing"),
        "status_succeeded": _("payment succeeded"),
        "status_failed": _("payment failed"),
        "status_canceled": _("canceled"),
        "status_refunded": _("refunded"),
        "status_partially_refunded": _("partially refunded"),
        "status_disputed": _("disputed"),
        "status_unknown": _("not found"),
        "processing_title": _("Processing your payment…"),
        "processing_text": _("This usually takes a few seconds. Please keep this page open."),
        "slow_title": _("Still processing your payment…"),
        "slow_text": _(
            "This is taking longer than usual. You can safely close this page: you will "
            "receive an email receipt as soon as your payment is confirmed."
        ),
        "thanks_title": _("Thank you for supporting %(newsroom)s", newsroom=newsroom),
        "thanks_monthly": _(
            "Your monthly contribution of {total} is set up, and the first payment has been "
            "received."
        ),
        "thanks_annual": _(
            "Your annual contribution of {total} is set up, and the first payment has been "
            "received."
        ),
        "thanks_one_off": _("We have received your contribution of {total}."),
        "thanks_fee": _("Thank you for also covering the {fee} processing fee."),
        "receipt_coming": _("A receipt is on its way to your inbox."),
        "failed_title": _("Your payment did not go through"),
        "declined": _("Your card was declined."),
        "failed_text": _(
            "{reason} You have not been charged. Please try again, perhaps with another card."
        ),
        "try_again": _("Try again"),
        "canceled_title": _("This contribution was canceled"),
        "canceled_text": _("You have not been charged. You are welcome to start again."),
        "start_again": _("Start again"),
        "refunded_title": _("This contribution was refunded"),
        "disputed_title": _("This contribution was disputed"),
        "reversed_text": _("If you have questions about it, please reply to your receipt email."),
        "not_found_title": _("We could not find this contribution"),
        "not_found_text": _(
            "The link may be incomplete. If you were charged, you will receive an email receipt."
        ),
        "waiting_title": _("We are still waiting for confirmation"),
        "waiting_text": _(
            "Your payment has not been confirmed yet. You will receive an email receipt once it "
            "is; there is no need to pay again. You can reload this page later to check."
        ),
        "trouble_text": _(
            "We are having trouble checking the status of your payment. You will receive an "
            "email receipt as soon as it is confirmed."
        ),
    }
