"""Sending the outbox: claim due rows, render, deliver, mark; retry with backoff.

How several processes share the work: a sender *claims* a batch of due rows in one short
transaction by pushing their `send_after` a lease ahead (PostgreSQL selects them
`FOR UPDATE SKIP LOCKED`, so two senders never claim the same row; SQLite has a single writer,
whose `BEGIN IMMEDIATE` serialises claims). It then renders and delivers each message outside
any transaction, and records the outcome in another short one. A sender that dies mid-batch
leaves its rows to be claimed again when the lease ends: delivery is at least once, and twice
only if the process dies between the SMTP server's acceptance and the commit.

On failure `attempts` grows, `last_error` keeps a short reason (never a secret) and the row
waits `min(2**attempts minutes, 6 h)`; after MAX_ATTEMPTS it is left unsent, visible to
operators (`donations mail send` counts it). Mail for an erased donor (erased_at set, or no
email) is not sent: the row is marked sent with last_error "donor erased" and its payload
cleared, rather than deleted, so that its dedupe key still stops a replayed webhook from
queueing it again.

In the web app a background thread sends (`donations.background`): started by the first
`wake()` (after a commit that queued mail: see `outbox.enqueue`), then polling every
POLL_SECONDS, stopped at exit.
`donations mail send` / `donations mail worker` do the same from the command line.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from donations.background import BackgroundLoop
from donations.brand import from_settings
from donations.checkout.models import Contribution, Donor, Subscription
from donations.db import Database, utcnow
from donations.mail.models import OutboxEmail
from donations.mail.outbox import ENQUEUED, SENDER
from donations.mail.render import Newsroom, Receipt, RenderError, compose, render
from donations.mail.transport import DeliveryError, Transport, mask_address, transport_for
from donations.settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
POLL_SECONDS = 5.0
BATCH = 25
LEASE = timedelta(minutes=10)  # longer than any one delivery (SMTP timeouts are 20 s)
MAX_BACKOFF = timedelta(hours=6)
DONOR_ERASED = "donor erased"


def backoff(attempts: int) -> timedelta:
    """How long a message waits after its `attempts`-th failure."""
    return min(timedelta(minutes=2 ** min(attempts, 20)), MAX_BACKOFF)


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    dropped: int = 0

    def add(self, outcome: str) -> None:
        if outcome in ("sent", "failed", "dropped"):
            setattr(self, outcome, getattr(self, outcome) + 1)


class Dropped(Exception):
    """The message must not go (the donor was erased)."""


def claim_due(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of up to `limit` due rows, leased to the caller (see the module docstring)."""
    query = (
        select(OutboxEmail.id)
        .where(
            OutboxEmail.sent_at.is_(None),
            OutboxEmail.send_after <= now,
            OutboxEmail.attempts < MAX_ATTEMPTS,
        )
        .order_by(OutboxEmail.send_after, OutboxEmail.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(OutboxEmail).where(OutboxEmail.id.in_(ids)).values(send_after=now + LEASE)
        )
    return ids


def waiting(session: Session) -> tuple[int, int]:
    """(messages still to send, messages given up after MAX_ATTEMPTS)."""
    unsent = OutboxEmail.sent_at.is_(None)
    pending = session.scalar(
        select(func.count()).where(unsent, OutboxEmail.attempts < MAX_ATTEMPTS)
    )
    given_up = session.scalar(
        select(func.count()).where(unsent, OutboxEmail.attempts >= MAX_ATTEMPTS)
    )
    return int(pending or 0), int(given_up or 0)


def newsroom_for(settings: Settings) -> Newsroom:
    """Who the mail is from: the newsroom's brand, as every page shows it."""
    brand = from_settings(settings)
    return Newsroom(
        name=brand.name,
        address=settings.newsroom_address,
        account_url=f"{settings.public_base_url.rstrip('/')}/account",
        # Optional setting: a newsroom that issues tax receipts words its own line.
        tax_note=settings.receipt_tax_note or None,
        logo_url=brand.logo_url,
        accent=brand.accent,
        support_email=brand.support_email,
    )


def receipt_for(session: Session, row: OutboxEmail, contribution: Contribution) -> Receipt:
    """The booked figures (from the payload the booking wrote), else the contribution's."""
    payload = row.payload or {}
    paid_at = contribution.succeeded_at or contribution.created_at
    if isinstance(payload.get("paid_at"), str):
        with contextlib.suppress(ValueError):
            paid_at = datetime.fromisoformat(payload["paid_at"])
    next_charge = None
    if contribution.stripe_subscription_id:
        sub = session.get(Subscription, contribution.stripe_subscription_id)
        if (
            sub is not None
            and sub.status in ("active", "trialing")
            and not sub.cancel_at_period_end
            and sub.current_period_end is not None
            and sub.current_period_end > paid_at
        ):
            next_charge = sub.current_period_end.date()
    return Receipt(
        number=contribution.id,
        currency=str(payload.get("currency") or contribution.currency),
        charged=int(payload.get("charged", contribution.total)),
        gift=int(payload.get("gift", contribution.amount)),
        covered=int(payload.get("covered", contribution.fee_covered)),
        frequency=contribution.frequency,
        paid_at=paid_at,
        renewal=row.kind == "renewal_receipt",
        next_charge=next_charge,
    )


def message_for(session: Session, row: OutboxEmail, settings: Settings) -> EmailMessage:
    """Render one outbox row into a message; Dropped when its donor was erased."""
    donor = session.get(Donor, row.donor_id) if row.donor_id else None
    if donor is None or donor.erased_at is not None or not donor.email:
        raise Dropped(DONOR_ERASED)
    receipt = None
    if row.kind in ("receipt", "renewal_receipt"):
        contribution = session.get(Contribution, row.contribution_id or "")
        if contribution is None:
            raise RenderError("the contribution is gone")
        receipt = receipt_for(session, row, contribution)
    rendered = render(
        row.kind,
        row.lang,
        newsroom_for(settings),
        donor_name=donor.name,
        receipt=receipt,
        payload=row.payload,
    )
    return compose(
        rendered,
        to=donor.email,
        to_name=donor.name,
        mail_from=settings.mail_from,
        reply_to=settings.mail_reply_to or None,
        lang=row.lang,
        kind=row.kind,
    )


class MailSender(BackgroundLoop):
    """Sends due outbox rows: on demand (`send_due`) or from a lazily started thread."""

    thread_name = "mail-sender"

    def __init__(
        self,
        db: Database,
        settings: Settings,
        transport: Transport | None = None,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.db = db
        self.settings = settings
        self.transport = transport or transport_for(settings)
        # Wake after any commit through this database that queued mail (outbox.enqueue marks
        # the session), so callers need no mail code of their own.
        event.listen(db.sessions, "after_commit", self._after_commit)
        self._listening = True

    def work(self) -> SendReport:
        return self.send_due()

    def _after_commit(self, session: Session) -> None:
        if ENQUEUED not in session.info:
            return
        # Inside a request, only that app's sender wakes (apps may share a Database, as the
        # test suite's do), and so in a transaction that names its sender (a webhook
        # booker's); elsewhere (a command) any sender on the database may.
        named = session.info.get(SENDER)
        if named is not None:
            if named is not self:
                return
        elif has_app_context():
            own = current_app.extensions.get("donations")
            if own is not None and getattr(own, "mail", None) is not self:
                return
        session.info.pop(ENQUEUED, None)
        self.wake()

    def closed(self) -> None:
        if self._listening:
            self._listening = False
            event.remove(self.db.sessions, "after_commit", self._after_commit)

    # sending ----------------------------------------------------------------------------------
    def send_due(self, *, now: datetime | None = None, limit: int | None = None) -> SendReport:
        """Send everything due now (or up to `limit` messages); answers what happened."""
        report = SendReport()
        handled = 0
        while limit is None or handled < limit:
            batch = BATCH if limit is None else min(BATCH, limit - handled)
            at = now or utcnow()
            with self.db.transaction() as session:
                ids = claim_due(session, at, batch)
            for row_id in ids:
                report.add(self.send_one(row_id, now=now))
            handled += len(ids)
            if len(ids) < batch:
                break
        return report

    def send_one(self, row_id: int, *, now: datetime | None = None) -> str:
        """Render and deliver one claimed row: "sent" | "failed" | "dropped" | "skipped"."""
        error: str | None = None
        message: EmailMessage | None = None
        with self.db.transaction() as session:
            row = session.get(OutboxEmail, row_id)
            if row is None or row.sent_at is not None:
                return "skipped"
            kind = row.kind
            try:
                message = message_for(session, row, self.settings)
            except Dropped as dropped:
                self._finish(session, row_id, now, note=str(dropped))
                log.info("mail %s (%s) dropped: %s", row_id, kind, dropped)
                return "dropped"
            except RenderError as exc:
                error = f"render: {exc}"
        if message is not None:
            try:
                self.transport.send(message)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a bug must not stop the other messages
                log.exception("mail %s (%s): unexpected error while sending", row_id, kind)
                error = f"unexpected: {type(exc).__name__}"
        with self.db.transaction() as session:
            if error is None:
                self._finish(session, row_id, now)
                return "sent"
            self._failed(session, row_id, kind, error, now, message)
        return "failed"

    @staticmethod
    def _finish(
        session: Session, row_id: int, now: datetime | None, note: str | None = None
    ) -> None:
        session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == row_id, OutboxEmail.sent_at.is_(None))
            .values(sent_at=now or utcnow(), payload=None, last_error=note)
        )

    @staticmethod
    def _failed(
        session: Session,
        row_id: int,
        kind: str,
        error: str,
        now: datetime | None,
        message: Any,
    ) -> None:
        attempts = session.scalar(
            select(OutboxEmail.attempts).where(OutboxEmail.id == row_id).with_for_update()
        )
        if attempts is None:
            return  # the row was deleted meanwhile
        attempts += 1
        session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == row_id)
            .values(
                attempts=attempts,
                last_error=error[:300],
                send_after=(now or utcnow()) + backoff(attempts),
            )
        )
        to = mask_address(str(message["To"])) if message is not None else "?"
        if attempts >= MAX_ATTEMPTS:
            log.error(
                "mail %s (%s) to %s given up after %d attempts: %s",
                row_id,
                kind,
                to,
                attempts,
                error,
            )
        else:
            log.warning(
                "mail %s (%s) to %s not sent (attempt %d, retried in %s): %s",
                row_id,
                kind,
                to,
                attempts,
                backoff(attempts),
                error,
            )
