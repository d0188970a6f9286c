"""Booking the inbox: claim due events, ask Stripe, book, record; retry with backoff.

The outbox's pattern (`mail.sender`): a booker *claims* a batch of due `pending` events in one
short transaction by pushing their `next_attempt_at` a lease ahead (PostgreSQL selects them
`FOR UPDATE SKIP LOCKED`, so two bookers never claim the same row; SQLite's single writer
serialises claims). For each it gathers what Stripe says (no transaction open: a slow Stripe
holds no database lock), then books it in one transaction that first re-reads the row, so an
event is booked once even if a lease ran out. A booker that dies mid-batch leaves its events
to be claimed again when the lease ends; booking is idempotent, so that is safe. A booker
that lost the database mid-batch (a restart) could not even record the failure: it keeps the
ids it holds and gives their leases back at its next pass, so they wait seconds, not the lease.

When Stripe cannot be asked, or the database or a bug fails the booking, `attempts` grows,
`last_error` keeps a short reason and the event waits `min(2**attempts × 5 s, 1 h)`; after
MAX_ATTEMPTS it is `dead`: visible in /admin/webhooks and /metrics, and `donations webhooks
retry` (or the page's button) puts it back. Stripe's own retries never come into it: the
delivery was acknowledged when the event was stored.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from donations import observability
from donations.background import BackgroundLoop
from donations.db import Database, utcnow
from donations.ledger import booking
from donations.mail.outbox import SENDER
from donations.mail.receipts import queue_receipt
from donations.stripe import GatewayError, StripeGateway
from donations.webhooks.models import BOOKED, DEAD, PENDING, StripeEvent

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20  # about 14 hours of backoff
POLL_SECONDS = 5.0
BATCH = 20
CONCURRENCY = 8  # events of a batch gathered at once (each waits on Stripe's round trips)
LEASE = timedelta(minutes=2)  # longer than one event's Stripe round trips (20 s timeouts)
MAX_BACKOFF = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """How long an event waits after its `attempts`-th failure."""
    return min(timedelta(seconds=5 * 2 ** min(attempts - 1, 20)), MAX_BACKOFF)


@dataclass
class BookReport:
    booked: int = 0
    deferred: int = 0
    dead: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def claim_due(session: Session, now: datetime, limit: int) -> list[str]:
    """Ids of up to `limit` due pending events, leased to the caller, oldest first."""
    query = (
        select(StripeEvent.id)
        .where(StripeEvent.status == PENDING, StripeEvent.next_attempt_at <= now)
        .order_by(StripeEvent.next_attempt_at, StripeEvent.received_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(StripeEvent).where(StripeEvent.id.in_(ids)).values(next_attempt_at=now + LEASE)
        )
    return ids


def inbox_counts(session: Session, now: datetime | None = None) -> dict[str, float]:
    """Pending and dead events, and how long the oldest pending one has waited (seconds)."""
    rows = dict(
        session.execute(
            select(StripeEvent.status, func.count())
            .where(StripeEvent.status.in_([PENDING, DEAD]))
            .group_by(StripeEvent.status)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(StripeEvent.received_at)).where(StripeEvent.status == PENDING)
    )
    age = ((now or utcnow()) - oldest).total_seconds() if oldest is not None else 0.0
    return {
        "pending": float(rows.get(PENDING, 0)),
        "dead": float(rows.get(DEAD, 0)),
        "oldest_pending_seconds": max(age, 0.0),
    }


def retry(session: Session, event_ids: list[str] | None = None) -> int:
    """Put dead events (all, or these) back in the queue, due now; answers how many."""
    query = update(StripeEvent).where(StripeEvent.status == DEAD)
    if event_ids is not None:
        query = query.where(StripeEvent.id.in_(event_ids))
    result = session.execute(
        query.values(status=PENDING, attempts=0, next_attempt_at=utcnow(), last_error=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class WebhookBooker(BackgroundLoop):
    """Books due inbox events: on demand (`book_due`) or from a lazily started thread."""

    thread_name = "webhook-booker"

    def __init__(
        self,
        db: Database,
        gateway: StripeGateway,
        *,
        mail: Any = None,
        poll_seconds: float = POLL_SECONDS,
        concurrency: int = CONCURRENCY,
    ) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.db = db
        self.gateway = gateway
        self.mail = mail  # the sender that sends the receipts this booker queues
        self.concurrency = concurrency
        # Events this booker claimed but could not book nor record as failed (the database
        # was gone): their leases are given back at the next pass that reaches the database.
        self._held: dict[str, datetime] = {}  # event id → the end of this booker's lease
        self._held_lock = threading.Lock()

    def work(self) -> BookReport:
        return self.book_due()

    def book_due(self, *, now: datetime | None = None, limit: int | None = None) -> BookReport:
        """Book everything due now (or up to `limit` events); answers what happened."""
        report = BookReport()
        handled = 0
        self._give_back(now or utcnow())
        while limit is None or handled < limit:
            batch = BATCH if limit is None else min(BATCH, limit - handled)
            at = now or utcnow()
            with self.db.transaction() as session:
                ids = claim_due(session, at, batch)
            lease = at + LEASE  # what claim_due set: the lease is ours while it still says so
            if len(ids) > 1 and self.concurrency > 1:
                # Gathering waits on Stripe: several events at once, each in its own thread.
                with ThreadPoolExecutor(min(self.concurrency, len(ids))) as pool:
                    outcomes = list(pool.map(functools.partial(self.book_one, lease=lease), ids))
            else:
                outcomes = [self.book_one(event_id, lease=lease) for event_id in ids]
            for outcome in outcomes:
                report.add(outcome)
            handled += len(ids)
            if len(ids) < batch:
                break
        return report

    def _give_back(self, now: datetime) -> None:
        """Make the events this booker still holds due again (the database is back)."""
        with self._held_lock:
            held = dict(self._held)
        if not held:
            return
        try:
            with self.db.transaction() as session:
                for event_id, lease in held.items():
                    # Only while the lease is still this booker's: not an event another
                    # booker claimed since, nor one whose failure was recorded with a backoff.
                    session.execute(
                        update(StripeEvent)
                        .where(
                            StripeEvent.id == event_id,
                            StripeEvent.status == PENDING,
                            StripeEvent.next_attempt_at == lease,
                        )
                        .values(next_attempt_at=now)
                    )
        except DBAPIError as exc:
            log.warning(
                "webhook booker: %d held event(s) wait for the database: %s", len(held), exc
            )
            return
        with self._held_lock:
            for event_id in held:
                self._held.pop(event_id, None)
        log.info("webhook booker: %d held event(s) due again", len(held))

    def book_one(self, event_id: str, *, lease: datetime | None = None) -> str:
        """Gather and book one claimed event: "booked" | "deferred" | "dead" | "skipped".
        `lease`: when the claim that handed it over ends."""
        try:
            return self._book_one(event_id)
        except (OperationalError, InterfaceError) as exc:
            # The database went away (even recording the failure failed): keep the lease in
            # mind and give it back at the next pass rather than leave the event for LEASE.
            if lease is None:
                raise
            with self._held_lock:
                self._held[event_id] = lease
            log.warning("webhook %s: the database is unavailable, retried soon: %s", event_id, exc)
            return "deferred"

    def _book_one(self, event_id: str) -> str:
        with self.db.sessions() as session:
            row = session.get(StripeEvent, event_id)
            if row is None or row.status != PENDING or row.payload is None:
                return "skipped"
            event: dict[str, Any] = json.loads(row.payload)
        try:
            facts = booking.gather(self.gateway, event["type"], event["data"]["object"])
        except GatewayError as exc:
            return self._failed(event, f"stripe: {exc}")
        except Exception as exc:  # a bug must not stop the other events
            log.exception("webhook %s (%s): gathering failed", event_id, event["type"])
            return self._failed(event, f"unexpected: {type(exc).__name__}: {exc}")
        try:
            with self.db.transaction() as session:
                row = session.scalar(
                    select(StripeEvent).where(StripeEvent.id == event_id).with_for_update()
                )
                if row is None or row.status != PENDING:
                    return "skipped"  # another booker got there while the lease ran out
                if self.mail is not None:
                    session.info[SENDER] = self.mail
                books = booking.Books(session, event_id=event_id, on_payment=queue_receipt)
                outcome = books.apply(facts)
                row.status, row.outcome, row.booked_at = BOOKED, outcome[:500], utcnow()
                row.payload, row.last_error, row.next_attempt_at = None, None, None
        except Exception as exc:
            log.warning("webhook %s (%s): booking failed: %s", event_id, event["type"], exc)
            return self._failed(event, f"booking: {type(exc).__name__}: {str(exc)[:200]}")
        observability.webhook_booked(event, outcome)
        log.info("webhook %s (%s): %s", event_id, event["type"], outcome)
        return "booked"

    def _failed(self, event: dict[str, Any], error: str) -> str:
        """Count a failed attempt; the event waits (or is dead after MAX_ATTEMPTS)."""
        with self.db.transaction() as session:
            row = session.scalar(
                select(StripeEvent).where(StripeEvent.id == event["id"]).with_for_update()
            )
            if row is None or row.status != PENDING:
                return "skipped"
            row.attempts += 1
            row.last_error = error[:500]
            if row.attempts >= MAX_ATTEMPTS:
                row.status, row.next_attempt_at = DEAD, None
                log.error(
                    "webhook %s (%s) dead after %d attempts: %s",
                    row.id,
                    row.type,
                    row.attempts,
                    error,
                )
                outcome = "dead"
            else:
                row.next_attempt_at = utcnow() + backoff(row.attempts)
                log.warning(
                    "webhook %s (%s) not booked (attempt %d, retried in %s): %s",
                    row.id,
                    row.type,
                    row.attempts,
                    backoff(row.attempts),
                    error,
                )
                outcome = "deferred"
        observability.webhook_deferred(str(event.get("type", "")), dead=outcome == "dead")
        return outcome

    def drain(self, *, timeout: float = 30.0) -> BookReport:
        """Book until no event is left that was never tried (due now, or in another booker's
        hands): tests, `donations webhooks book`. Events waiting out a backoff stay."""
        total = BookReport()
        deadline = time.monotonic() + timeout
        while True:
            report = self.book_due()
            for name in ("booked", "deferred", "dead", "skipped"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            if report.booked or report.deferred or report.dead or report.skipped:
                if time.monotonic() > deadline:  # (the database failing at every pass)
                    return total
                continue
            with self.db.sessions() as session:
                # Not yet tried at all: due (another booker may be claiming it this instant,
                # which PostgreSQL's SKIP LOCKED hid from this one) or in another's hands.
                busy = session.scalar(
                    select(func.count()).where(
                        StripeEvent.status == PENDING, StripeEvent.attempts == 0
                    )
                )
            if not busy or time.monotonic() > deadline:
                return total
            time.sleep(0.02)
