"""`donations demo`: localstripe + the app on a seeded SQLite database, on its defaults."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click

from donations import migrate
from donations.db import DatabaseUnavailable, safe_url
from donations.emulator import LocalStripe, port_open
from donations.settings import ConfigurationError, Settings

DEMO_NEWSROOM = "The Moscow Times"
DEMO_CAMPAIGNS = Path(__file__).resolve().parent / "appeals" / "demo_campaigns.json"


def seed_campaigns(database_url: str) -> list[str]:
    """Upsert the demo campaigns (donations/appeals/demo_campaigns.json); their ids."""
    from donations.appeals.campaigns import save_campaign
    from donations.appeals.documents import CampaignDocument
    from donations.db import Database

    documents = json.loads(DEMO_CAMPAIGNS.read_text(encoding="utf-8"))
    database = Database(database_url)
    try:
        with database.transaction() as session:
            for raw in documents:
                save_campaign(session, CampaignDocument().load(raw), actor="demo")
    finally:
        database.dispose()
    return [d["id"] for d in documents]


DEMO_ADMIN = "demo@example.org"


DEFAULT_STRIPE_PORT = 8420  # localstripe's own default


def free_port(avoid: int) -> int:
    """A port nothing listens on (the system's choice), other than `avoid`."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            found = int(sock.getsockname()[1])
        if found != avoid:
            return found


def choose_ports(port: int, stripe_port: int | None) -> tuple[int, int]:
    """The app's port and the emulator's: a port asked for must be free (else one line names
    it); without --stripe-port the emulator takes 8420, or any free port when that is taken."""
    if port_open(port):
        raise click.ClickException(f"port {port} is taken: choose another with --port")
    if stripe_port is not None:
        if stripe_port == port:
            raise click.ClickException(f"--port and --stripe-port are both {port}")
        if port_open(stripe_port):
            raise click.ClickException(
                f"port {stripe_port} (the Stripe emulator's) is taken: "
                "choose another with --stripe-port, or leave it out to use a free one"
            )
        return port, stripe_port
    if port != DEFAULT_STRIPE_PORT and not port_open(DEFAULT_STRIPE_PORT):
        return port, DEFAULT_STRIPE_PORT
    chosen = free_port(avoid=port)
    click.echo(f"port {DEFAULT_STRIPE_PORT} is taken: the Stripe emulator uses {chosen}")
    return port, chosen


def run(*, port: int, stripe_port: int | None = None) -> None:
    port, stripe_port = choose_ports(port, stripe_port)
    base = f"http://127.0.0.1:{port}"
    stripe_base = f"http://127.0.0.1:{stripe_port}"
    env = {
        **os.environ,
        "DONATIONS_ENV": "development",
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_EMULATOR": "localstripe",
        "PUBLIC_BASE_URL": base,
    }
    # One newsroom throughout: the demo article is The Moscow Times', so are checkout and mail.
    env.setdefault("NEWSROOM_NAME", DEMO_NEWSROOM)
    env.pop("STRIPE_JS_URL", None)
    try:
        settings = Settings.from_env(env)
    except ConfigurationError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    click.echo(f"database: {safe_url(settings.database_url)}")
    try:
        migrate.upgrade(settings.database_url)
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    seeded = seed_campaigns(settings.database_url)
    click.echo(f"demo campaigns: {', '.join(seeded)}")
    # `kill`/`timeout` send SIGTERM: exit through the finally below so children stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    emulator = LocalStripe(stripe_port, log_path=settings.instance_path / "localstripe.log")
    click.echo(f"starting localstripe on {stripe_base} …")
    try:
        emulator.start()
    except RuntimeError as exc:  # taken meanwhile, or localstripe missing
        raise click.ClickException(f"the Stripe emulator: {exc}") from exc
    server = None
    try:
        emulator.register_webhook(f"{base}/webhooks/stripe", settings.stripe_webhook_secrets[0])
        from donations.admin.auth import create_user
        from donations.admin.tokens import create_token
        from donations.db import Database

        database = Database(settings.database_url)
        password = secrets.token_urlsafe(12)  # a fresh one each run, shown only here
        with database.transaction() as session:
            token = create_token(session, "demo", created_by="demo")
            create_user(session, DEMO_ADMIN, password, "editor")
        database.dispose()
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "donations.cli", "serve", "--port", str(port)], env=env
        )
        for _ in range(200):
            if port_open(port):
                break
            time.sleep(0.05)
        click.echo(
            "\nThe demo is running. Open:\n"
            f"  Demo article with appeals (epic, banner; the gate after 5 articles): "
            f"{base}/demo/article\n"
            f"  Contribute (card 4242 4242 4242 4242, any date, any CVC): {base}/contribute\n"
            f"  Admin dashboard:    {base}/admin/  (sign in as {DEMO_ADMIN} / {password})\n"
            f"  Donor account:      {base}/account  (receipts and sign-in links are written "
            f"to {settings.mail_folder})\n"
            f"  API documentation:  {base}/docs\n"
            f"  Today's books:      curl -H 'Authorization: Bearer {token}' "
            f"{base}/api/v1/admin/reports/summary\n"
            f"  Trial balance:      curl -H 'Authorization: Bearer {token}' "
            f"{base}/api/v1/admin/ledger/trial-balance\n"
            f"  Stripe emulator:    {stripe_base} (webhooks → {base}/webhooks/stripe)\n"
            "Press Ctrl+C to stop."
        )
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
        emulator.stop()
