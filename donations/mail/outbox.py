"""Queueing email in the caller's transaction (see donations.mail.models.OutboxEmail).

Callers only enqueue; the sender (donations.mail.sender) renders and delivers after commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from donations.db import utcnow
from donations.mail.models import OutboxEmail

KINDS = ("receipt", "renewal_receipt", "sign_in_link", "subscription_changed", "statement")


def enqueue(
    session: Session,
    *,
    kind: str,
    dedupe_key: str,
    donor_id: str | None,
    contribution_id: str | None = None,
    lang: str | None = None,
    payload: dict[str, Any] | None = None,
    send_after: datetime | None = None,
) -> bool:
    """Queue one message unless one with this dedupe key exists; answers whether it queued.

    A savepoint makes a concurrent duplicate (two deliveries of the same webhook) harmless.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    if session.scalar(select(OutboxEmail.id).where(OutboxEmail.dedupe_key == dedupe_key)):
        return False
    row = OutboxEmail(
        kind=kind,
        dedupe_key=dedupe_key,
        donor_id=donor_id,
        contribution_id=contribution_id,
        lang=(lang or "en")[:8],
        payload=payload,
        send_after=send_after or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True
