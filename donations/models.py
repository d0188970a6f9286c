"""Every mapped model, imported once so `Base.metadata` is complete (Alembic, tests)."""

from donations.admin.models import AdminToken
from donations.checkout.models import Contribution, Donor, Subscription
from donations.db import Base
from donations.ledger.models import JournalEntry, JournalLine
from donations.webhooks.models import StripeEvent

__all__ = [
    "AdminToken",
    "Base",
    "Contribution",
    "Donor",
    "JournalEntry",
    "JournalLine",
    "StripeEvent",
    "Subscription",
]
