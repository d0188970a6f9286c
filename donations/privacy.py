"""What the service holds about a person, and how it forgets them.

Donor personal data (email, name) lives only in `donors`; contributions, subscriptions and the
ledger hold amounts, dates and Stripe ids, which the accounts must keep. Erasure removes the
person (here and, through the gateway, at Stripe) and keeps the amounts. Export prints
everything held about them. `purge` applies the retention rules to what expires on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from donations.admin import audit
from donations.admin.models import AdminSession
from donations.checkout.models import Contribution, Donor, Subscription
from donations.db import utcnow
from donations.donors.models import DonorLink, DonorSession
from donations.ledger.models import JournalEntry
from donations.mail.models import OutboxEmail
from donations.stripe import StripeGateway

# Retention (README, "Privacy and retention"): sent messages are kept this long for support
# questions ("did my receipt go out?"), without their bodies, which are never stored.
SENT_MAIL_DAYS = 90
ENDED_SESSION_GRACE = timedelta(days=1)


class DonorNotFound(LookupError):
    pass


def normalize(email: str) -> str:
    return email.strip().lower()


def find_donor(session: Session, email: str) -> Donor | None:
    return session.scalar(select(Donor).where(Donor.email == normalize(email)))


def _stamp(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for column in obj.__table__.columns:
        if column.key in skip:
            continue
        value = getattr(obj, column.key)
        out[column.key] = _stamp(value) if isinstance(value, datetime) else value
    return out


def export_donor(session: Session, email: str) -> dict[str, Any]:
    """Everything held about the donor with this email, as JSON-ready data."""
    donor = find_donor(session, email)
    if donor is None:
        raise DonorNotFound("No donor has that email address.")
    contributions = list(
        session.scalars(
            select(Contribution)
            .where(Contribution.donor_id == donor.id)
            .order_by(Contribution.created_at)
        )
    )
    ids = [c.id for c in contributions]
    entries = (
        session.scalars(
            select(JournalEntry)
            .where(JournalEntry.contribution_id.in_(ids))
            .order_by(JournalEntry.occurred_at, JournalEntry.id)
        ).all()
        if ids
        else []
    )
    return {
        "donor": _row(donor),
        "contributions": [_row(c) for c in contributions],
        "subscriptions": [
            _row(s)
            for s in session.scalars(select(Subscription).where(Subscription.donor_id == donor.id))
        ],
        "ledger_entries": [
            {
                **_row(e, skip=("id",)),
                "lines": [{"account": ln.account, "amount": ln.amount} for ln in e.lines],
            }
            for e in entries
        ],
        # Secrets are stored only as digests, and are left out here too.
        "sign_in_links": [
            _row(link, skip=("id", "donor_id"))
            for link in session.scalars(select(DonorLink).where(DonorLink.donor_id == donor.id))
        ],
        "sessions": [
            _row(s, skip=("id", "donor_id", "csrf_token"))
            for s in session.scalars(select(DonorSession).where(DonorSession.donor_id == donor.id))
        ],
        "emails": [
            _row(m, skip=("payload", "donor_id"))
            for m in session.scalars(
                select(OutboxEmail).where(OutboxEmail.donor_id == donor.id).order_by(OutboxEmail.id)
            )
        ],
        "held_elsewhere": {
            "stripe_customer": donor.stripe_customer_id,
            "note": "Card details are held by Stripe only; this service never sees them.",
        },
    }


@dataclass(frozen=True)
class Erasure:
    donor_id: str
    contributions_kept: int
    subscriptions_canceled: int
    stripe_customer_deleted: bool


def erase_donor(session: Session, gateway: StripeGateway, email: str) -> Erasure:
    """Forget a donor: their Stripe customer (which also ends their subscriptions there),
    their email and name here, their sign-in links, sessions and queued mail. Amounts,
    dates and Stripe ids stay for the accounts. Raises DonorNotFound.

    Stripe goes first: if it fails, nothing here has changed and the command can be re-run
    (a customer already gone counts as done).
    """
    donor = find_donor(session, email)
    if donor is None:
        raise DonorNotFound("No donor has that email address.")
    deleted = False
    if donor.stripe_customer_id:
        gateway.delete_customer(donor.stripe_customer_id)
        deleted = True
    now = utcnow()
    canceled = session.execute(
        update(Subscription)
        .where(
            Subscription.donor_id == donor.id,
            Subscription.status.not_in(("canceled", "incomplete_expired")),
        )
        .values(status="canceled", canceled_at=now, cancel_at_period_end=False)
    ).rowcount  # type: ignore[attr-defined]
    kept = len(
        session.scalars(select(Contribution.id).where(Contribution.donor_id == donor.id)).all()
    )
    donor.email = None
    donor.name = None
    donor.erased_at = now
    session.execute(delete(DonorSession).where(DonorSession.donor_id == donor.id))
    session.execute(delete(DonorLink).where(DonorLink.donor_id == donor.id))
    session.execute(
        delete(OutboxEmail).where(OutboxEmail.donor_id == donor.id, OutboxEmail.sent_at.is_(None))
    )
    session.execute(
        update(OutboxEmail).where(OutboxEmail.donor_id == donor.id).values(payload=None)
    )
    # The audit trail records that an erasure happened, never who the person was.
    audit.record(
        session,
        "donor.erase",
        "donor",
        donor.id,
        before={"erased": False},
        after={
            "erased": True,
            "contributions_kept": kept,
            "subscriptions_canceled": canceled,
            "stripe_customer_deleted": deleted,
        },
    )
    session.flush()
    return Erasure(donor.id, kept, canceled, deleted)


def purge(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Delete what the retention rules say has expired; rows deleted per kind."""
    now = now or utcnow()
    grace = now - ENDED_SESSION_GRACE
    done = {
        "donor_links": session.execute(
            delete(DonorLink).where(DonorLink.expires_at < grace)
        ).rowcount,  # type: ignore[attr-defined]
        "donor_sessions": session.execute(
            delete(DonorSession).where(DonorSession.expires_at < grace)
        ).rowcount,  # type: ignore[attr-defined]
        "admin_sessions": session.execute(
            delete(AdminSession).where(AdminSession.expires_at < grace)
        ).rowcount,  # type: ignore[attr-defined]
        "sent_emails": session.execute(
            delete(OutboxEmail).where(
                OutboxEmail.sent_at.is_not(None),
                OutboxEmail.sent_at < now - timedelta(days=SENT_MAIL_DAYS),
            )
        ).rowcount,  # type: ignore[attr-defined]
    }
    return done
