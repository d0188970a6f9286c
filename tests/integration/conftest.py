import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from donations.appeals.throttle import event_limiter
from donations.db import Database
from donations.mail.sender import MailSender
from tests.conftest import empty_redis, empty_tables, free_port

NEWSROOM = {"newsroom_name": "The Moscow Times", "newsroom_address": "Amsterdam, Netherlands"}


@pytest.fixture(autouse=True)
def _clean_database(database: Database, app: Any) -> Iterator[None]:
    empty_tables(database)
    empty_redis()
    app.extensions["donations"].login_limiter.reset()
    app.extensions["donations"].sign_in_limiter.reset()
    event_limiter(app).reset()
    yield


# --- a real SMTP server (aiosmtpd) and a mail sender pointed at it ---------------------------
class Inbox:
    """What the SMTP server received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def inbox(smtp_server: tuple[Controller, Inbox]) -> Inbox:
    smtp_server[1].clear()
    return smtp_server[1]


@pytest.fixture
def use_sender(app: Any, database: Any) -> Iterator[Callable[..., MailSender]]:
    """Put a sender with other settings into the running app (the live server's); the app's
    own sender (writing .eml files) is stopped meanwhile and a fresh one restored after."""
    services = app.extensions["donations"]
    installed: list[MailSender] = []

    def install(**overrides: Any) -> MailSender:
        services.mail.close()
        sender = MailSender(
            database,
            services.settings.with_overrides(**{**NEWSROOM, **overrides}),
            # Polls rarely: a receipt that arrives within seconds was sent because the
            # booking's commit woke the sender.
            poll_seconds=60,
        )
        services.mail = services.booker.mail = sender
        installed.append(sender)
        return sender

    original_settings = services.settings
    yield install
    services.mail.close()
    services.mail = services.booker.mail = MailSender(database, original_settings)


@pytest.fixture
def smtp(use_sender: Callable[..., MailSender], smtp_server: tuple[Controller, Inbox]) -> Any:
    return use_sender(smtp_host="127.0.0.1", smtp_port=smtp_server[0].port)
