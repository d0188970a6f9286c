"""Reconciliation: compare Stripe (events and balance transactions) with the ledger.

Stripe — and the emulator, which never retries a delivery — can leave an event unbooked. This
finds every difference; with `apply` it books what is missing through the same handlers the
webhook uses, each in its own transaction, so running it twice finds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from donations.db import Database
from donations.ledger import accounts, journal
from donations.ledger.models import JournalEntry, JournalLine
from donations.stripe_gateway import GatewayError, StripeGateway
from donations.webhooks.handlers import HANDLED_TYPES, Books, process_event
from donations.webhooks.models import StripeEvent

Progress = Callable[[str], None]


@dataclass
class Difference:
    what: str
    stripe_id: str
    detail: str
    fixed: bool = False


@dataclass
class Report:
    differences: list[Difference] = field(default_factory=list)
    events_seen: int = 0
    transactions_seen: int = 0

    @property
    def unresolved(self) -> list[Difference]:
        return [d for d in self.differences if not d.fixed]


def _entry_amount(db: Database, key: str) -> int | None:
    """The Stripe-balance movement of a posted entry, or None when it is not posted."""
    with db.sessions() as session:
        if not journal.is_posted(session, key):
            return None
        total = session.scalar(
            select(func.coalesce(func.sum(JournalLine.amount), 0))
            .join(JournalEntry)
            .where(JournalEntry.key == key, JournalLine.account == accounts.STRIPE_BALANCE)
        )
        return int(total or 0)


def reconcile(
    db: Database,
    gateway: StripeGateway,
    since: datetime,
    *,
    apply: bool = False,
    progress: Progress = lambda _line: None,
) -> Report:
    report = Report()

    def fix(diff: Difference, action: Callable[[Books], str]) -> None:
        report.differences.append(diff)
        if not apply:
            return
        try:
            with db.transaction() as session:
                outcome = action(Books(session, gateway, event_id=None))
            diff.fixed = not outcome.startswith("ignored")
            diff.detail += f" → {outcome}"
        except GatewayError as exc:
            diff.detail += f" → not booked: {exc}"

    # 1. Events Stripe sent (or tried to) that the inbox never recorded.
    for event in gateway.list_events(since):
        report.events_seen += 1
        if report.events_seen % 100 == 0:
            progress(f"events checked: {report.events_seen}")
        if event.get("type") not in HANDLED_TYPES:
            continue
        with db.sessions() as session:
            known = session.get(StripeEvent, event["id"]) is not None
        if known:
            continue
        diff = Difference("event not processed", event["id"], event["type"])
        report.differences.append(diff)
        if apply:
            try:
                with db.transaction() as session:
                    outcome = process_event(session, gateway, event, source="reconcile")
                diff.fixed = True
                diff.detail += f" → {outcome}"
            except GatewayError as exc:
                diff.detail += f" → not processed: {exc}"
    progress(f"events checked: {report.events_seen}")

    # 2. Money that moved at Stripe but is missing from (or different in) the books.
    for txn in gateway.list_balance_transactions(since):
        report.transactions_seen += 1
        if report.transactions_seen % 100 == 0:
            progress(f"balance transactions checked: {report.transactions_seen}")
        source = txn.source_id or ""
        if txn.type in ("charge", "payment") and source.startswith(("ch_", "py_")):
            key, expected = f"payment:{source}", txn.amount
            booked = _entry_amount(db, key)
            if booked is None:
                fix(
                    Difference("payment not booked", source, f"{txn.amount} {txn.currency}"),
                    lambda books, s=source: books.book_charge(s),
                )
                continue
            if booked != expected:
                report.differences.append(
                    Difference(
                        "payment amount differs",
                        source,
                        f"Stripe {expected}, ledger {booked} {txn.currency}",
                    )
                )
        elif txn.type in ("refund", "payment_refund") and source.startswith(("re_", "pyr_")):
            if _entry_amount(db, f"refund:{source}") is None:
                fix(
                    Difference("refund not booked", source, f"{-txn.amount} {txn.currency}"),
                    lambda books, s=source: books.book_refund_object(s),
                )
                continue
        elif txn.type == "payout" and source.startswith("po_"):
            if _entry_amount(db, f"payout:{source}") is None:
                fix(
                    Difference("payout not booked", source, f"{-txn.amount} {txn.currency}"),
                    lambda books, s=source: books.book_payout(s, {"id": s}),
                )
                continue
        elif txn.type == "adjustment" and source.startswith("dp_"):
            if txn.amount < 0 and _entry_amount(db, f"dispute:{source}") is None:
                # Disputes can only be booked from their event (re-processed in step 1).
                report.differences.append(
                    Difference("dispute not booked", source, f"{-txn.amount} {txn.currency}")
                )
            continue
        else:
            continue
        if txn.fee and _entry_amount(db, f"fee:{txn.id}") is None:
            fix(
                Difference("Stripe fee not booked", txn.id, f"{txn.fee} {txn.currency}"),
                lambda books, t=txn: (
                    books.book_fee(
                        t.id, None, fee=t.fee, currency=t.currency, occurred_at=t.created
                    )
                    or "booked fee"
                ),
            )
    progress(f"balance transactions checked: {report.transactions_seen}")
    return report
