"""Donor account pages under /account: sign in by emailed link, see contributions, receipts and
statements, manage recurring gifts. Thin views over donors.links/sessions/service."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from donations import i18n, supporters
from donations.admin.auth import secure_cookies
from donations.db import utcnow
from donations.donors import links, service
from donations.donors import sessions as donor_sessions
from donations.donors.after_answer import AfterAnswer
from donations.i18n import N_
from donations.mail.outbox import SENDER
from donations.money import exponent
from donations.services import services
from donations.stripe import GatewayError, PaymentDeclined

bp = Blueprint("account", __name__, url_prefix="/account")
F = TypeVar("F", bound=Callable[..., Any])
SUB_ID = re.compile(r"^sub_[A-Za-z0-9]{1,60}$")
CONTRIBUTION_ID = re.compile(r"^ctb_[0-9a-f]{24}$")
EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,200}$")


@bp.after_request
def _private(response: Response) -> Response:
    """Donors' data: never cached, never framed, never leaked by a Referer (links carry
    their token in the path)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


# --- who is signed in -------------------------------------------------------------------------
def current_donor() -> tuple[str, str] | None:
    """(donor id, CSRF token) of this request's donor session, else None (cached)."""
    if "donor" in g:
        found: tuple[str, str] | None = g.donor
        return found
    cookie = request.cookies.get(donor_sessions.SESSION_COOKIE, "")
    found = None
    if cookie:
        with services().db.transaction() as session:
            live = donor_sessions.load(session, cookie, utcnow())
            if live is not None:
                found = (live.donor_id, live.csrf_token)
    g.donor = found
    return found


def signed_in(view: F) -> F:
    """Signed-out GETs go to the sign-in form; signed-out POSTs get 401; POSTs need the
    session's CSRF token (403 without it)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        donor = current_donor()
        if donor is None:
            if request.method == "GET":
                return redirect(url_for("account.home"), code=303)
            abort(401, _("Your session has ended. Ask for a new sign-in link."))
        if request.method != "GET" and not donor_sessions.session_csrf_ok(donor[1]):
            abort(403, _("The form expired. Reload the page and try again."))
        g.donor_id, g.csrf_token = donor
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- signing in ---------------------------------------------------------------------------------
def _with_form_csrf(template: str, status: int = 200, **context: Any) -> Response:
    token, fresh = donor_sessions.SIGNED_OUT_FORM.token()
    response = _page(template, status, csrf_token=token, **context)
    if fresh:
        donor_sessions.SIGNED_OUT_FORM.set_cookie(response, token, secure=secure_cookies())
    return response


@bp.get("", endpoint="home")
def home() -> Response:
    donor = current_donor()
    if donor is None:
        return _with_form_csrf("account/sign_in.html", error=None)
    return _account_page(*donor)


@bp.post("/sign-in", endpoint="request_link")
def request_link() -> Response:
    """Always the same answer, whether or not the email is a donor's."""
    if not donor_sessions.SIGNED_OUT_FORM.ok():
        return _with_form_csrf(
            "account/sign_in.html", 403, error=_("The form expired. Please try again.")
        )
    email = links.normalize_email(request.form.get("email") or "")[:320]
    if not EMAIL.match(email):
        return _with_form_csrf(
            "account/sign_in.html", 422, error=_("Enter the email address you gave with.")
        )
    verdict = services().sign_in_limiter.attempt(email, request.remote_addr or "unknown")
    if not verdict.allowed:
        # Every request is counted, known email or not: a 429 reveals nothing.
        response = _page("account/check_inbox.html", 429, retry_after=verdict.retry_after)
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response
    s = services()
    # The email speaks the page's language (read while answering), else the donor's last one.
    lang = i18n.chosen_language()

    def send_link() -> None:
        with s.db.transaction() as session:
            # Outside the request now: this app's sender sends what is queued here.
            session.info[SENDER] = s.mail
            links.request_link(
                session,
                email,
                secret_key=s.settings.secret_key,
                base_url=s.settings.public_base_url,
                now=utcnow(),
                lang=lang,
            )

    # After the answer: looking the email up, the link's row and its email take time only
    # for a donor we know, and the answer's timing must not tell who has given.
    answer = _page("account/check_inbox.html", retry_after=None)
    link_requests().after(answer, send_link)
    return answer


LINK_REQUESTS = "donations.donor_link_requests"


def link_requests() -> AfterAnswer:
    """This app's queue of sign-in link requests (worked after each answer)."""
    found: AfterAnswer = current_app.extensions.setdefault(
        LINK_REQUESTS, AfterAnswer("donor-sign-in-links")
    )
    return found


def _expired() -> Response:
    return _page("account/link_expired.html", 410)


@bp.get("/sign-in/<token>", endpoint="follow_link")
def follow_link(token: str) -> Response:
    """Show a Continue button (mail scanners that GET links must not use them up)."""
    s = services()
    with s.db.sessions() as session:
        ok = links.usable(session, s.settings.secret_key, token, utcnow())
    if not ok:
        return _expired()
    return _with_form_csrf("account/continue.html", token=token)


@bp.post("/sign-in/<token>", endpoint="use_link")
def use_link(token: str) -> Response:
    if not donor_sessions.SIGNED_OUT_FORM.ok():
        return _with_form_csrf("account/continue.html", 403, token=token)
    s = services()
    with s.db.transaction() as session:
        now = utcnow()
        donor_id = links.consume(session, s.settings.secret_key, token, now)
        previous = request.cookies.get(donor_sessions.SESSION_COOKIE)
        cookie = (
            donor_sessions.start(session, donor_id, now, replacing=previous) if donor_id else None
        )
    if cookie is None:
        return _expired()
    response = redirect(url_for("account.home"), code=303)
    donor_sessions.set_cookie(response, cookie)
    response.delete_cookie(donor_sessions.FORM_CSRF_COOKIE, path=donor_sessions.COOKIE_PATH)
    return response


@bp.post("/sign-out", endpoint="sign_out")
@signed_in
def sign_out() -> Response:
    with services().db.transaction() as session:
        donor_sessions.end(session, request.cookies.get(donor_sessions.SESSION_COOKIE, ""))
    response = redirect(url_for("account.home"), code=303)
    donor_sessions.clear_cookie(response)
    flash(_("You are signed out."), "ok")
    return response


# --- the account page ---------------------------------------------------------------------------
def _account_page(donor_id: str, csrf_token: str) -> Response:
    s = services()
    one_off_days = s.appeals.current().rules.one_off_supporter_days
    with s.db.sessions() as session:
        view = service.overview(session, donor_id, one_off_days=one_off_days, now=utcnow())
        rules = s.settings.currencies
        alternatives = {
            sub.id: service.alternatives(sub, rules[sub.currency])
            for sub in view.subscriptions
            if sub.currency in rules
        }
    # A fresh, short-lived supporter token each visit (donations.supporters): a one-off
    # supporter's counts from their latest gift, a recurring one's from now.
    token = (
        supporters.issue(
            s.settings.secret_key,
            view.supporter_kind,
            now=utcnow(),
            one_off_days=one_off_days,
            since=service.latest_gift(view.contributions),
        )
        if view.supporter_kind
        else None
    )
    return _page(
        "account/account.html",
        view=view,
        csrf_token=csrf_token,
        supporter_token=token,
        alternatives=alternatives,
        paid=service.PAID,
        messages=get_flashed_messages(with_categories=True),
    )


@bp.get("/receipts/<contribution_id>", endpoint="receipt")
@signed_in
def receipt(contribution_id: str) -> Response:
    if not CONTRIBUTION_ID.match(contribution_id):
        abort(404)
    s = services()
    with s.db.sessions() as session:
        try:
            contribution = service.receipt(session, g.donor_id, contribution_id)
        except service.NotYours:
            abort(404)
        donor = contribution.donor
    return _page("account/receipt.html", c=contribution, donor=donor, settings=s.settings)


def _day(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(422, _("Dates are written YYYY-MM-DD."))


@bp.get("/statement", endpoint="statement")
@signed_in
def statement() -> Response:
    start, end = _day(request.args.get("from")), _day(request.args.get("to"))
    s = services()
    with s.db.sessions() as session:
        if start is None or end is None:
            default = service.default_statement_range(session, g.donor_id, utcnow().date())
            start, end = start or default[0], end or default[1]
        if end < start or (end - start).days > 3660:
            abort(422, _("Choose a range that ends after it starts, of at most ten years."))
        result = service.statement(session, g.donor_id, start, end)
        donor = session.get(service.Donor, g.donor_id)
    return _page("account/statement.html", st=result, donor=donor, settings=s.settings)


# --- recurring gifts ------------------------------------------------------------------------
def _sub_id(sub_id: str) -> str:
    if not SUB_ID.match(sub_id):
        abort(404)
    return sub_id


def _done(message: str, category: str = "ok") -> Response:
    flash(message, category)
    return redirect(url_for("account.home") + "#recurring", code=303)


def _change(fn: Callable[[Any], str]) -> Response:
    """Run a self-service change in one transaction; answer with its message."""
    s = services()
    try:
        with s.db.transaction() as session:
            message = fn(session)
    except service.NotYours:
        abort(404)
    except service.AccountError as exc:
        return _done(str(exc), "error")
    except PaymentDeclined as exc:
        return _done(_("Your card was declined: %(reason)s", reason=str(exc)), "error")
    except GatewayError:
        return _done(
            _("We could not reach our payment provider. Nothing was changed; please try again."),
            "error",
        )
    return _done(message)


@bp.get("/subscriptions/<sub_id>/cancel", endpoint="cancel_page")
@signed_in
def cancel_page(sub_id: str) -> Response:
    s = services()
    with s.db.sessions() as session:
        try:
            sub = service.live_subscription(session, g.donor_id, _sub_id(sub_id))
        except service.NotYours:
            abort(404)
        except service.AccountError as exc:
            return _done(str(exc), "error")
        alt = service.alternatives(sub, s.settings.currencies[sub.currency])
    return _page("account/cancel.html", sub=sub, alt=alt, csrf_token=g.csrf_token)


@bp.post("/subscriptions/<sub_id>/cancel", endpoint="cancel")
@signed_in
def cancel(sub_id: str) -> Response:
    when = request.form.get("when", "")
    if when not in ("period_end", "now"):
        abort(422, _("Choose when the contribution should end."))
    return _change(
        lambda session: service.cancel(
            session, services().gateway, g.donor_id, _sub_id(sub_id), now=when == "now"
        )
    )


def _plan_change(sub_id: str, interval: str | None) -> Response:
    s = services()

    def run(session: Any) -> str:
        sub = service.own_subscription(session, g.donor_id, _sub_id(sub_id))
        rule = s.settings.currencies.get(sub.currency)
        if rule is None:
            raise service.AccountError(_("This currency can no longer be changed here."))
        amount = service.parse_amount(request.form.get("amount", ""), sub.currency)
        return service.change_plan(
            session,
            s.gateway,
            rule,
            g.donor_id,
            sub.id,
            amount=amount,
            interval=interval or sub.interval,
        )

    return _change(run)


@bp.post("/subscriptions/<sub_id>/amount", endpoint="change_amount")
@signed_in
def change_amount(sub_id: str) -> Response:
    return _plan_change(sub_id, None)


@bp.post("/subscriptions/<sub_id>/interval", endpoint="change_interval")
@signed_in
def change_interval(sub_id: str) -> Response:
    interval = request.form.get("interval", "")
    if interval not in ("month", "year"):
        abort(422, _("Choose monthly or annual."))
    return _plan_change(sub_id, interval)


@bp.get("/subscriptions/<sub_id>/card", endpoint="card_page")
@signed_in
def card_page(sub_id: str) -> ResponseReturnValue:
    s = services()
    with s.db.sessions() as session:
        try:
            sub = service.live_subscription(session, g.donor_id, _sub_id(sub_id))
            card = service.current_card(session, s.gateway, g.donor_id, sub.id)
        except service.NotYours:
            abort(404)
        except service.AccountError as exc:
            return _done(str(exc), "error")
        except GatewayError:
            card = None
    return _page(
        "account/card.html",
        sub=sub,
        card=card,
        csrf_token=g.csrf_token,
        stripe_js_url=s.settings.stripe_js_url,
        emulator=s.settings.uses_stripe_emulator,
        publishable_key=s.gateway.publishable_key,
    )


@bp.post("/subscriptions/<sub_id>/card/setup-intent", endpoint="card_setup_intent")
@signed_in
def card_setup_intent(sub_id: str) -> ResponseReturnValue:
    s = services()
    try:
        with s.db.transaction() as session:
            secret = service.card_setup_intent(session, s.gateway, g.donor_id, _sub_id(sub_id))
    except service.NotYours:
        abort(404)
    except service.AccountError as exc:
        return jsonify({"error": str(exc)}), 409
    except GatewayError:
        return jsonify(
            {"error": _("We could not reach our payment provider. Please try again.")}
        ), 502
    return jsonify({"client_secret": secret})


@bp.post("/subscriptions/<sub_id>/card", endpoint="update_card")
@signed_in
def update_card(sub_id: str) -> Response:
    setup_intent = request.form.get("setup_intent", "")
    if not re.match(r"^seti_[A-Za-z0-9]{1,60}$", setup_intent):
        abort(422, _("The new card was not set up."))
    return _change(
        lambda session: service.update_card(
            session, services().gateway, g.donor_id, _sub_id(sub_id), setup_intent
        )
    )


# What the account pages call things (translated where shown).
FREQUENCY_WORDS = {"one_off": N_("one-off"), "monthly": N_("monthly"), "annual": N_("annual")}
KIND_WORDS = {
    "one_off": N_("One-off contribution"),
    "monthly": N_("Monthly contribution"),
    "annual": N_("Annual contribution"),
}
STATUS_WORDS = {
    "pending": N_("pending"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "canceled": N_("canceled"),
    "refunded": N_("refunded"),
    "partially_refunded": N_("partially refunded"),
    "disputed": N_("disputed"),
}


def typed_amount(minor: int | None, currency: str) -> str:
    """An amount as a donor would type it back in a form: "120", "7.50" ("7,50" in Russian)."""
    from babel.numbers import get_decimal_symbol

    from donations.admin.formatting import plain_major

    return plain_major(minor, currency).replace(".", get_decimal_symbol(i18n.current_language()))


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {
        "exponent_of": exponent,
        "typed_amount": typed_amount,
        "frequency_words": FREQUENCY_WORDS,
        "kind_words": KIND_WORDS,
        "status_words": STATUS_WORDS,
    }
