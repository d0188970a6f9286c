"""journal entries name the balance transaction they book

Entries book Stripe's balance transactions (amount, fee, net in the settlement currency), and
reconcile compares each transaction's net with the entries that name it. Entries made before
stay unlinked, all of them alike (a fee linked without its payment would look like a
difference): reconcile leaves a transaction whose source has unlinked entries alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("balance_transaction_id", sa.String(length=64), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_journal_entries_balance_transaction_id"),
            ["balance_transaction_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_entries_balance_transaction_id"))
        batch_op.drop_column("balance_transaction_id")
