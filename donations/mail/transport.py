"""Delivering one rendered message: by SMTP when SMTP_HOST is set, else into a local folder.

The folder is the development default: each message becomes a `.eml` file (open it with any
mail client) and the log says where. Logs never carry bodies, links or secrets, and show the
recipient only masked ("r***@example.org").
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

from donations.settings import Settings

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 20.0  # seconds, for the connection and each command


class DeliveryError(Exception):
    """The message was not delivered; the text is short and safe to store (no secrets)."""


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


def mask_address(address: str) -> str:
    """'reader@example.org' → 'r***@example.org': enough to tell messages apart in a log."""
    local, at, domain = parseaddr(address)[1].rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


class SmtpTransport:
    """One connection per message: receipts are few, and a fresh connection never goes stale."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = SMTP_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed ({exc.smtp_code})") from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP refused: {exc.smtp_code}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryError(f"SMTP refused the recipient ({codes})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # The class name only: OSError texts can carry the host, never a secret, but stay
            # short and uniform for the outbox's last_error.
            raise DeliveryError(f"SMTP unavailable: {type(exc).__name__}") from exc
        if refused:
            raise DeliveryError("SMTP refused the recipient")
        log.info(
            "mail sent by SMTP to %s via %s:%s",
            mask_address(str(message["To"])),
            self.host,
            self.port,
        )


class FolderTransport:
    """Writes each message as a .eml file (the embedded default, for development)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.last_path: Path | None = None

    def send(self, message: EmailMessage) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            path = self.folder / f"{stamp}-{secrets.token_hex(4)}.eml"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(bytes(message))
            tmp.replace(path)  # a reader never sees half a message
        except OSError as exc:
            raise DeliveryError(f"could not write to the outbox folder: {exc.strerror}") from exc
        self.last_path = path
        log.info("mail to %s written to %s", mask_address(str(message["To"])), path)


def transport_for(settings: Settings) -> Transport:
    """SMTP when SMTP_HOST is set; otherwise the local outbox folder."""
    if settings.smtp_host:
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    return FolderTransport(settings.mail_folder)
