"""Magic sign-in links: signed, expiring, single-use.

The link carries an itsdangerous token (salt of its own, the service's SECRET_KEY) holding a
random nonce and the donor's id; the database keeps only the nonce's SHA-256 with the expiry
and, once used, when. A link is good for one sign-in within LINK_LIFETIME.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from donations.checkout.models import Contribution, Donor
from donations.donors.models import DonorLink
from donations.mail.outbox import enqueue

SALT = "donations.donor-sign-in-link"
LINK_LIFETIME = timedelta(minutes=30)
KEEP_USED_LINKS = timedelta(days=1)  # then expired rows are of no use to anyone


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


@dataclass(frozen=True)
class LinkToken:
    nonce: str
    donor_id: str


def read_token(secret_key: str, token: str) -> LinkToken | None:
    """The token's content if its signature is ours and it is not older than a link lives."""
    if not token or len(token) > 400:
        return None
    try:
        data: Any = _serializer(secret_key).loads(token, max_age=int(LINK_LIFETIME.total_seconds()))
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict):
        return None
    nonce, donor_id = data.get("n"), data.get("d")
    if not isinstance(nonce, str) or not isinstance(donor_id, str):
        return None
    return LinkToken(nonce, donor_id)


def request_link(
    session: Session,
    email: str,
    *,
    secret_key: str,
    base_url: str,
    now: datetime,
    lang: str | None = None,
) -> bool:
    """Queue a sign-in link to the donor with this email, if there is one who is not erased,
    in `lang` (the page they asked from), else in their last contribution's language.

    Takes longer for a donor we know (two inserts, the email after commit): the view runs it
    after answering (donors.after_answer), so the answer's timing tells nothing. Answers
    whether it queued.
    """
    normalized = normalize_email(email)
    donor = session.scalar(
        select(Donor)
        .where(Donor.email == normalized, Donor.erased_at.is_(None))
        .order_by(Donor.created_at)
        .limit(1)
    )
    session.execute(delete(DonorLink).where(DonorLink.expires_at < now - KEEP_USED_LINKS))
    nonce = secrets.token_urlsafe(32)
    token = _serializer(secret_key).dumps({"n": nonce, "d": donor.id if donor else "-"})
    if donor is None:
        return False
    link_id = digest(nonce)
    session.add(
        DonorLink(id=link_id, donor_id=donor.id, created_at=now, expires_at=now + LINK_LIFETIME)
    )
    lang = lang or session.scalar(
        select(Contribution.lang)
        .where(Contribution.donor_id == donor.id, Contribution.lang.is_not(None))
        .order_by(Contribution.created_at.desc())
        .limit(1)
    )
    enqueue(
        session,
        kind="sign_in_link",
        dedupe_key=f"sign_in_link:{link_id}",
        donor_id=donor.id,
        lang=lang,
        payload={
            "url": f"{base_url.rstrip('/')}/account/sign-in/{token}",
            "expires_minutes": int(LINK_LIFETIME.total_seconds() // 60),
        },
    )
    session.flush()
    return True


def usable(session: Session, secret_key: str, token: str, now: datetime) -> bool:
    """Would this link sign someone in now? (Reads only: prefetchers may GET links.)"""
    parsed = read_token(secret_key, token)
    if parsed is None:
        return False
    link = session.get(DonorLink, digest(parsed.nonce))
    return (
        link is not None
        and link.donor_id == parsed.donor_id
        and link.used_at is None
        and link.expires_at > now
        and _donor_active(session, link.donor_id)
    )


def consume(session: Session, secret_key: str, token: str, now: datetime) -> str | None:
    """Use the link: answers the donor's id, or None when it is forged, expired, used or unknown.

    One conditional UPDATE marks it used, so two concurrent clicks sign in once.
    """
    parsed = read_token(secret_key, token)
    if parsed is None:
        return None
    result: Any = session.execute(
        update(DonorLink)
        .where(
            DonorLink.id == digest(parsed.nonce),
            DonorLink.donor_id == parsed.donor_id,
            DonorLink.used_at.is_(None),
            DonorLink.expires_at > now,
        )
        .values(used_at=now)
    )
    if result.rowcount != 1 or not _donor_active(session, parsed.donor_id):
        return None
    return parsed.donor_id


def _donor_active(session: Session, donor_id: str) -> bool:
    donor = session.get(Donor, donor_id)
    return donor is not None and donor.erased_at is None
