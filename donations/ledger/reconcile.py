"""Reconciliation: every balance transaction at Stripe against the books, by its `net`.

Stripe's event list reaches only 30 days back and a delivery can be lost (the emulator never
retries one), so this walks the balance transactions themselves, created since a date
(Stripe's `created` filter), and compares each one's `net`, in its own currency, with what
the books moved `assets:stripe_balance` by for it. Each difference is booked the way the
webhooks book it (the same gather and rules, from the transaction's source: a charge with
its refunds and invoice, a refund, a dispute, a payout), in a transaction that is rolled back
unless `apply` is set; what no rule explains is corrected against `equity:reconciliation`, and
a transaction that is not about contributions at all (another product's charge on the same
account, Stripe's own fees, a reserve) is booked aside (`suspense:other_stripe_activity`, or
Stripe's fees), so that the books' Stripe balance stays Stripe's.
Payouts are also re-read for their status (paid, failed, canceled), which moves money between
the accounts in transit and the bank without a balance transaction of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from donations.db import Database
from donations.ledger import booking, journal
from donations.stripe import StripeGateway
from donations.stripe.facts import BalanceTxn

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
    transactions_seen: int = 0

    @property
    def unresolved(self) -> list[Difference]:
        return [d for d in self.differences if not d.fixed]


def _check(
    db: Database,
    gateway: StripeGateway,
    txn: BalanceTxn,
    apply: bool,
    on_payment: booking.OnPayment | None,
) -> Difference | None:
    with db.sessions() as session:
        booked = journal.balance_transaction_net(session, txn.id)
    if booked == txn.net and not txn.type.startswith("payout"):
        return None
    facts = booking.gather_for_balance_transaction(gateway, txn)
    source = txn.source_id or txn.id
    with db.sessions() as session:
        transaction = session.begin()
        try:
            books = booking.Books(session, on_payment=on_payment)
            outcome = books.apply(facts)
            after = journal.balance_transaction_net(session, txn.id)
            what = f"{txn.type} {'not booked' if booked is None else 'differs'}"
            if after is None and not books.posted:
                if journal.has_unlinked_entries(session, source):
                    # Booked under its rule's key before entries named their balance
                    # transaction (migration 0006): nothing to add, nothing to correct.
                    return None
                if outcome.startswith("ignored"):
                    # Not about a contribution: booked aside, so the balance stays whole.
                    books.other_activity(txn)
                    after = txn.net
                    what = f"{txn.type} not a contribution"
            if not books.posted and after == txn.net:
                return None
            diff = Difference(
                what, source, f"{txn.id}: Stripe net {txn.net} {txn.currency}, ledger {booked or 0}"
            )
            if books.posted:
                diff.detail += f" → books {', '.join(books.posted)}"
            if after is not None and after != txn.net:
                books.correct(txn, txn.net - after, txn.created)
                diff.detail += f" → correction of {txn.net - after}"
            if apply:
                transaction.commit()
                diff.fixed = True
            return diff
        finally:
            if transaction.is_active:
                transaction.rollback()


def reconcile(
    db: Database,
    gateway: StripeGateway,
    since: datetime,
    *,
    apply: bool = False,
    progress: Progress = lambda _line: None,
    on_payment: booking.OnPayment | None = None,
) -> Report:
    """Compare every balance transaction created since `since` (UTC) with the books."""
    report = Report()
    for txn in gateway.balance_transactions(since):
        report.transactions_seen += 1
        if report.transactions_seen % 100 == 0:
            progress(
                f"balance transactions checked: {report.transactions_seen}, "
                f"differences: {len(report.differences)}"
            )
        diff = _check(db, gateway, txn, apply, on_payment)
        if diff is not None:
            report.differences.append(diff)
    progress(
        f"balance transactions checked: {report.transactions_seen}, "
        f"differences: {len(report.differences)}"
    )
    return report
