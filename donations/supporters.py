"""Supporter tokens: signed, expiring proof that this browser's reader has contributed.

They carry no personal data (only the kind of support and until when), so appeals can be
suppressed on cached pages and across devices without a server-side profile.

A token is a bearer credential that stops appeals and opens the soft gate, so it lives only as
long as the support it proves is worth that:
- recurring: 30 days, one billing period. The supporter renews it by opening their account page
  (each receipt links there); a copied token stops working within a month, and a canceled
  subscription stops being proved without any revocation list.
- one-off: until the end of the window in which the appeals leave one-off supporters alone
  (`one_off_supporter_days`, 90 by default), counted from the gift, not from the issue.
It is given only to whoever completed the payment (the thank-you flow, see
donations.checkout.views) and to the donor on their account page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "donations.supporter"
RECURRING_LIFETIME = timedelta(days=30)
# A ceiling on any token's age whatever it says of itself (the longest one-off window the
# appeal rules accept is 3650 days).
MAX_AGE_SECONDS = 3651 * 24 * 3600
# Tokens issued before they carried an expiry ("e") are honoured this long after their issue.
LEGACY_MAX_AGE_SECONDS = int(RECURRING_LIFETIME.total_seconds())
DEFAULT_ONE_OFF_DAYS = 90  # the appeal rules' default one_off_supporter_days


@dataclass(frozen=True)
class Supporter:
    kind: str  # "recurring" | "one_off"
    issued_at: int  # unix seconds the support counts from (a one-off token: the gift)


def _unix(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp())


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue(
    secret_key: str,
    kind: str,
    *,
    now: datetime | None = None,
    one_off_days: int = DEFAULT_ONE_OFF_DAYS,
    since: datetime | None = None,
) -> str | None:
    """A token for a "recurring" supporter (valid RECURRING_LIFETIME) or a "one_off" one who
    gave at `since` (default: now; valid until `one_off_days` after it). None when a one-off
    gift is already outside its window. Times are UTC (naive ones are taken as UTC)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    if since is not None and (since.tzinfo is None) != (now.tzinfo is None):
        since = since.replace(tzinfo=now.tzinfo)
    if kind == "recurring":
        start, expires = now, now + RECURRING_LIFETIME
    elif kind == "one_off":
        start = since or now
        expires = start + timedelta(days=one_off_days)
    else:
        raise ValueError(f"unknown supporter kind {kind!r}")
    if expires <= now:
        return None
    return _serializer(secret_key).dumps({"k": kind, "s": _unix(start), "e": _unix(expires)})


def verify(secret_key: str, token: str, *, now: datetime | None = None) -> Supporter | None:
    """The supporter a token proves, or None when it is forged, malformed or expired."""
    try:
        data, issued = _serializer(secret_key).loads(
            token, max_age=MAX_AGE_SECONDS, return_timestamp=True
        )
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("k") not in ("recurring", "one_off"):
        return None
    current = _unix(now or datetime.now(UTC))
    issued_at = int(issued.timestamp())
    expires, since = data.get("e"), data.get("s")
    if expires is None:  # issued before tokens carried their expiry
        expires = issued_at + LEGACY_MAX_AGE_SECONDS
    if not isinstance(expires, int) or expires <= current:
        return None
    start = since if isinstance(since, int) else issued_at
    return Supporter(kind=data["k"], issued_at=start)
