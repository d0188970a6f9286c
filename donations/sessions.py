"""Server-side sessions behind an HttpOnly cookie, for staff (admin) and donors (account).

The cookie holds a random secret; the row's id is its SHA-256, so a copy of the database
opens no session. A session lives `idle` without use and `lifetime` at most; its CSRF token
sits on the row. Expired rows are swept when a new session starts.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

SLIDE_EVERY = timedelta(minutes=1)  # move the idle window at most this often, not every hit


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class ServerSessions:
    model: Any  # a mapped class with id, csrf_token, created_at, last_seen_at, expires_at
    cookie: str
    path: str
    idle: timedelta
    lifetime: timedelta

    def start(
        self, session: Session, now: datetime, *, replacing: str | None = None, **owner: Any
    ) -> str:
        """A new session for `owner` (e.g. user_id=…); answers the cookie value, seen only here.

        Signing in always gets a new session id: the session the browser held before
        (`replacing`, its cookie value) is ended, whoever it belonged to, so a session id
        known before the sign-in (fixed by an attacker, or left on a shared computer) is
        never worth anything after it."""
        if replacing:
            self.end(session, replacing)
        secret = secrets.token_urlsafe(32)
        session.add(
            self.model(
                id=digest(secret),
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + min(self.idle, self.lifetime),
                **owner,
            )
        )
        session.execute(delete(self.model).where(self.model.expires_at < now))
        session.flush()
        return secret

    def load(
        self, session: Session, cookie_value: str, now: datetime, alive: Callable[[Any], bool]
    ) -> Any | None:
        """The live session for this cookie whose owner is still `alive`, its idle window slid."""
        if not cookie_value:
            return None
        found = session.get(self.model, digest(cookie_value))
        if found is None or found.expires_at <= now or not alive(found):
            return None
        if now - found.last_seen_at > SLIDE_EVERY:
            session.execute(
                update(self.model)
                .where(self.model.id == found.id)
                .values(
                    last_seen_at=now,
                    expires_at=min(now + self.idle, found.created_at + self.lifetime),
                )
            )
        return found

    def end(self, session: Session, cookie_value: str) -> None:
        session.execute(delete(self.model).where(self.model.id == digest(cookie_value)))

    def set_cookie(self, response: Response, value: str, *, secure: bool) -> None:
        response.set_cookie(
            self.cookie,
            value,
            max_age=int(self.lifetime.total_seconds()),
            secure=secure,
            httponly=True,
            samesite="Lax",
            path=self.path,
        )

    def clear_cookie(self, response: Response, *, secure: bool) -> None:
        response.delete_cookie(
            self.cookie, path=self.path, secure=secure, httponly=True, samesite="Lax"
        )
