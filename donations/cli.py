"""The `donations` command. Every command reads Settings from the environment and works
from any current directory."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import click

from donations.settings import ConfigurationError, Settings

T = TypeVar("T")


def _one_pass(what: str, work: Callable[[], T]) -> T | None:
    """One poll of a worker loop: a failure (the database or Redis restarting, say) is one
    line on stderr and the loop goes on at the next poll; a worker never exits for it."""
    try:
        return work()
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError) or type(exc).__name__ in ("ConnectionError", "TimeoutError"):
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else ""
            click.echo(f"{what} failed ({type(exc).__name__}: {reason}); trying again", err=True)
        else:
            import logging

            logging.getLogger(__name__).exception("%s failed; trying again", what)
        return None


def _poll_until_stopped(
    what: str, every: float, work: Callable[[], T], said: Callable[[T], str | None]
) -> None:
    """A worker's loop: `work` every `every` seconds until SIGTERM or SIGINT (a pass in
    flight finishes); `said` turns a pass's result into a line for stderr, or None."""
    import signal

    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        result = _one_pass(what, work)
        line = said(result) if result is not None else None
        if line:
            click.echo(line, err=True)
        deadline = time.monotonic() + every
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.2)


# Chosen by measurement on 2 cores (README, "Serving"): granian's Rust HTTP front with a few
# blocking threads per worker served ~2.5x gunicorn's sync workers on the same app.
DEFAULT_WORKERS = 2
DEFAULT_BLOCKING_THREADS = 4


def _settings(*, migrated: bool = True) -> Settings:
    """Settings from the environment and, with `migrated`, a database that answers and is
    migrated: every command fails in one line (exit 1) on bad configuration, a misspelt or
    unreachable DATABASE_URL, or a database `donations db upgrade` has not prepared."""
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    if migrated:
        with _database_errors():
            from donations import migrate

            migrate.require_migrated(settings.database_url)
    return settings


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    """Database trouble an operator can fix, as one line (no traceback)."""
    from donations.db import DatabaseUnavailable
    from donations.migrate import NotMigrated

    try:
        yield
    except (DatabaseUnavailable, NotMigrated) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def cli() -> None:
    """Reader revenue for independent newsrooms."""


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from donations import migrate

    settings = _settings(migrated=False)
    with _database_errors():
        migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    from alembic.util.exc import CommandError

    from donations import migrate

    try:
        with _database_errors():
            migrate.check(_settings(migrated=False).database_url)
    except CommandError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("models and migrations agree")


@cli.command("create-admin-token")
@click.option("--name", default="admin", show_default=True, help="What the token is for.")
@click.option(
    "--role", type=click.Choice(["viewer", "editor"]), default="editor", show_default=True
)
def create_admin_token(name: str, role: str) -> None:
    """Create an admin API token; it is printed once, alone on the last line."""
    from donations.admin.tokens import create_audited
    from donations.db import Database

    database = Database(_settings().database_url)
    with database.transaction() as session:
        _, token = create_audited(session, name, role)
    database.dispose()
    click.echo(f"created {role} token {name!r}; store it now, it is not shown again:", err=True)
    click.echo(token)


@cli.command("create-admin")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(["viewer", "editor"]), default="editor", show_default=True
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)
def create_admin(email: str, role: str, password_stdin: bool) -> None:
    """Create an admin user who signs in at /admin/login (or reset their password and role)."""
    from donations.admin.auth import MIN_PASSWORD, PasswordTooShort, create_user
    from donations.db import Database

    settings = _settings()  # before asking for a password that could not be stored
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            f"Password for {email} (at least {MIN_PASSWORD} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            user = create_user(session, email, password, role)
            click.echo(f"admin {user.email} ({user.role}) can sign in at /admin/login")
    except (PasswordTooShort, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()


@cli.command()
@click.option(
    "--since",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="UTC date (inclusive) to start from.",
)
@click.option("--apply", "apply_", is_flag=True, help="Book what is missing.")
def reconcile(since: datetime, apply_: bool) -> None:
    """Compare Stripe's balance transactions since a date with the ledger, by their net."""
    from donations.db import Database
    from donations.ledger.reconcile import reconcile as run
    from donations.mail.receipts import queue_receipt
    from donations.stripe import GatewayError, gateway_from_settings

    settings = _settings()
    database = Database(settings.database_url)
    gateway = gateway_from_settings(settings)
    click.echo(
        f"reconciling since {since:%Y-%m-%d} (UTC){' and applying' if apply_ else ''}", err=True
    )
    try:
        report = run(
            database,
            gateway,
            since.replace(tzinfo=None),
            apply=apply_,
            progress=lambda line: click.echo(f"  … {line}", err=True),
            on_payment=queue_receipt,
        )
    except GatewayError as exc:
        raise click.ClickException(f"Stripe: {exc}") from exc
    finally:
        database.dispose()
    for diff in report.differences:
        mark = "FIXED" if diff.fixed else "DIFF "
        click.echo(f"{mark} {diff.what}: {diff.stripe_id} ({diff.detail})")
    click.echo(
        f"{report.transactions_seen} balance transactions checked; "
        f"{len(report.differences)} difference(s), "
        f"{len(report.unresolved)} unresolved",
        err=True,
    )
    if not apply_ and report.differences:
        sys.exit(1)
    if apply_ and report.unresolved:
        sys.exit(1)


@cli.group()
def campaigns() -> None:
    """Campaign documents."""


@campaigns.command("load")
@click.argument("file", type=click.File("rb"))
def campaigns_load(file: Any) -> None:
    """Create or replace the campaigns in FILE (one document or a list), all or none.

    A file with mistakes loads nothing and names every mistake of every document in plain
    words ("Variant 1, amounts in USD, one-off, amount 2: …"); docs/examples/campaign.json
    is a complete example."""
    import json

    from marshmallow import ValidationError

    from donations.admin.campaign_errors import plain_errors
    from donations.appeals.campaigns import save_campaign
    from donations.appeals.documents import CampaignDocument
    from donations.db import Database

    try:
        # utf-8-sig: a file saved by an editor that writes a byte-order mark loads too
        data = json.loads(file.read().decode("utf-8-sig"))
    except ValueError as exc:
        raise click.ClickException(f"{file.name} is not JSON: {exc}") from exc
    documents = data if isinstance(data, list) else [data]
    loaded: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, raw in enumerate(documents):
        try:
            loaded.append(CampaignDocument().load(raw))
        except ValidationError as exc:
            name = raw.get("id") if isinstance(raw, dict) else None
            which = f"campaign {i + 1}"
            if isinstance(name, str) and name:
                which = f"campaign “{name[:100]}”"
            problems.append(f"{which} in {file.name} is not valid:")
            problems += [f"  - {line}" for line in plain_errors(exc.messages)]
    if problems:
        raise click.ClickException("\n".join([*problems, "Nothing was loaded."]))
    database = Database(_settings().database_url)
    with database.transaction() as session:
        for doc in loaded:
            save_campaign(session, doc, actor="cli")
    database.dispose()
    for doc in loaded:
        click.echo(f"loaded {doc['id']} ({doc['status']})")


@cli.group()
def events() -> None:
    """Appeal event counts."""


@events.command("flush")
def events_flush() -> None:
    """Move counts from Redis (REDIS_URL) to the database."""
    from donations.appeals.events import EventCounter
    from donations.db import Database

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: each app process flushes itself")
    database = Database(settings.database_url)
    moved = EventCounter(database, settings.redis_url).flush_redis()
    database.dispose()
    click.echo(f"moved {moved} event counts to the database")


@events.command("worker")
@click.option("--every", default=5.0, show_default=True, help="Seconds between flushes.")
def events_worker(every: float) -> None:
    """Flush Redis counts to the database every few seconds until stopped (SIGTERM-safe)."""
    from donations.appeals.events import EventCounter
    from donations.db import Database

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set")
    database = Database(settings.database_url)
    counter = EventCounter(database, settings.redis_url)
    click.echo(f"flushing event counts every {every}s", err=True)
    _poll_until_stopped(
        "flushing event counts",
        every,
        counter.flush_redis,
        lambda moved: f"moved {moved} event counts" if moved else None,
    )
    counter.flush_redis()  # last flush on the way out
    database.dispose()


@cli.group()
def mail() -> None:
    """The email outbox (receipts, sign-in links)."""


@mail.command("send")
def mail_send() -> None:
    """Send the email that is due now, once; print how many went, failed and wait."""
    from donations.db import Database
    from donations.mail.sender import MailSender, waiting

    settings = _settings()
    database = Database(settings.database_url)
    sender = MailSender(database, settings)
    try:
        report = sender.send_due()
        with database.sessions() as session:
            pending, given_up = waiting(session)
    finally:
        sender.close()
        database.dispose()
    click.echo(
        f"sent {report.sent}, failed {report.failed}, dropped {report.dropped} "
        f"(donor erased); {pending} waiting, {given_up} given up"
    )


@mail.command("worker")
@click.option("--every", default=5.0, show_default=True, help="Seconds between polls.")
def mail_worker(every: float) -> None:
    """Send due email every few seconds until stopped (SIGTERM-safe)."""
    from donations.db import Database
    from donations.mail.sender import MailSender

    settings = _settings()
    database = Database(settings.database_url)
    sender = MailSender(database, settings)
    how = settings.smtp_host or f"the folder {settings.mail_folder}"
    click.echo(f"sending due email through {how} every {every}s", err=True)
    _poll_until_stopped(
        "sending email",
        every,
        sender.send_due,
        lambda r: (
            f"sent {r.sent}, failed {r.failed}, dropped {r.dropped}"
            if r.sent or r.failed or r.dropped
            else None
        ),
    )
    sender.close()
    database.dispose()


@cli.group()
def webhooks() -> None:
    """The inbox of Stripe events (stored on receipt, booked by workers)."""


def _booker() -> tuple[Any, Any]:
    from donations.db import Database
    from donations.stripe import gateway_from_settings
    from donations.webhooks.booker import WebhookBooker

    settings = _settings()
    database = Database(settings.database_url)
    return database, WebhookBooker(database, gateway_from_settings(settings))


def _inbox_line(database: Any) -> str:
    from donations.webhooks.booker import inbox_counts

    with database.sessions() as session:
        counts = inbox_counts(session)
    return (
        f"{counts['pending']:.0f} pending (oldest {counts['oldest_pending_seconds']:.0f}s), "
        f"{counts['dead']:.0f} dead"
    )


@webhooks.command("book")
def webhooks_book() -> None:
    """Book every event that is due now, once; print what happened and what waits."""
    database, booker = _booker()
    try:
        report = booker.drain()
        click.echo(
            f"booked {report.booked}, deferred {report.deferred}, dead {report.dead}; "
            f"{_inbox_line(database)}"
        )
    finally:
        booker.close()
        database.dispose()


@webhooks.command("worker")
@click.option("--every", default=2.0, show_default=True, help="Seconds between polls.")
def webhooks_worker(every: float) -> None:
    """Book due events every few seconds until stopped (SIGTERM-safe)."""
    database, booker = _booker()
    click.echo(f"booking Stripe events every {every}s", err=True)
    _poll_until_stopped(
        "booking Stripe events",
        every,
        booker.book_due,
        lambda r: (
            f"booked {r.booked}, deferred {r.deferred}, dead {r.dead}"
            if r.booked or r.deferred or r.dead
            else None
        ),
    )
    booker.close()
    database.dispose()


@webhooks.command("retry")
@click.argument("event_ids", nargs=-1)
def webhooks_retry(event_ids: tuple[str, ...]) -> None:
    """Put dead events (all, or the EVENT_IDS given) back in the queue and book them now."""
    from donations.webhooks.booker import retry

    database, booker = _booker()
    try:
        with database.transaction() as session:
            count = retry(session, list(event_ids) or None)
        click.echo(f"{count} dead event(s) back in the queue", err=True)
        report = booker.drain()
        click.echo(
            f"booked {report.booked}, deferred {report.deferred}, dead {report.dead}; "
            f"{_inbox_line(database)}"
        )
    finally:
        booker.close()
        database.dispose()


@webhooks.command("status")
def webhooks_status() -> None:
    """How many events wait to be booked, how long the oldest has waited, how many are dead."""
    from donations.db import Database

    database = Database(_settings().database_url)
    try:
        click.echo(_inbox_line(database))
    finally:
        database.dispose()


def _granian_args(host: str, port: int, workers: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        # A worker that dies (kill -9, the OOM killer, a crash in native code) is replaced at
        # once instead of granian shutting everything down; the others serve meanwhile. One that
        # dies again within 5.5 s of its respawn is a crash loop: granian exits, and the
        # supervisor (compose's restart policy, systemd's Restart=) starts the service again.
        "--respawn-failed-workers",
        "donations.wsgi:app",
    ]


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=DEFAULT_WORKERS, show_default=True, type=int)
@click.option("--blocking-threads", default=DEFAULT_BLOCKING_THREADS, show_default=True, type=int)
def serve(host: str, port: int, workers: int, blocking_threads: int) -> None:
    """Serve the app with the recommended WSGI server (granian).

    The workers share a fresh directory for Prometheus' multiprocess mode (removed on exit)
    unless PROMETHEUS_MULTIPROC_DIR names one. SIGTERM/SIGINT go to granian, which stops its
    workers gracefully (they flush event counts and finish a mail batch); its exit code is ours
    (128 + the signal's number when a signal killed it). Granian respawns a worker that dies.
    Nothing outlives this command: if granian is killed, the workers it leaves behind are
    stopped here; if this command is killed, the kernel sends granian SIGTERM (Linux).
    """
    import contextlib
    import shutil
    import signal
    import subprocess
    import tempfile

    _settings()  # fail fast on bad configuration, before starting workers
    args = _granian_args(host, port, workers, blocking_threads)
    env = dict(os.environ)
    own_dir = None
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="donations-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    parent = os.getpid()
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl

    def die_with_parent() -> None:
        # In the child, before exec (PR_SET_PDEATHSIG = 1 survives exec): if this command dies
        # without passing a signal on (kill -9), granian gets SIGTERM and stops its workers.
        if prctl is not None:
            prctl(1, signal.SIGTERM)
            if os.getppid() != parent:  # it died before the call
                os._exit(1)

    def stop_leftovers(group: int) -> None:
        # Granian leads its own process group; its workers are in it. Once granian is gone,
        # anything still there was orphaned by a granian that could not stop it (kill -9):
        # SIGTERM (a worker stops gracefully, flushing its counts), then SIGKILL. Reaped here
        # when this command is PID 1 (a container), by init otherwise.
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    while os.waitpid(-group, os.WNOHANG)[0]:
                        pass
                try:
                    os.killpg(group, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.05)

    server: subprocess.Popen[bytes] | None = None
    try:
        # Its own session: a signal reaches granian once, from here (not also from a terminal).
        server = proc = subprocess.Popen(  # noqa: S603
            args, env=env, start_new_session=True, preexec_fn=die_with_parent
        )

        def forward(signum: int, _frame: Any) -> None:
            proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = server.wait()
    finally:
        if server is not None:
            if server.poll() is None:  # this command is failing: granian goes with it
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            stop_leftovers(server.pid)
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)
    sys.exit(128 - code if code < 0 else code)


@cli.command()
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--stripe-port",
    default=None,
    type=int,
    help="The Stripe emulator's port  [default: 8420, or a free one when 8420 is taken]",
)
def demo(port: int, stripe_port: int | None) -> None:
    """Start localstripe and the app on a seeded SQLite database; print the URLs to open."""
    from donations import demo as demo_mod

    demo_mod.run(port=port, stripe_port=stripe_port)


@cli.command("export-donor")
@click.argument("email")
def export_donor(email: str) -> None:
    """Print everything held about the donor with EMAIL as JSON (a subject access request)."""
    import json

    from donations import privacy
    from donations.db import Database

    database = Database(_settings().database_url)
    try:
        with database.sessions() as session:
            data = privacy.export_donor(session, email)
    except privacy.DonorNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command("erase-donor")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_donor(email: str, yes: bool) -> None:
    """Erase the donor with EMAIL here and at Stripe, keeping the amounts the books need."""
    from donations import privacy
    from donations.db import Database
    from donations.stripe import GatewayError, gateway_from_settings

    settings = _settings()
    if not yes:
        click.confirm(
            f"Erase {email}: their name and email here, their Stripe customer (ending any "
            "recurring gift), sign-in links and queued mail? Amounts stay in the books.",
            abort=True,
        )
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            done = privacy.erase_donor(session, gateway_from_settings(settings), email)
    except privacy.DonorNotFound as exc:
        raise click.ClickException(str(exc)) from exc
    except GatewayError as exc:
        raise click.ClickException(f"Stripe: {exc}; nothing was changed, try again") from exc
    finally:
        database.dispose()
    click.echo(
        f"erased donor {done.donor_id}: {done.contributions_kept} contributions kept "
        f"(amounts only), {done.subscriptions_canceled} subscriptions ended, Stripe customer "
        f"{'deleted' if done.stripe_customer_deleted else 'none'}"
    )


@cli.command()
def purge() -> None:
    """Delete what the retention rules say has expired (run daily; see the README)."""
    from donations import privacy
    from donations.db import Database

    database = Database(_settings().database_url)
    with database.transaction() as session:
        done = privacy.purge(session)
    database.dispose()
    for kind, rows in done.items():
        click.echo(f"{kind}: {rows} deleted")


@cli.group()
def reports() -> None:
    """The daily rollups behind the report endpoints."""


@reports.command("rebuild")
def reports_rebuild() -> None:
    """Recompute every rollup from the journal and the event counts (after a bulk load)."""
    from donations.db import Database
    from donations.reports import rollups

    database = Database(_settings().database_url)
    click.echo("rebuilding the report rollups …", err=True)
    started = time.monotonic()
    with database.transaction() as session:
        written = rollups.rebuild(session)
    database.dispose()
    for table, rows in written.items():
        click.echo(f"{table}: {rows} rows")
    click.echo(f"done in {time.monotonic() - started:.1f} s", err=True)


@reports.command("check")
def reports_check() -> None:
    """Compare the rollups with a rebuild from the books (changes nothing); exit 1 on drift."""
    from donations.db import Database
    from donations.reports import rollups

    database = Database(_settings().database_url)
    with database.sessions() as session:
        report = rollups.check(session)
    database.dispose()
    drift = False
    for table, (kept, differ) in report.items():
        click.echo(f"{table}: {kept} rows, {differ} differ")
        drift = drift or differ > 0
    if drift:
        raise SystemExit(1)


def main() -> None:
    cli(prog_name="donations")


if __name__ == "__main__":
    main()
