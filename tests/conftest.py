"""Shared fixtures: a database of the suite's own, localstripe, and the app on real HTTP.

DATABASE_URL chooses the database: unset → a SQLite file in a temp folder; a PostgreSQL URL →
a fresh database created next to it for this run and dropped afterwards. Tests never depend
on leftovers: integration tests empty every table after themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import stripe
from werkzeug.serving import make_server

from donations import migrate
from donations.app import create_app
from donations.db import Database, make_engine
from donations.emulator import LocalStripe, port_open
from donations.models import Base
from donations.settings import Settings

# The run fails if a process the suite started outlives it (tests/process_guard.py).
pytest_plugins = ["tests.process_guard"]

WEBHOOK_SECRET = "whsec_test_current"
OLD_WEBHOOK_SECRET = "whsec_test_previous"
STRIPE_SECRET = "sk_test_suite"


def free_port(preferred: int | None = None) -> int:
    if preferred and not port_open(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, every: float = 0.1) -> Any:
    """Poll until predicate() is truthy (webhooks arrive ~1 s after the change)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(every)


@contextlib.contextmanager
def scratch_database(tmp_path_factory: pytest.TempPathFactory, label: str) -> Iterator[str]:
    """A database of the suite's own: a SQLite file, or a PostgreSQL database created next to
    the one DATABASE_URL names and dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path_factory.mktemp(label) / 'test.sqlite3'}"
        return
    name = f"donations_{label}_{secrets.token_hex(4)}"
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base, _, _ = url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from donations.background import BackgroundLoop

    with scratch_database(tmp_path_factory, "test") as url:
        yield url
        # Apps that tests built and let go still poll the database from their threads.
        BackgroundLoop.close_all()


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    migrate.upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def database(migrated_url: str) -> Iterator[Database]:
    db = Database(migrated_url)
    yield db
    db.dispose()


def empty_redis() -> None:
    """Forget event counts a previous test left in Redis (only when REDIS_URL is set)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    import redis

    from donations.appeals.events import REDIS_PREFIX

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=REDIS_PREFIX + "*"):
        client.delete(key)
    client.close()


def empty_tables(db: Database) -> None:
    """Every table emptied at once: on PostgreSQL one TRUNCATE (it waits for, and then locks
    out, a booker or sender thread still writing from the test before)."""
    tables = list(reversed(Base.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))
            return
        for table in tables:
            conn.execute(table.delete())


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    port = free_port(int(os.environ.get("LOCALSTRIPE_PORT", "8420")))
    emulator = LocalStripe(port, log_path=tmp_path_factory.mktemp("ls") / "localstripe.log")
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, localstripe: LocalStripe, tmp_path_factory) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        stripe_secret_key=STRIPE_SECRET,
        stripe_publishable_key="pk_test_suite",
        # Two secrets, as during a rotation: either verifies.
        stripe_webhook_secrets=(OLD_WEBHOOK_SECRET, WEBHOOK_SECRET),
        stripe_api_base=localstripe.base,
        stripe_emulator="localstripe",
        stripe_js_url=f"{localstripe.base}/js.stripe.com/v3/",
        redis_url=os.environ.get("REDIS_URL") or None,
        instance_path=Path(tmp_path_factory.mktemp("instance")),
        # The session app is shared by many tests: checkout limits far above what they send
        # (tests/integration/test_abuse.py builds apps with tight ones).
        checkout_limit_per_ip="100000/minute",
        checkout_limit_per_email="100000/minute",
        checkout_limit_per_contribution="100000/minute",
        checkout_limit_global="100000/minute",
    )


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()


# Every app the suite serves, so that a test can book what their webhook inboxes stored.
LIVE_APPS: list[Any] = []


def close_app(app: Any) -> None:
    """Stop an app's background threads (mail, webhook booking) before its database goes."""
    services = app.extensions["donations"]
    services.mail.close()
    services.booker.close()
    if app in LIVE_APPS:
        LIVE_APPS.remove(app)


def book_webhooks() -> None:
    """Book every Stripe event the suite's apps have stored and not booked yet (their own
    threads book them too, a moment later: this makes a test's next line see the books)."""
    for live in list(LIVE_APPS):
        live.extensions["donations"].booker.drain()


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database) -> Iterator[Any]:
    app = create_app(settings, database=database)
    LIVE_APPS.append(app)
    yield app
    close_app(app)


@pytest.fixture(scope="session")
def live_server(app: Any, localstripe: LocalStripe) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    localstripe.register_webhook(f"{server.url}/webhooks/stripe", WEBHOOK_SECRET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stripe_client(localstripe: LocalStripe) -> stripe.StripeClient:
    """Stripe as the test (playing the browser and the Stripe dashboard) sees it."""
    return stripe.StripeClient(
        STRIPE_SECRET, base_addresses={"api": localstripe.base}, max_network_retries=0
    )


class Api:
    """The service over real HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.http.post(self.base + path, timeout=30, **kw)


@pytest.fixture
def api(live_server: LiveServer) -> Api:
    return Api(live_server.url)


def booked_outcome(database: Database, event_id: str) -> str:
    """What booking an inbox event did ("" while it waits)."""
    from donations.webhooks.models import StripeEvent

    with database.sessions() as session:
        row = session.get(StripeEvent, event_id)
        assert row is not None, f"{event_id} was never stored"
        return row.outcome


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header exactly as Stripe builds it."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def make_event(type_: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_test_{secrets.token_hex(8)}",
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "api_version": "2024-06-20",
        "data": {"object": obj},
    }


def post_event(
    api: Api, event: dict[str, Any], secret: str = WEBHOOK_SECRET, *, book: bool = True
) -> requests.Response:
    """Deliver a signed event as Stripe does; by default also book what the inbox stored."""
    payload = json.dumps(event)
    response = api.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)},
    )
    if book:
        book_webhooks()
    return response


# --- Stripe's API at the pinned version: the stand-in (tests/standin) ---------------------------
@pytest.fixture(scope="session")
def standin() -> Iterator[Any]:
    """A stateful stand-in for Stripe speaking 2026-10-28.endive (what a newsroom's key gets)."""
    from tests.standin import StripeStandin

    server = StripeStandin(webhook_secret=WEBHOOK_SECRET).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def endive_settings(settings: Settings, standin: Any) -> Settings:
    """The suite's settings, but Stripe is the stand-in: no emulator dialect at all."""
    return settings.with_overrides(
        stripe_api_base=standin.base,
        stripe_emulator=None,
        stripe_js_url="https://js.stripe.com/v3/",
    )


@pytest.fixture(scope="session")
def endive_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in's newsroom has a database of its own: one Stripe account per database, as
    in production (the localstripe app's bookers must never book the stand-in's events)."""
    with scratch_database(tmp_path_factory, "endive") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def endive_database(endive_url: str) -> Iterator[Database]:
    db = Database(endive_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def endive_app(endive_settings: Settings, endive_database: Database) -> Iterator[Any]:
    app = create_app(endive_settings.with_overrides(database_url=endive_database.url),
                     database=endive_database)  # fmt: skip
    LIVE_APPS.append(app)
    yield app
    close_app(app)


@pytest.fixture(scope="session")
def endive_server(endive_app: Any, standin: Any) -> Iterator[LiveServer]:
    server = LiveServer(endive_app).start()
    standin.webhook_url = f"{server.url}/webhooks/stripe"
    yield server
    server.stop()
