"""Donor sessions (a server-side row per sign-in, its secret in an HttpOnly cookie) and the
CSRF tokens of donors' forms, in the manner of donations.admin.auth."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from donations.admin.auth import secure_cookies
from donations.checkout.models import Donor
from donations.csrf import DoubleSubmit, same_token
from donations.donors.models import DonorSession
from donations.sessions import ServerSessions

SESSION_COOKIE = "donations_donor"
# Before signing in there is no session: the sign-in forms use a double-submit cookie.
FORM_CSRF_COOKIE = "donations_account_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/account"
SESSION_LIFETIME = timedelta(hours=12)  # absolute: ask for a new link after this
SESSION_IDLE = timedelta(hours=1)  # a forgotten tab on a shared computer stops being a way in


DONOR_SESSIONS = ServerSessions(
    DonorSession, SESSION_COOKIE, COOKIE_PATH, SESSION_IDLE, SESSION_LIFETIME
)


def start(session: Session, donor_id: str, now: datetime, *, replacing: str | None = None) -> str:
    """A new session for the donor; returns the cookie value (seen only here). The session
    this browser held before (`replacing`, its cookie value) is ended: signing in rotates."""
    return DONOR_SESSIONS.start(session, now, replacing=replacing, donor_id=donor_id)


def load(session: Session, cookie_value: str, now: datetime) -> DonorSession | None:
    """The live session for this cookie (its donor not erased), sliding its idle expiry."""

    def alive(row: DonorSession) -> bool:
        donor = session.get(Donor, row.donor_id)
        return donor is not None and donor.erased_at is None

    found: DonorSession | None = DONOR_SESSIONS.load(session, cookie_value, now, alive)
    return found


def end(session: Session, cookie_value: str) -> None:
    DONOR_SESSIONS.end(session, cookie_value)


def set_cookie(response: Response, value: str) -> None:
    DONOR_SESSIONS.set_cookie(response, value, secure=secure_cookies())


def clear_cookie(response: Response) -> None:
    DONOR_SESSIONS.clear_cookie(response, secure=secure_cookies())


def session_csrf_ok(expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return same_token(sent, expected)


# Signed-out forms (asking for a link, pressing Continue): a double-submit cookie. Lax, not
# Strict: the sign-in link is followed from a mail client (a cross-site navigation), and its
# Continue form must find the cookie it just set.
SIGNED_OUT_FORM = DoubleSubmit(FORM_CSRF_COOKIE, COOKIE_PATH, "Lax")
