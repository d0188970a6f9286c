"""The append-only double-entry journal, in minor units."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Base, utcnow


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Unique on the Stripe object that caused it, e.g. "payment:ch_…", "refund:re_…".
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    # The currency it happened in: the donor's for gifts, refunds and disputes, the
    # settlement currency for fees and payouts. Each line has its own (an entry may span two).
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime]  # when it happened at Stripe; reports use its UTC day
    stripe_object_id: Mapped[str] = mapped_column(String(64), index=True)
    # The balance transaction whose money this entry books (txn_…), if it moves Stripe's
    # balance: reconcile compares each transaction's `net` with its entries' balance lines.
    balance_transaction_id: Mapped[str | None] = mapped_column(String(64), index=True)
    contribution_id: Mapped[str | None] = mapped_column(ForeignKey("contributions.id"), index=True)
    event_id: Mapped[str | None] = mapped_column(String(64))
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[JournalLine]] = relationship(
        back_populates="entry", cascade="save-update", lazy="selectin"
    )

    __table_args__ = (Index("ix_journal_entries_kind_occurred_at", "kind", "occurred_at"),)


class JournalLine(Base):
    __tablename__ = "journal_lines"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # debit > 0, credit < 0

    entry: Mapped[JournalEntry] = relationship(back_populates="lines")

    __table_args__ = (Index("ix_journal_lines_account_currency", "account", "currency"),)


class AppendOnlyViolation(RuntimeError):
    """Journal rows are never edited or deleted: corrections are new entries."""


@event.listens_for(JournalEntry, "before_update")
@event.listens_for(JournalEntry, "before_delete")
@event.listens_for(JournalLine, "before_update")
@event.listens_for(JournalLine, "before_delete")
def _refuse_changes(_mapper, _connection, target):
    raise AppendOnlyViolation(f"{type(target).__name__} rows are append-only")
