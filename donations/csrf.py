"""CSRF tokens for forms shown before anyone is signed in (double-submit cookie).

A random token is set in an HttpOnly cookie and repeated in the form; a cross-site page can
make the browser send the cookie but cannot read it to fill the field. Signed-in pages use
their session's own token instead (donations.admin.auth, donations.donors.sessions).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from flask import request
from werkzeug.wrappers import Response

FIELD = "csrf_token"
MIN_LENGTH = 32


@dataclass(frozen=True)
class DoubleSubmit:
    cookie: str
    path: str
    samesite: str  # "Strict" where nothing arrives from another site; "Lax" for email links

    def token(self) -> tuple[str, bool]:
        """The token for a form and whether its cookie must be (re)set."""
        existing = request.cookies.get(self.cookie, "")
        if len(existing) >= MIN_LENGTH:
            return existing, False
        return secrets.token_urlsafe(32), True

    def ok(self) -> bool:
        sent = request.form.get(FIELD, "")
        cookie = request.cookies.get(self.cookie, "")
        return len(cookie) >= MIN_LENGTH and hmac.compare_digest(cookie.encode(), sent.encode())

    def set_cookie(self, response: Response, value: str, *, secure: bool) -> None:
        response.set_cookie(
            self.cookie,
            value,
            max_age=3600,
            secure=secure,
            httponly=True,
            samesite=self.samesite,
            path=self.path,
        )


def same_token(sent: str, expected: str) -> bool:
    """Constant-time comparison of a sent token with the session's."""
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())
