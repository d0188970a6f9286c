"""Posting entries to the journal, once each, and reading balances back."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from donations.ledger import rollups
from donations.ledger.accounts import STRIPE_BALANCE
from donations.ledger.models import JournalEntry, JournalLine
from donations.ledger.postings import Lines


class UnbalancedEntry(ValueError):
    """An entry whose lines do not sum to zero in some currency."""


def lock(session: Session, name: str) -> None:
    """Serialise the transactions that book one Stripe object with no row of its own (a
    payout): a transaction-scoped advisory lock on PostgreSQL; SQLite's writers are serialised
    already (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:n, 0))"), {"n": name})


def lines_of(session: Session, key: str) -> dict[str, int]:
    """An entry's lines by account (empty when it is not posted)."""
    rows = session.execute(
        select(JournalLine.account, func.sum(JournalLine.amount))
        .join(JournalEntry)
        .where(JournalEntry.key == key)
        .group_by(JournalLine.account)
    ).all()
    return {account: int(total) for account, total in rows}


def is_posted(session: Session, key: str) -> bool:
    return session.scalar(select(JournalEntry.id).where(JournalEntry.key == key)) is not None


def unbalanced_currencies(lines: Lines) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for _, currency, amount in lines:
        totals[currency] += amount
    return {currency: total for currency, total in totals.items() if total != 0}


def post(
    session: Session,
    *,
    key: str,
    kind: str,
    currency: str,
    occurred_at: datetime,
    stripe_object_id: str,
    lines: Lines,
    contribution_id: str | None = None,
    event_id: str | None = None,
    balance_transaction_id: str | None = None,
    memo: str = "",
) -> bool:
    """Post one entry, balanced in every currency, unless one with this key exists; answers
    whether it posted.

    The unique key makes concurrent posts of the same Stripe object safe: the loser's insert
    fails inside a savepoint and the entry counts as already posted.
    """
    if not lines:
        return False
    if any(not isinstance(amount, int) or isinstance(amount, bool) for *_, amount in lines):
        raise TypeError("journal amounts are integers of minor units")
    off = unbalanced_currencies(lines)
    if off:
        raise UnbalancedEntry(f"entry {key} does not balance in {off}: {lines}")
    if is_posted(session, key):
        return False
    entry = JournalEntry(
        key=key,
        kind=kind,
        currency=currency,
        occurred_at=occurred_at,
        stripe_object_id=stripe_object_id,
        balance_transaction_id=balance_transaction_id,
        contribution_id=contribution_id,
        event_id=event_id,
        memo=memo[:200],
        lines=[JournalLine(account=acc, currency=cur, amount=amt) for acc, cur, amt in lines],
    )
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
            rollups.add_entry(
                session,
                kind=kind,
                currency=currency,
                occurred_at=occurred_at,
                lines=lines,
                contribution_id=contribution_id,
            )
    except IntegrityError:
        # Another transaction posted the same key first: the books already have it.
        # Only a duplicate key is benign here; anything else is a real error.
        if not is_posted(session, key):
            raise
        return False
    return True


def account_total(
    session: Session, account: str, currency: str, *, contribution_id: str | None = None
) -> int:
    query = select(func.coalesce(func.sum(JournalLine.amount), 0)).where(
        JournalLine.account == account, JournalLine.currency == currency
    )
    if contribution_id is not None:
        query = query.join(JournalEntry).where(JournalEntry.contribution_id == contribution_id)
    return int(session.scalar(query) or 0)


def contribution_totals(session: Session, contribution_id: str) -> dict[tuple[str, str], int]:
    """Every account's total for one contribution's entries, by (account, currency)."""
    rows = session.execute(
        select(JournalLine.account, JournalLine.currency, func.sum(JournalLine.amount))
        .join(JournalEntry)
        .where(JournalEntry.contribution_id == contribution_id)
        .group_by(JournalLine.account, JournalLine.currency)
    ).all()
    return {(account, currency): int(total) for account, currency, total in rows}


def balance_transaction_net(session: Session, txn_id: str) -> int | None:
    """How much the books moved the Stripe balance for one balance transaction (None when
    nothing is booked against it)."""
    row = session.execute(
        select(
            func.count(JournalEntry.id.distinct()), func.coalesce(func.sum(JournalLine.amount), 0)
        )
        .select_from(JournalEntry)
        .outerjoin(
            JournalLine,
            (JournalLine.entry_id == JournalEntry.id) & (JournalLine.account == STRIPE_BALANCE),
        )
        .where(JournalEntry.balance_transaction_id == txn_id)
    ).one()
    return int(row[1]) if row[0] else None


def has_unlinked_entries(session: Session, stripe_object_id: str) -> bool:
    """Whether entries about this Stripe object move the Stripe balance without naming their
    balance transaction (booked before migration 0006 linked them)."""
    found = session.scalar(
        select(JournalEntry.id)
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .where(
            JournalEntry.stripe_object_id == stripe_object_id,
            JournalEntry.balance_transaction_id.is_(None),
            JournalLine.account == STRIPE_BALANCE,
        )
        .limit(1)
    )
    return found is not None


def trial_balance(session: Session) -> tuple[list[dict[str, object]], bool]:
    """Balance of every account per currency, and whether each currency sums to zero
    (from the daily rollup that journal.post keeps with every entry)."""
    daily = rollups.LedgerDaily
    rows = session.execute(
        select(daily.account, daily.currency, func.sum(daily.amount))
        .group_by(daily.account, daily.currency)
        .order_by(daily.currency, daily.account)
    ).all()
    per_currency: dict[str, int] = defaultdict(int)
    accounts = []
    for account, currency, balance in rows:
        per_currency[currency] += int(balance)
        accounts.append({"account": account, "currency": currency, "balance": int(balance)})
    return accounts, all(total == 0 for total in per_currency.values())
