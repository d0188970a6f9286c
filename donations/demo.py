"""`donations demo`: localstripe + the app on a seeded SQLite database, on its defaults."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from donations import migrate
from donations.emulator import LocalStripe, port_open
from donations.settings import Settings

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


def run(*, port: int, stripe_port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    stripe_base = f"http://127.0.0.1:{stripe_port}"
    env = {
        **os.environ,
        "DONATIONS_ENV": "development",
        "STRIPE_API_BASE": stripe_base,
        "STRIPE_EMULATOR": "localstripe",
        "PUBLIC_BASE_URL": base,
    }
    env.pop("STRIPE_JS_URL", None)
    settings = Settings.from_env(env)
    if port_open(port):
        raise click.ClickException(f"port {port} is taken")
    click.echo(f"database: {settings.database_url}")
    migrate.upgrade(settings.database_url)
    seeded = seed_campaigns(settings.database_url)
    click.echo(f"demo campaigns: {', '.join(seeded)}")
    # `kill`/`timeout` send SIGTERM: exit through the finally below so children stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    emulator = LocalStripe(stripe_port, log_path=settings.instance_path / "localstripe.log")
    click.echo(f"starting localstripe on {stripe_base} …")
    emulator.start()
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
