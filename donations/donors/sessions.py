"""Donor sessions (a server-side row per sign-in, its secret in an HttpOnly cookie) and the
CSRF tokens of donors' forms, in the manner of donations.admin.auth."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import request
from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from donations.admin.auth import secure_cookies
from donations.checkout.models import Donor
from donations.csrf import DoubleSubmit, same_token
from donations.donors.models import DonorSession

SESSION_COOKIE = "donations_donor"
# Before signing in there is no session: the sign-in forms use a double-submit cookie.
FORM_CSRF_COOKIE = "donations_account_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/account"
SESSION_LIFETIME = timedelta(hours=12)  # absolute: ask for a new link after this
SESSION_IDLE = timedelta(hours=1)  # a forgotten tab on a shared computer stops being a way in


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start(session: Session, donor_id: str, now: datetime) -> str:
    """A new session for the donor; returns the cookie value (seen only here)."""
    secret = secrets.token_urlsafe(32)
    session.add(
        DonorSession(
            id=_digest(secret),
            donor_id=donor_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_IDLE,
        )
    )
    session.execute(delete(DonorSession).where(DonorSession.expires_at < now))
    session.flush()
    return secret


def load(session: Session, cookie_value: str, now: datetime) -> DonorSession | None:
    """The live session for this cookie (its donor not erased), sliding its idle expiry."""
    if not cookie_value:
        return None
    found = session.get(DonorSession, _digest(cookie_value))
    if found is None or found.expires_at <= now:
        return None
    donor = session.get(Donor, found.donor_id)
    if donor is None or donor.erased_at is not None:
        return None
    if now - found.last_seen_at > timedelta(minutes=1):
        session.execute(
            update(DonorSession)
            .where(DonorSession.id == found.id)
            .values(
                last_seen_at=now,
                expires_at=min(now + SESSION_IDLE, found.created_at + SESSION_LIFETIME),
            )
        )
    return found


def end(session: Session, cookie_value: str) -> None:
    session.execute(delete(DonorSession).where(DonorSession.id == _digest(cookie_value)))


def set_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        secure=secure_cookies(),
        httponly=True,
        samesite="Lax",
        path=COOKIE_PATH,
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, secure=secure_cookies(), httponly=True, samesite="Lax"
    )


def session_csrf_ok(expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return same_token(sent, expected)


# Signed-out forms (asking for a link, pressing Continue): a double-submit cookie. Lax, not
# Strict: the sign-in link is followed from a mail client (a cross-site navigation), and its
# Continue form must find the cookie it just set.
SIGNED_OUT_FORM = DoubleSubmit(FORM_CSRF_COOKIE, COOKIE_PATH, "Lax")
