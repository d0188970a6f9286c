"""Every mapped model, imported once so `Base.metadata` is complete (Alembic, tests)."""

from donations.admin.models import AdminSession, AdminToken, AdminUser, AuditEntry
from donations.appeals.models import AppealConfig, Campaign, EventCount
from donations.checkout.models import Contribution, Donor, Subscription
from donations.db import Base
from donations.donors.models import DonorLink, DonorSession
from donations.ledger.models import JournalEntry, JournalLine
from donations.mail.models import OutboxEmail
from donations.reports.rollups import (
    ArticlePaymentsDaily,
    CampaignPaymentsDaily,
    EventArticleDaily,
    EventCampaignDaily,
    LedgerDaily,
)
from donations.webhooks.models import StripeEvent

__all__ = [
    "AdminSession",
    "AdminToken",
    "AdminUser",
    "AppealConfig",
    "ArticlePaymentsDaily",
    "AuditEntry",
    "Base",
    "Campaign",
    "CampaignPaymentsDaily",
    "Contribution",
    "Donor",
    "DonorLink",
    "DonorSession",
    "EventArticleDaily",
    "EventCampaignDaily",
    "EventCount",
    "JournalEntry",
    "JournalLine",
    "LedgerDaily",
    "OutboxEmail",
    "StripeEvent",
    "Subscription",
]
