"""Donors, contributions and subscriptions.

Donor personal data (email, name) lives only in `donors`, so it can be erased while the
contributions and the ledger keep the amounts the accounts need.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Base, utcnow

# Where a contribution stands. Before it is paid the status only moves forward
# (pending → canceled → failed: a decline says more than a cancellation); once paid it follows
# the money in the books (`ledger.booking.settle_status`) and never returns to an unpaid one.
UNPAID_STATUSES = ("pending", "canceled", "failed")
PAID_STATUSES = ("succeeded", "partially_refunded", "refunded", "disputed")
STATUS_RANK = {
    "pending": 0,
    "canceled": 1,
    "failed": 2,
    "succeeded": 3,
    "partially_refunded": 3,
    "refunded": 3,
    "disputed": 3,
}
FREQUENCIES = ("one_off", "monthly", "annual")
INTERVALS = {"monthly": "month", "annual": "year"}


class Donor(Base):
    __tablename__ = "donors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_at: Mapped[datetime | None]


class Contribution(Base):
    __tablename__ = "contributions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(24), default="pending")
    frequency: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # the gift the reader chose
    fee_covered: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger)  # what the card is charged
    donor_id: Mapped[str | None] = mapped_column(ForeignKey("donors.id"), index=True)
    article: Mapped[str | None] = mapped_column(String(200))
    campaign: Mapped[str | None] = mapped_column(String(100))
    variant: Mapped[str | None] = mapped_column(String(100))
    placement: Mapped[str | None] = mapped_column(String(16))
    impression: Mapped[str | None] = mapped_column(String(64))
    # The reader's language (from the appeal), for receipts and pages; None = the default.
    lang: Mapped[str | None] = mapped_column(String(8))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_setup_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), index=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A renewal points at the contribution that started its subscription.
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("contributions.id"), index=True)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_message: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    succeeded_at: Mapped[datetime | None]

    donor: Mapped[Donor | None] = relationship()

    __table_args__ = (
        Index("ix_contributions_created_at", "created_at"),
        Index("ix_contributions_campaign_variant", "campaign", "variant"),
    )

    @property
    def is_recurring(self) -> bool:
        return self.frequency != "one_off"

    @property
    def is_paid(self) -> bool:
        return self.status in PAID_STATUSES

    def advance(self, status: str) -> bool:
        """Move an unpaid status forward only (a paid one is settled from the books);
        answers whether it changed."""
        if STATUS_RANK[status] > STATUS_RANK[self.status]:
            self.status = status
            return True
        return False


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Stripe's sub_… id
    contribution_id: Mapped[str] = mapped_column(ForeignKey("contributions.id"), unique=True)
    donor_id: Mapped[str | None] = mapped_column(ForeignKey("donors.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # charged per interval
    interval: Mapped[str] = mapped_column(String(8))  # month | year
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    current_period_end: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    canceled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
