"""Every mapped model, imported once so `Base.metadata` is complete (Alembic, tests)."""

from donations.admin.models import AdminSession, AdminToken, AdminUser, AuditEntry
from donations.appeals.models import AppealConfig, Campaign, EventCount
from donations.checkout.models import Contribution, Donor, Subscription
from donations.db import Base
from donations.ledger.models import JournalEntry, JournalLine
from donations.webhooks.models import StripeEvent

__all__ = [
    "AdminSession",
    "AdminToken",
    "AdminUser",
    "AppealConfig",
    "AuditEntry",
    "Base",
    "Campaign",
    "Contribution",
    "Donor",
    "EventCount",
    "JournalEntry",
    "JournalLine",
    "StripeEvent",
    "Subscription",
]
