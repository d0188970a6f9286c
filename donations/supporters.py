"""Supporter tokens: signed, expiring proof that this browser's reader has contributed.

They carry no personal data (only the kind of support and when), so appeals can be
suppressed on cached pages and across devices without a server-side profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "donations.supporter"
# A recurring supporter's token lasts long; the widget asks for a fresh one from the
# account page. One-off supporters are suppressed for a configured period (see appeals).
MAX_AGE_SECONDS = 400 * 24 * 3600


@dataclass(frozen=True)
class Supporter:
    kind: str  # "recurring" | "one_off"
    issued_at: int  # unix seconds


def issue(secret_key: str, kind: str) -> str:
    return URLSafeTimedSerializer(secret_key, salt=SALT).dumps({"k": kind})


def verify(secret_key: str, token: str, max_age: int = MAX_AGE_SECONDS) -> Supporter | None:
    """The supporter a token proves, or None when it is forged, malformed or expired."""
    serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
    try:
        data, issued = serializer.loads(token, max_age=max_age, return_timestamp=True)
    except BadSignature:
        return None
    kind = data.get("k") if isinstance(data, dict) else None
    if kind not in ("recurring", "one_off"):
        return None
    return Supporter(kind=kind, issued_at=int(issued.timestamp()))
