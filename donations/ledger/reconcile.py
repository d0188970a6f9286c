"""Reconciliation: compare Stripe (events and balance transactions) with the ledger.

Stripe — and the emulator, which never retries a delivery — can leave an event unbooked. This
finds every difference; with `apply` it books what is missing through the same handlers the
webhook uses, each in its own transaction, so running it twice finds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

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


def _concerns_us(event: dict[str, Any]) -> bool:
    """Whether an event is about our money: it carries a contribution id, or it moves the
    account's own balance (payouts, disputes)."""
    if event["type"].startswith(("payout.", "charge.dispute.")):
        return True
    obj = event["data"]["object"]
    if (obj.get("metadata") or {}).get("contribution_id"):
        return True
    lines = (obj.get("lines") or {}).get("data") or []
    return any((line.get("metadata") or {}).get("contribution_id") for line in lines)


def _ours(db: Database, gateway: StripeGateway, charge_id: str | None) -> bool:
    """Whether a charge belongs to one of our contributions (an account may take others)."""
    if not charge_id:
        return False
    charge = gateway.retrieve_charge(charge_id)
    with db.sessions() as session:
        books = Books(session, gateway, event_id=None)
        if charge.invoice_id:
            invoice = gateway.retrieve_invoice(charge.invoice_id)
            found = books.subscription_contribution(
                invoice.subscription_id, invoice.metadata, invoice.customer_id
            )
            return found is not None
        return books.contribution_for_charge(charge) is not None


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
        if not apply:
            if _concerns_us(event):
                report.differences.append(
                    Difference("event not processed", event["id"], event["type"])
                )
            continue
        try:
            with db.transaction() as session:
                outcome = process_event(session, gateway, event, source="reconcile")
        except GatewayError as exc:
            report.differences.append(
                Difference("event not processed", event["id"], f"{event['type']} → {exc}")
            )
            continue
        if not outcome.startswith(("ignored", "acknowledged")):
            report.differences.append(
                Difference(
                    "event not processed", event["id"], f"{event['type']} → {outcome}", fixed=True
                )
            )
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
            if booked is None and not _ours(db, gateway, source):
                continue  # not a contribution: someone else's charge on the same account
            if booked is None:
                fix(
                    Difference("payment not booked", source, f"{txn.amount} {txn.currency}"),
                    partial(Books.book_charge, charge_id=source),
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
                if not _ours(db, gateway, gateway.retrieve_refund(source).charge_id):
                    continue
                fix(
                    Difference("refund not booked", source, f"{-txn.amount} {txn.currency}"),
                    partial(Books.book_refund_object, refund_id=source),
                )
                continue
        elif txn.type == "payout" and source.startswith("po_"):
            if _entry_amount(db, f"payout:{source}") is None:
                fix(
                    Difference("payout not booked", source, f"{-txn.amount} {txn.currency}"),
                    partial(Books.book_payout, payout_id=source, obj={"id": source}),
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
                partial(Books.book_fee_of, txn=txn),
            )
    progress(f"balance transactions checked: {report.transactions_seen}")
    return report
