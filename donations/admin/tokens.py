"""Admin bearer tokens: created once (shown once), stored hashed, checked on every call."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from donations.admin import audit
from donations.admin.models import EDITOR, ROLES, AdminToken
from donations.db import utcnow
from donations.sessions import digest

PREFIX = "dnt_"
F = TypeVar("F", bound=Callable[..., Any])


def create_token(
    session: Session, name: str, role: str = EDITOR, created_by: str | None = None
) -> str:
    """Make a new token and return it (see issue_token)."""
    return issue_token(session, name, role, created_by)[1]


def issue_token(
    session: Session, name: str, role: str = EDITOR, created_by: str | None = None
) -> tuple[AdminToken, str]:
    """Make a new token; only its digest is stored, so this is the one time it is seen."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = PREFIX + secrets.token_urlsafe(32)
    row = AdminToken(name=name, token_hash=digest(token), role=role, created_by=created_by)
    session.add(row)
    session.flush()
    return row, token


def revoke_token(session: Session, token_id: int) -> AdminToken | None:
    """Revoke a token (kept, for the audit trail); None when there is no such token."""
    row = session.get(AdminToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def list_tokens(session: Session) -> list[AdminToken]:
    return list(session.scalars(select(AdminToken).order_by(AdminToken.id.desc())))


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


def token_record(row: AdminToken) -> dict[str, Any]:
    """A token as the API and the audit log show it (never its value or digest)."""

    def stamp(value: datetime | None) -> str | None:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None

    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_at": stamp(row.created_at),
        "created_by": row.created_by,
        "last_used_at": stamp(row.last_used_at),
        "revoked_at": stamp(row.revoked_at),
    }


def create_audited(session: Session, name: str, role: str) -> tuple[AdminToken, str]:
    row, value = issue_token(session, name, role, created_by=audit.current_actor())
    audit.record(
        session, "token.create", "token", str(row.id), before=None, after=token_record(row)
    )
    return row, value


def revoke_audited(session: Session, token_id: int) -> AdminToken | None:
    row = session.get(AdminToken, token_id)
    if row is None:
        return None
    before = token_record(row)
    revoke_token(session, token_id)
    audit.record(
        session, "token.revoke", "token", str(row.id), before=before, after=token_record(row)
    )
    return row
