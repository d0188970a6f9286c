"""Impression tokens: the service's signature on one appeal answer, so only events about an
appeal it really served are counted.

A token names no reader: it is an HMAC over the campaign, variant, placement, article and the
hour it was issued in, so every reader of one article gets the same token for an hour and an
answer shared through a CDN stays valid for all of them. Events name the same fields in clear
(API.md), so the token carries only the hour and the signature:

    imp_ + base64url(hour since the epoch: 3 bytes | HMAC-SHA256 truncated: 12 bytes)

24 characters in all. It is accepted while its hour is at most VALID_HOURS old (so for 24 to
25 hours), and one hour ahead for instances whose clocks differ a little.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re

PREFIX = "imp_"
BUCKET_SECONDS = 3600
VALID_HOURS = 24
HOUR_BYTES = 3
MAC_BYTES = 12
TOKEN_CHARS = len(PREFIX) + (HOUR_BYTES + MAC_BYTES) * 4 // 3
# One spelling per token (base64 would also read "+" and "/"), so a rate limit per token can't
# be dodged by spelling the same token another way.
TOKEN = re.compile(PREFIX + "[A-Za-z0-9_-]{" + str(TOKEN_CHARS - len(PREFIX)) + "}")
# What the admin preview's answers carry: no event can ever be counted with it.
UNSIGNED = PREFIX + "preview"
# The signing key is derived from SECRET_KEY for this use only (a supporter token's signature
# is never an impression token's, and the other way round).
KEY_LABEL = b"donations.appeals.impression.v1"
CACHED_TOKENS = 50_000  # per process and hour, ~10 MB at most


def hour_of(unix_seconds: float) -> int:
    return int(unix_seconds // BUCKET_SECONDS)


class ImpressionTokens:
    """Issues and checks impression tokens with one key (derived from SECRET_KEY)."""

    def __init__(self, secret_key: str) -> None:
        self._key = hmac.digest(secret_key.encode(), KEY_LABEL, "sha256")
        # The hot path signs the same few thousand answers all hour: remember this hour's.
        self._hour = -1
        self._issued: dict[tuple[str, str, str, str], str] = {}

    def _mac(self, hour: int, campaign: str, variant: str, placement: str, article: str) -> bytes:
        # Campaign and variant are ids (no newline), the placement one of three words: with the
        # article last, no two different tuples can give the same message.
        message = f"{hour}\n{campaign}\n{variant}\n{placement}\n{article}"
        return hmac.digest(self._key, message.encode("utf-8", "surrogatepass"), "sha256")[
            :MAC_BYTES
        ]

    def issue(
        self, campaign: str, variant: str, placement: str, article: str, *, now: float
    ) -> str:
        """The token of an answer showing this variant in this placement of this article."""
        hour = hour_of(now)
        if hour != self._hour:  # (two threads racing here at the turn of the hour: harmless)
            self._issued, self._hour = {}, hour
        fields = (campaign, variant, placement, article)
        token = self._issued.get(fields)
        if token is None:
            raw = hour.to_bytes(HOUR_BYTES, "big") + self._mac(hour, *fields)
            token = PREFIX + base64.urlsafe_b64encode(raw).decode()
            if len(self._issued) < CACHED_TOKENS:
                self._issued[fields] = token
        return token

    def check(
        self,
        token: object,
        campaign: str,
        variant: str,
        placement: str,
        article: str,
        *,
        now: float,
    ) -> str | None:
        """None when the token was issued by this service for exactly these fields within the
        last day; else why not: "invalid" (missing, malformed, forged or issued for other
        fields) or "expired"."""
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            return "invalid"
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
        except (ValueError, binascii.Error):
            return "invalid"
        if len(raw) != HOUR_BYTES + MAC_BYTES:
            return "invalid"
        hour = int.from_bytes(raw[:HOUR_BYTES], "big")
        expected = self._mac(hour, campaign, variant, placement, article)
        if not hmac.compare_digest(raw[HOUR_BYTES:], expected):
            return "invalid"
        age = hour_of(now) - hour
        if age > VALID_HOURS or age < -1:
            return "expired"
        return None
