"""The audit log: every change to campaigns, settings and tokens, with who, when, before, after."""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from donations.admin.models import AuditEntry


def current_actor(default: str = "cli") -> str:
    """The signed-in user or token behind this request; `default` outside a request."""
    if has_request_context():
        principal = g.get("principal")
        if principal is not None:
            return str(principal.actor)
    return default


def record(
    session: Session,
    action: str,
    target_type: str,
    target_id: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor: str | None = None,
) -> AuditEntry | None:
    """Append one entry, in the caller's transaction (so it exists exactly when the change does).
    A change that changes nothing is not recorded."""
    if before == after:
        return None
    entry = AuditEntry(
        actor=actor or current_actor(),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
        request_id=g.get("request_id") if has_request_context() else None,
    )
    session.add(entry)
    session.flush()
    return entry


def recent(
    session: Session,
    *,
    limit: int = 100,
    before_id: int | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
) -> list[AuditEntry]:
    """Newest first, paged by id."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    if target_type:
        q = q.where(AuditEntry.target_type == target_type)
    if target_id:
        q = q.where(AuditEntry.target_id == target_id)
    return list(session.scalars(q))
