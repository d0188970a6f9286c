"""Queueing email in the caller's transaction (see donations.mail.models.OutboxEmail).

Callers only enqueue; the sender (donations.mail.sender) renders and delivers after commit.
The app's sender is woken by the commit itself (no call needed); `services().mail.wake()`
nudges it by hand.

Kinds and their payloads (everything else is read from the donor and contribution rows):
- receipt, renewal_receipt: contribution_id set; payload optional, written by the booking:
  {"charged": minor, "gift": minor, "covered": minor, "currency": "usd", "paid_at": ISO}.
- sign_in_link: payload {"url": "https://…", "expires_minutes": 15} (cleared once sent).
- subscription_changed: payload {"change": "canceled" | "cancel_at_period_end" | "resumed" |
  "amount" | "interval" | "card_updated", "amount": minor, "currency": "usd",
  "interval": "month" | "year", "effective": "YYYY-MM-DD"}: every key but "change" optional.
- statement: reserved; the sender has no template for it yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from donations.db import utcnow
from donations.mail.models import OutboxEmail
from donations.mail.render import RENDERED_KINDS

# session.info flag: this transaction queued mail; the app's MailSender wakes after its commit.
ENQUEUED = "donations.mail_enqueued"
# session.info: the MailSender that is to send what this transaction queues, when the work
# runs outside a request (a webhook booker): apps that share a database wake only their own.
SENDER = "donations.mail_sender"

# What can be queued is what the renderer can write (donations.mail.render).
KINDS = RENDERED_KINDS


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
    session.info[ENQUEUED] = True
    return True
