"""Campaign use cases shared by the admin API, the admin pages and the CLI; every change is
validated by the one CampaignDocument schema and written to the audit log."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from donations.admin import audit
from donations.appeals.documents import CampaignDocument, to_json
from donations.appeals.models import Campaign
from donations.appeals.snapshot import bump_version


class CampaignNotFound(LookupError):
    pass


class CampaignExists(ValueError):
    pass


def all_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id)))


def save_campaign(session: Session, doc: dict[str, Any], *, actor: str | None = None) -> Campaign:
    """Insert or replace one validated document; every instance's snapshot notices."""
    stored = to_json(doc)
    row = session.get(Campaign, stored["id"])
    before = dict(row.document) if row is not None else None
    if row is None:
        row = Campaign(id=stored["id"], document=stored, status=stored["status"])
        session.add(row)
    else:
        row.document = stored
        row.status = stored["status"]
    action = "campaign.create" if before is None else "campaign.update"
    audit.record(session, action, "campaign", row.id, before=before, after=stored, actor=actor)
    bump_version(session)
    session.flush()
    return row


def create_campaign(session: Session, doc: dict[str, Any]) -> Campaign:
    if session.get(Campaign, doc["id"]) is not None:
        raise CampaignExists(f"Campaign {doc['id']!r} exists; change it instead.")
    return save_campaign(session, doc)


def update_campaign(session: Session, campaign_id: str, changes: dict[str, Any]) -> Campaign:
    """Apply a partial document; the merged whole is validated again (ValidationError)."""
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise CampaignNotFound(f"No campaign {campaign_id!r}.")
    if "id" in changes and changes["id"] != campaign_id:
        raise ValidationError({"id": ["The id cannot change."]})
    merged = {**row.document, **changes, "id": campaign_id}
    return save_campaign(session, CampaignDocument().load(merged))


def delete_campaign(session: Session, campaign_id: str) -> None:
    """Delete a campaign (its counts and contributions keep their attribution)."""
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise CampaignNotFound(f"No campaign {campaign_id!r}.")
    audit.record(
        session, "campaign.delete", "campaign", campaign_id, before=row.document, after=None
    )
    session.delete(row)
    bump_version(session)
