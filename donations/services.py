"""What the app factory wires together and views reach through `current_app`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from donations.admin.ratelimit import LoginLimiter
from donations.appeals.candidates import CandidateAnswers
from donations.appeals.events import EventCounter
from donations.appeals.snapshot import SnapshotStore
from donations.db import Database
from donations.donors.ratelimit import SignInLimiter
from donations.mail.sender import MailSender
from donations.settings import Settings
from donations.stripe import StripeGateway
from donations.webhooks.booker import WebhookBooker


@dataclass
class Services:
    settings: Settings
    db: Database
    gateway: StripeGateway
    appeals: SnapshotStore
    candidates: CandidateAnswers  # this process's shared answers of GET /api/v1/appeals
    events: EventCounter
    login_limiter: LoginLimiter
    sign_in_limiter: SignInLimiter  # donors asking for sign-in links
    mail: MailSender
    booker: WebhookBooker  # books the Stripe events the webhook endpoint stored

    @property
    def minimums(self) -> dict[str, int]:
        return {code: rule.minimum for code, rule in self.settings.currencies.items()}


def services() -> Services:
    return current_app.extensions["donations"]
