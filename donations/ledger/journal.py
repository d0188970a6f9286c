"""Posting entries to the journal, once each, and reading balances back."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from donations.ledger.models import JournalEntry, JournalLine
from donations.ledger.postings import Lines
from donations.reports import rollups


class UnbalancedEntry(ValueError):
    """An entry whose lines do not sum to zero."""


def is_posted(session: Session, key: str) -> bool:
    return session.scalar(select(JournalEntry.id).where(JournalEntry.key == key)) is not None


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
    memo: str = "",
) -> bool:
    """Post one balanced entry unless an entry with this key exists; answers whether it posted.

    The unique key makes concurrent posts of the same Stripe object safe: the loser's insert
    fails inside a savepoint and the entry counts as already posted.
    """
    if not lines:
        return False
    if sum(amount for _, amount in lines) != 0:
        raise UnbalancedEntry(f"entry {key} does not balance: {lines}")
    if any(not isinstance(amount, int) for _, amount in lines):
        raise TypeError("journal amounts are integers of minor units")
    if is_posted(session, key):
        return False
    entry = JournalEntry(
        key=key,
        kind=kind,
        currency=currency,
        occurred_at=occurred_at,
        stripe_object_id=stripe_object_id,
        contribution_id=contribution_id,
        event_id=event_id,
        memo=memo[:200],
        lines=[JournalLine(account=acc, currency=currency, amount=amt) for acc, amt in lines],
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
