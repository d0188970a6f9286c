"""Who is calling the admin: a signed-in browser (session cookie + CSRF token) or a bearer token.

Every view under /admin and /api/v1/admin is wrapped in `require_role`; there is no other way in.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, redirect, request, url_for
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from donations.admin.models import RANK, ROLES, VIEWER, AdminSession, AdminUser
from donations.admin.tokens import authenticate as authenticate_token
from donations.admin.tokens import bearer_token
from donations.csrf import DoubleSubmit, same_token
from donations.db import utcnow
from donations.services import services
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
# Verified for unknown emails too, so a login takes as long whether or not the account exists.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


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
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start_session(session: Session, user: AdminUser) -> str:
    """A new server-side session for this user; returns the cookie value (seen only here)."""
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            id=_digest(secret),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=min(now + SESSION_IDLE, now + SESSION_LIFETIME),
        )
    )
    user.last_login_at = now
    # Housekeeping: sessions past their expiry are of no use to anyone.
    session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    session.flush()
    return secret


def end_session(session: Session, cookie_value: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.id == _digest(cookie_value)))


def load_session(session: Session, cookie_value: str) -> AdminSession | None:
    now = utcnow()
    found = session.get(AdminSession, _digest(cookie_value))
    if found is None or found.expires_at <= now or found.user.disabled_at is not None:
        return None
    if now - found.last_seen_at > timedelta(minutes=1):  # slide the idle window, not every hit
        session.execute(
            update(AdminSession)
            .where(AdminSession.id == found.id)
            .values(
                last_seen_at=now,
                expires_at=min(now + SESSION_IDLE, found.created_at + SESSION_LIFETIME),
            )
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
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        secure=secure_cookies(),
        httponly=True,
        samesite="Lax",
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=secure_cookies(), httponly=True, samesite="Lax"
    )


# The login form has no session yet: a double-submit cookie, sent back only to the form.
LOGIN_FORM = DoubleSubmit(LOGIN_CSRF_COOKIE, "/admin/login", "Strict")
