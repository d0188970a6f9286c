"""Admin bearer tokens: created once (shown once), stored hashed, checked on every call."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import abort, g, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from donations.admin.models import AdminToken
from donations.db import utcnow
from donations.services import services

PREFIX = "dnt_"
F = TypeVar("F", bound=Callable[..., Any])


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Make a new token; only its digest is stored, so this is the one time it is seen."""
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(AdminToken(name=name, token_hash=digest(token)))
    session.flush()
    return token


def authenticate(session: Session, token: str) -> AdminToken | None:
    if not token.startswith(PREFIX):
        return None
    found = session.scalar(
        select(AdminToken).where(
            AdminToken.token_hash == digest(token), AdminToken.revoked_at.is_(None)
        )
    )
    if found is None or not hmac.compare_digest(found.token_hash, digest(token)):
        return None
    now = utcnow()
    # Record use at most once a minute, so reads don't all become writes.
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        session.execute(
            update(AdminToken).where(AdminToken.id == found.id).values(last_used_at=now)
        )
    return found


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def admin_required(view: F) -> F:
    """401 unless the request carries a valid, unrevoked admin bearer token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            abort(401, "An admin bearer token is required.")
        with services().db.transaction() as session:
            found = authenticate(session, token)
            if found is None:
                abort(401, "The admin token is not valid.")
            g.admin_token_name = found.name
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
