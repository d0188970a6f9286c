"""Who is calling the admin: a signed-in browser (session cookie + CSRF token) or a bearer token.

Every view under /admin and /api/v1/admin is wrapped in `require_role`; there is no other way in.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, has_request_context, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from donations.admin.models import RANK, ROLES, VIEWER, AdminSession, AdminUser
from donations.admin.tokens import authenticate as authenticate_token
from donations.admin.tokens import bearer_token
from donations.csrf import DoubleSubmit, same_token
from donations.db import utcnow
from donations.services import services
from donations.sessions import ServerSessions
from donations.settings import Settings

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

SESSION_COOKIE = "donations_admin"
LOGIN_CSRF_COOKIE = "donations_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_LIFETIME = timedelta(hours=12)  # absolute: sign in again after this
SESSION_IDLE = timedelta(hours=2)  # idle: a forgotten tab stops being a way in
MIN_PASSWORD = 12
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# argon2id with the library's (RFC 9106 "low memory") defaults.
hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified for unknown emails too, so a login takes as long whether or not the account
    exists. Made at the first login, not at import (an argon2 hash costs 64 MiB and ~50 ms)."""
    return hasher.hash(secrets.token_urlsafe(16))


class PasswordTooShort(ValueError):
    pass


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise PasswordTooShort(f"Passwords need at least {MIN_PASSWORD} characters.")
    return hasher.hash(password)


def create_user(session: Session, email: str, password: str, role: str) -> AdminUser:
    """Add an admin user, or reset an existing one's password and role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    email = normalize_email(email)
    if "@" not in email or len(email) > 320:
        raise ValueError("That is not an email address.")
    digest = hash_password(password)
    user = session.scalar(select(AdminUser).where(AdminUser.email == email))
    if user is None:
        user = AdminUser(email=email, password_hash=digest, role=role)
        session.add(user)
    else:
        user.password_hash, user.role, user.disabled_at = digest, role, None
    session.flush()
    return user


def check_password(session: Session, email: str, password: str) -> AdminUser | None:
    """The active user with this email and password, else None (in about the same time)."""
    user = session.scalar(select(AdminUser).where(AdminUser.email == normalize_email(email)))
    stored = user.password_hash if user is not None else _dummy_hash()
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


# Staff sessions: the cookie covers the whole site (admin pages and the admin API).
STAFF_SESSIONS = ServerSessions(AdminSession, SESSION_COOKIE, "/", SESSION_IDLE, SESSION_LIFETIME)


def start_session(session: Session, user: AdminUser) -> str:
    """A new server-side session for this user; returns the cookie value (seen only here).

    Signing in rotates the session: the one this browser held before (its cookie) is ended."""
    now = utcnow()
    user.last_login_at = now
    previous = request.cookies.get(SESSION_COOKIE) if has_request_context() else None
    return STAFF_SESSIONS.start(session, now, replacing=previous, user_id=user.id)


def end_session(session: Session, cookie_value: str) -> None:
    STAFF_SESSIONS.end(session, cookie_value)


def load_session(session: Session, cookie_value: str) -> AdminSession | None:
    found: AdminSession | None = STAFF_SESSIONS.load(
        session, cookie_value, utcnow(), lambda row: row.user.disabled_at is None
    )
    return found


@dataclass(frozen=True)
class Principal:
    """Who is acting: an admin user through a browser session, or an API token."""

    kind: str  # "user" | "token"
    name: str
    role: str
    csrf_token: str | None = None  # set for browser sessions

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def may(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]


def current_principal() -> Principal | None:
    """The caller of this request, from its bearer token or its session cookie (cached)."""
    if "principal" in g:
        return g.principal
    principal: Principal | None = None
    token = bearer_token()
    cookie = request.cookies.get(SESSION_COOKIE)
    if token is not None or cookie:
        with services().db.transaction() as session:
            if token is not None:
                found = authenticate_token(session, token)
                if found is not None:
                    principal = Principal("token", f"{found.name} (#{found.id})", found.role)
            elif cookie:
                live = load_session(session, cookie)
                if live is not None:
                    principal = Principal("user", live.user.email, live.user.role, live.csrf_token)
    g.principal = principal
    return principal


def csrf_ok(principal: Principal) -> bool:
    """Browser sessions must echo their CSRF token on every state-changing request."""
    if principal.csrf_token is None or request.method in SAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return same_token(sent, principal.csrf_token)


def _is_page() -> bool:
    return not request.path.startswith("/api/")


def require_role(read: str = VIEWER, write: str | None = None) -> Callable[[F], F]:
    """401 (or, for pages, a redirect to the login page) without credentials; 403 without the
    role (`write` for state-changing methods, `read` otherwise) or a session's CSRF token."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if _is_page() and request.method in SAFE_METHODS:
                    return redirect(url_for("admin.login", next=_local_next()))
                abort(401, "Sign in, or send an admin bearer token.")
            needed = read if request.method in SAFE_METHODS else (write or read)
            if not principal.may(needed):
                abort(403, f"This needs the {needed} role; you are a {principal.role}.")
            if not csrf_ok(principal):
                abort(403, "The CSRF token is missing or wrong; reload the page and try again.")
            return view(*args, **kwargs)

        wrapper.required_roles = (read, write or read)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _local_next() -> str:
    return request.full_path.rstrip("?")


def local_path(target: str | None) -> str | None:
    """`target` when it is a path on this site (no scheme, host, //evil.example or backslash
    tricks), else None: the only places a login may return to."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def safe_next(target: str | None) -> str:
    return local_path(target) or url_for("admin.dashboard")


def cookies_secure(settings: Settings) -> bool:
    """Secure cookies always in production, and whenever the service is served over HTTPS;
    a development server on plain http://127.0.0.1 could not sign in otherwise."""
    return settings.env == "production" or settings.public_base_url.startswith("https://")


def secure_cookies() -> bool:
    return cookies_secure(services().settings)


def set_session_cookie(response: Response, value: str) -> None:
    STAFF_SESSIONS.set_cookie(response, value, secure=secure_cookies())


def clear_session_cookie(response: Response) -> None:
    STAFF_SESSIONS.clear_cookie(response, secure=secure_cookies())


# The login form has no session yet: a double-submit cookie, sent back only to the form.
LOGIN_FORM = DoubleSubmit(LOGIN_CSRF_COOKIE, "/admin/login", "Strict")
