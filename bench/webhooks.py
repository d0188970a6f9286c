"""Webhook booking throughput, against a raw-insert baseline, through the real WSGI app.

    python bench/webhooks.py [--events N] [--database sqlite|postgres|both] [--pg-url URL]
                             [--stripe localstripe|standin|both] [--latency 0.25]

For each database it:

1. creates a fresh database (a temporary SQLite file, or `CREATE DATABASE
   donations_bench_<random>` on the PostgreSQL server) and runs the migrations;
2. serves the app under granian exactly as the README recommends (2 workers x 4 blocking
   threads), against a localstripe emulator on port 8421 with no webhook receiver registered,
   so nothing is delivered behind the benchmark's back;
3. (c) creates N one-off contributions through `POST /api/v1/contributions` and confirms each
   with `pm_card_visa` through `POST /api/v1/contributions/{id}/confirm`;
4. (a) posts one signed `payment_intent.succeeded` event per payment (the handler re-fetches
   the PaymentIntent, its charge and the balance transaction from the emulator, then books the
   payment and the fee), then posts every event a second time (duplicates), and times the
   same re-fetches against the emulator alone (the ceiling the emulator sets);
5. checks the books in the database (one `payment_one_off` entry per payment, every currency
   balanced) and prints OK or MISMATCH;
6. (a') has wrk post new signed events for `--ack-seconds`, booked meanwhile by the server's
   own processes, then (a'') again on a server with WEBHOOK_BOOKING=worker (its processes
   only acknowledge; `donations webhooks worker` books afterwards), with the booking lag;
7. (b) measures raw one-row-per-transaction INSERTs into a scratch table of the same database,
   with the same concurrency, as the baseline.

With `--stripe standin` (also part of `both`, the default) the same run is made against the
stand-in for Stripe's API at the pinned version (tests/standin), with `--latency` seconds
(250 ms by default) added to every Stripe call, as a distant Stripe would: the events are the
stand-in's own (`charge.succeeded` and `payment_intent.succeeded` for each payment, in
endive's shapes), and the table adds the Stripe calls each event cost.

Progress goes to stderr; the final table goes to stdout. Every process it starts is stopped
and every database or file it creates is removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
import stripe
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, text
from sqlalchemy.engine import Engine, make_url

from donations import migrate
from donations.cli import DEFAULT_BLOCKING_THREADS, DEFAULT_WORKERS
from donations.db import make_engine
from donations.emulator import LocalStripe, port_open
from donations.settings import DEV_STRIPE_PUBLISHABLE_KEY, DEV_STRIPE_SECRET_KEY
from donations.stripe.localstripe import LocalstripeGateway

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the stand-in lives with the tests

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
STRIPE_PORT = 8421
AMOUNT = 2500  # $25.00, one-off


# --- small helpers ----------------------------------------------------------------------------
def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def other_localstripes(own_port: int) -> list[int]:
    """Pids of other localstripe processes (all of them share /tmp/localstripe.pickle)."""
    found = []
    own = f"--port {own_port} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"localstripe" in cmdline and b"webhooks.py" not in cmdline and own not in cmdline:
                found.append(int(entry.name))
    return found


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header, built as Stripe builds it."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of latencies in seconds, answered in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000


class Progress:
    """A line on stderr every ~10 %."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self.done = 0
        self.step = 0
        self.started = time.perf_counter()
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            step = self.done * 10 // self.total
            if step > self.step:
                self.step = step
                elapsed = time.perf_counter() - self.started
                say(
                    f"    {self.label}: {self.done}/{self.total} ({step * 10}%), "
                    f"{elapsed:.1f}s, {self.done / elapsed:.1f}/s"
                )


@dataclass
class Phase:
    """Wall time, per-request latencies and outcomes of one concurrent phase."""

    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Successful operations per second of wall time."""
        return self.ok / self.seconds if self.seconds else float("nan")

    @property
    def ok(self) -> int:
        return self.count - len(self.errors)


def run_pool(
    label: str,
    items: Sequence[Any],
    work: Callable[[requests.Session, Any], tuple[bool, str]],
    concurrency: int,
) -> Phase:
    """Run `work(session, item)` over items from `concurrency` client threads."""
    local = threading.local()
    progress = Progress(label, len(items))
    phase = Phase(count=len(items))
    lock = threading.Lock()

    def one(item: Any) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        start = time.perf_counter()
        try:
            ok, outcome = work(session, item)
        except Exception as exc:  # a benchmark counts failures; it does not stop at the first
            ok, outcome = False, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - start
        with lock:
            phase.latencies.append(elapsed)
            phase.outcomes[outcome if ok else "error"] += 1
            if not ok:
                phase.errors.append(outcome)
        progress.tick()

    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        list(pool.map(one, items))
    except BaseException:  # Ctrl+C or SIGTERM: drop what is queued, let cleanup run now
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    phase.seconds = time.perf_counter() - started
    if phase.errors:
        say(f"    {label}: {len(phase.errors)} failed; first: {phase.errors[0][:300]}")
    return phase


# --- databases --------------------------------------------------------------------------------
@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'bench.sqlite3'}"


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on the server of `server_url`, dropped at the end."""
    import psycopg

    server = make_url(server_url)
    name = f"donations_bench_{secrets.token_hex(4)}"
    conninfo = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    say(f"  created database {name}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        say(f"  dropped database {name}")


def server_version(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return "SQLite " + str(conn.execute(text("select sqlite_version()")).scalar())
        return "PostgreSQL " + str(conn.execute(text("show server_version")).scalar()).split()[0]


def stop_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group this script started (the process and its children), then
    SIGKILL it if it has not ended in `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# --- the app under granian --------------------------------------------------------------------
class Granian:
    def __init__(self, env: dict[str, str], port: int, workers: int, threads: int, log: Path):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.args = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "donations.wsgi:app",
        ]
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the workers stop with it
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"granian exited ({self.proc.returncode}):\n{self.tail()}")
            return requests.get(f"{self.base}/readyz", timeout=2).status_code == 200

        try:
            wait_until(ready, 60, "granian to answer /readyz")
        except Exception:
            say(self.tail())
            raise

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_group(proc, timeout=10)


# --- one database -----------------------------------------------------------------------------
@dataclass
class Booking:
    """How the inbox's bookers kept up: events booked, over what wall time, and each event's
    lag from its acknowledgement to its booking."""

    count: int = 0
    seconds: float = 0.0
    lags: list[float] = field(default_factory=list)
    pending: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("nan")


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@dataclass
class Acks:
    """Acknowledgements under wrk: signed events (each a new one) stored in the inbox."""

    requests: int = 0
    ok: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    booking: Booking | None = None
    error: str = ""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")


# Each wrk thread posts its own share of pre-signed events (no event twice), then GETs /healthz
# until wrk stops, so no POST is cut mid-flight. Prints one JSON line for the script to read.
LUA_ACKS = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
  thread:set("nthreads", 0)
end
function init(args)
  ok, other, posted = 0, 0, 0
  local all = {}
  for line in io.lines(args[1]) do all[#all + 1] = line end
  local n = tonumber(args[2])
  mine = {}
  for i = tid, #all, n do mine[#mine + 1] = all[i] end
  idx = 0
end
function request()
  idx = idx + 1
  local line = mine[idx]
  if line == nil then return wrk.format("GET", "/healthz") end
  posted = posted + 1
  local tab = string.find(line, "\t", 1, true)
  return wrk.format("POST", "/webhooks/stripe", {
    ["Content-Type"] = "application/json",
    ["Stripe-Signature"] = string.sub(line, 1, tab - 1),
  }, string.sub(line, tab + 1))
end
function response(status, headers, body)
  if idx <= #mine then
    if status == 200 then ok = ok + 1 else other = other + 1 end
    if idx == #mine then finished = os.clock() end
  end
end
function done(summary, latency, requests)
  local okn, othern, postedn = 0, 0, 0
  for _, t in ipairs(threads) do
    okn = okn + t:get("ok"); othern = othern + t:get("other"); postedn = postedn + t:get("posted")
  end
  io.write(string.format(
    'ACKS {"ok":%d,"other":%d,"posted":%d,"p50_us":%d,"p99_us":%d,"duration_us":%d}\n',
    okn, othern, postedn, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def wrk_acks(
    base: str,
    secret: str,
    args: argparse.Namespace,
    workdir: Path,
    engine: Engine,
    bookers: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> Acks:
    """(a') wrk posts as many new signed events as the server acknowledges in
    `--ack-seconds`: payouts Stripe doesn't know (the bookers ask, and book them as ignored).
    `bookers`: what books them when the server's own processes don't (WEBHOOK_BOOKING=worker),
    started once wrk is done."""
    n = args.ack_events
    now = int(time.time())
    lines = []
    for k in range(n):
        body = json.dumps(
            {
                "id": f"evt_ack_{k}_{secrets.token_hex(6)}",  # new ids on every run
                "object": "event",
                "type": "payout.paid",
                "created": now,
                "livemode": False,
                "data": {"object": {"id": f"po_ack_{k}", "object": "payout"}},
            },
            separators=(",", ":"),
        ).encode()
        lines.append(sign(body, secret, now) + "\t" + body.decode())
    events_file = workdir / "ack-events.txt"
    events_file.write_text("\n".join(lines) + "\n")
    script = workdir / "acks.lua"
    script.write_text(LUA_ACKS)
    threads = 2
    say(f"  (a') wrk -t{threads} -c{args.concurrency}: up to {n} new signed events")
    since = datetime.now(UTC).replace(tzinfo=None)
    proc = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{args.concurrency}",
            f"-d{args.ack_seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            base,
            "--",
            str(events_file),
            str(threads),
        ],
        capture_output=True,
        text=True,
        timeout=args.ack_seconds + 120,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ACKS ")), None)
    acks = Acks()
    if proc.returncode != 0 or line is None:
        acks.error = f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout)[-300:]}"
        say(f"    {acks.error}")
        return acks
    data = json.loads(line.split(" ", 1)[1])
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT min(received_at), max(received_at), count(*) FROM stripe_events "
                "WHERE id LIKE 'evt_ack%' AND received_at >= :since"
            ),
            {"since": since},
        ).one()
    acks.requests, acks.ok = data["posted"], data["ok"]
    acks.p50_ms, acks.p99_ms = data["p50_us"] / 1000, data["p99_us"] / 1000
    if stored[2]:
        acks.seconds = (_when(stored[1]) - _when(stored[0])).total_seconds()
    # Stored may exceed acknowledged by the POSTs in flight when wrk stopped (answers it never
    # read); fewer stored than acknowledged would be an acknowledgement without its event.
    if stored[2] < acks.ok or stored[2] > acks.ok + args.concurrency:
        acks.error = f"{acks.ok} acknowledged but {stored[2]} stored"
    say(f"    {acks.ok} acknowledged in {acks.seconds:.1f}s ({acks.rate:,.0f}/s)")
    with bookers():
        acks.booking = wait_booked(engine, since)
    return acks


@contextlib.contextmanager
def webhooks_worker(env: dict[str, str], cwd: Path, log: Path) -> Iterator[None]:
    """`donations webhooks worker` in its own process group, stopped (with SIGTERM) after."""
    say("  starting `donations webhooks worker --every 0.5` to book them")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from donations.cli import main; main()",
             "webhooks", "worker", "--every", "0.5"],
            env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield
    finally:
        stop_group(proc, timeout=15)


def wait_booked(engine: Engine, since: datetime, timeout: float = 600.0) -> Booking:
    """Wait until no stored event waits to be booked; the booking lags of those received
    since `since` (the bookers run in the server's workers, woken by each acknowledgement)."""
    say("  waiting for the bookers to book the inbox")
    deadline = time.monotonic() + timeout
    pending = -1
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pending = conn.execute(
                text("SELECT count(*) FROM stripe_events WHERE status = 'pending'")
            ).scalar_one()
        if pending == 0:
            break
        time.sleep(0.1)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT received_at, booked_at FROM stripe_events "
                "WHERE received_at >= :since AND booked_at IS NOT NULL"
            ),
            {"since": since},
        ).all()
    booking = Booking(pending=max(pending, 0))
    if rows:
        received = [_when(r[0]) for r in rows]
        booked = [_when(r[1]) for r in rows]
        booking.count = len(rows)
        booking.seconds = (max(booked) - min(received)).total_seconds()
        booking.lags = [(b - r).total_seconds() for r, b in zip(received, booked, strict=True)]
    say(f"  booked {booking.count} in {booking.seconds:.1f}s, {booking.pending} still waiting")
    return booking


@dataclass
class Result:
    database: str
    stripe: str = "localstripe"
    version: str = ""
    stripe_calls: dict[str, float] = field(default_factory=dict)
    create: Phase = field(default_factory=Phase)
    confirm: Phase = field(default_factory=Phase)
    events: Phase = field(default_factory=Phase)
    duplicates: Phase = field(default_factory=Phase)
    refetch: Phase = field(default_factory=Phase)
    booking: Booking = field(default_factory=lambda: Booking())
    acks: Acks = field(default_factory=lambda: Acks())
    # The same with WEBHOOK_BOOKING=worker: the web processes only acknowledge.
    acks_alone: Acks = field(default_factory=lambda: Acks())
    raw: Phase = field(default_factory=Phase)
    check: str = "not run"
    check_ok: bool = False
    notes: list[str] = field(default_factory=list)


def run_database(
    kind: str, args: argparse.Namespace, stripe_base: str, workdir: Path, standin: Any = None
) -> Result:
    result = Result(
        database="SQLite" if kind == "sqlite" else "PostgreSQL",
        stripe="localstripe" if standin is None else f"stand-in +{args.latency * 1000:.0f} ms",
    )
    say(f"\n== {result.database}, Stripe: {result.stripe} ==")
    make_db = sqlite_database(workdir) if kind == "sqlite" else postgres_database(args.pg_url)
    with make_db as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        result.version = server_version(engine)
        say(f"  {result.version}, migrated")
        secret = f"whsec_bench_{secrets.token_hex(16)}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "DONATIONS_"))},
            "DONATIONS_ENV": "development",
            "DATABASE_URL": url,
            "STRIPE_API_BASE": stripe_base,
            **({"STRIPE_EMULATOR": "localstripe"} if standin is None else {}),
            "STRIPE_SECRET_KEY": DEV_STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": DEV_STRIPE_PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": secret,
            "DONATIONS_INSTANCE_PATH": str(workdir / "instance"),
            # a benchmark is one client sending many gifts: the card-testing limits stay out
            "CHECKOUT_LIMIT_PER_IP": "1000000/minute",
            "CHECKOUT_LIMIT_PER_EMAIL": "1000000/minute",
            "CHECKOUT_LIMIT_PER_CONTRIBUTION": "1000000/minute",
            "CHECKOUT_LIMIT_GLOBAL": "1000000/minute",
        }
        env.pop("REDIS_URL", None)
        server = Granian(
            env, free_port(), args.workers, args.blocking_threads, workdir / "granian.log"
        )
        try:
            say(
                f"  starting granian on {server.base} ({args.workers} workers x "
                f"{args.blocking_threads} blocking threads)"
            )
            server.start(cwd=workdir)
            if standin is None:
                drive_app(server.base, stripe_base, secret, args, result, engine)
                if shutil.which("wrk") and args.ack_seconds > 0:
                    result.acks = wrk_acks(server.base, secret, args, workdir, engine)
            else:
                drive_app_standin(server.base, standin, secret, args, result, engine)
        finally:
            server.stop()
        if standin is None and shutil.which("wrk") and args.ack_seconds > 0:
            alone_env = {**env, "WEBHOOK_BOOKING": "worker"}
            server = Granian(
                alone_env, free_port(), args.workers, args.blocking_threads, workdir / "granian.log"
            )
            say("  again with WEBHOOK_BOOKING=worker: the web processes only acknowledge")
            try:
                server.start(cwd=workdir)
                result.acks_alone = wrk_acks(
                    server.base,
                    secret,
                    args,
                    workdir,
                    engine,
                    bookers=lambda: webhooks_worker(alone_env, workdir, workdir / "worker.log"),
                )
            finally:
                server.stop()
        paid = args.events if standin is None else result.confirm.ok
        if paid != args.events:
            result.notes.append(f"{args.events - paid} payments could not be confirmed")
        verify(engine, paid, result)
        result.raw = raw_inserts(engine, args.raw_rows, args.concurrency)
        engine.dispose()
    return result


def drive_app(
    base: str,
    stripe_base: str,
    secret: str,
    args: argparse.Namespace,
    result: Result,
    engine: Engine,
) -> None:
    n, concurrency = args.events, args.concurrency
    json_headers = {"Content-Type": "application/json"}
    client = stripe.StripeClient(
        DEV_STRIPE_SECRET_KEY, base_addresses={"api": stripe_base}, max_network_retries=0
    )

    # Warm the pools (database connections in each worker) without measuring.
    run_pool(
        "warm-up",
        range(4 * concurrency),
        lambda s, _: (s.get(f"{base}/readyz", timeout=10).ok, "ready"),
        concurrency,
    )

    # (c) contribution creation through the public API, against the emulator.
    ids: dict[int, str] = {}
    intents: dict[str, str] = {}  # contribution id -> PaymentIntent id

    def create(session: requests.Session, i: int) -> tuple[bool, str]:
        body: dict[str, Any] = {
            "amount": AMOUNT,
            "currency": "usd",
            "frequency": "one_off",
            "email": f"reader{i}@bench.example.org",
            "cover_fees": False,
            "attribution": {"article": "bench", "placement": "direct"},
        }
        r = session.post(f"{base}/api/v1/contributions", json=body, timeout=60)
        if r.status_code != 201:
            return False, f"HTTP {r.status_code}: {r.text[:200]}"
        data = r.json()
        ids[i] = data["contribution"]["id"]
        intents[ids[i]] = data["stripe"]["client_secret"].split("_secret_")[0]
        return True, "created"

    say(f"  (c) creating {n} one-off contributions, {concurrency} clients")
    result.create = run_pool("create", range(n), create, concurrency)

    # Pay each one with the emulator's test card (server-side confirmation).
    pis: dict[str, str] = {}

    def confirm(session: requests.Session, contribution_id: str) -> tuple[bool, str]:
        r = session.post(
            f"{base}/api/v1/contributions/{contribution_id}/confirm",
            json={"payment_method": "pm_card_visa"},
            headers=json_headers,
            timeout=60,
        )
        if r.status_code != 200:
            return False, f"HTTP {r.status_code}: {r.text[:200]}"
        stripe_part = r.json()["stripe"]
        if stripe_part["status"] != "succeeded":
            return False, f"payment intent is {stripe_part['status']}"
        pis[contribution_id] = stripe_part["client_secret"].split("_secret_")[0]
        return True, "succeeded"

    say(f"  confirming {len(ids)} payments with pm_card_visa")
    result.confirm = run_pool("confirm", sorted(ids.values()), confirm, concurrency)
    unpaid = sorted(set(ids.values()) - set(pis))
    if unpaid:
        # The app could not confirm them: pay them at the emulator directly, so that the
        # webhook phase still measures (and shows) what the app does with the events.
        note = (
            f"{len(unpaid)} confirmations failed through the API "
            f"({Counter(e[:60] for e in result.confirm.errors).most_common(1)[0][0]}...); "
            "those payments were confirmed at localstripe directly with the Stripe SDK"
        )
        result.notes.append(note)
        say(f"  warning: {note}")

        def sdk_confirm(_session: requests.Session, contribution_id: str) -> tuple[bool, str]:
            pi_id = intents[contribution_id]
            client.v1.payment_intents.update(pi_id, params={"payment_method": "pm_card_visa"})
            pi = client.v1.payment_intents.confirm(pi_id)
            if pi.status != "succeeded":
                return False, f"payment intent is {pi.status}"
            pis[contribution_id] = pi_id
            return True, "succeeded"

        run_pool("confirm via SDK", unpaid, sdk_confirm, concurrency)

    # (a) signed payment_intent.succeeded events, each posted once, then each again.
    now = int(time.time())
    payloads = [
        json.dumps(
            {
                "id": f"evt_bench_{k}",
                "object": "event",
                "api_version": "2017-08-15",
                "type": "payment_intent.succeeded",
                "created": now,
                "livemode": False,
                "data": {"object": {"id": pi, "object": "payment_intent"}},
            }
        ).encode()
        for k, pi in enumerate(sorted(pis.values()), start=1)
    ]

    def deliver(expected: str) -> Callable[[requests.Session, bytes], tuple[bool, str]]:
        def post(session: requests.Session, payload: bytes) -> tuple[bool, str]:
            r = session.post(
                f"{base}/webhooks/stripe",
                data=payload,
                headers={**json_headers, "Stripe-Signature": sign(payload, secret)},
                timeout=60,
            )
            if r.status_code != 200:
                return False, f"HTTP {r.status_code}: {r.text[:200]}"
            outcome = str(r.json().get("outcome"))
            return outcome == expected, outcome

        return post

    say(f"  (a) posting {len(payloads)} signed payment_intent.succeeded events")
    since = datetime.now(UTC).replace(tzinfo=None)
    result.events = run_pool("acks", payloads, deliver("queued"), concurrency)
    result.booking = wait_booked(engine, since)
    say(f"  (a) posting the same {len(payloads)} events again (duplicates)")
    result.duplicates = run_pool("duplicates", payloads, deliver("duplicate"), concurrency)

    # The ceiling set by the emulator: the same gathering the handler does for each event
    # (the PaymentIntent with its charge and balance transaction), same clients, no app.
    gateway = LocalstripeGateway(client, publishable_key="", webhook_secrets=())

    def refetch(_session: requests.Session, pi_id: str) -> tuple[bool, str]:
        attempt = gateway.payment_intent(pi_id)
        if attempt.charge is None or attempt.charge.txn is None:
            return False, "payment intent has no charge"
        return True, "fetched"

    say(f"  the handler's Stripe re-fetches alone, for the same {len(pis)} payments")
    result.refetch = run_pool("re-fetches", sorted(pis.values()), refetch, concurrency)


def drive_app_standin(
    base: str,
    standin: Any,
    secret: str,
    args: argparse.Namespace,
    result: Result,
    engine: Engine,
) -> None:
    """Contributions paid through the app against the stand-in, then the stand-in's own
    events for them (charge.succeeded and payment_intent.succeeded), counting Stripe calls."""
    n, concurrency = args.events, args.concurrency
    run_pool(
        "warm-up",
        range(4 * concurrency),
        lambda s, _: (s.get(f"{base}/readyz", timeout=10).ok, "ready"),
        concurrency,
    )
    ids: list[str] = []
    lock = threading.Lock()

    def create(session: requests.Session, i: int) -> tuple[bool, str]:
        body = {
            "amount": AMOUNT,
            "currency": "usd",
            "frequency": "one_off",
            "email": f"reader{i}@bench.example.org",
            "attribution": {"article": "bench", "placement": "direct"},
        }
        r = session.post(f"{base}/api/v1/contributions", json=body, timeout=60)
        if r.status_code != 201:
            return False, f"HTTP {r.status_code}: {r.text[:200]}"
        with lock:
            ids.append(r.json()["contribution"]["id"])
        return True, "created"

    say(f"  (c) creating {n} one-off contributions, {concurrency} clients")
    result.create = run_pool("create", range(n), create, concurrency)

    def confirm(session: requests.Session, contribution_id: str) -> tuple[bool, str]:
        r = session.post(
            f"{base}/api/v1/contributions/{contribution_id}/confirm",
            json={"payment_method": "pm_card_visa"},
            timeout=60,
        )
        if r.status_code != 200:
            return False, f"HTTP {r.status_code}: {r.text[:200]}"
        return r.json()["stripe"]["status"] == "succeeded", "succeeded"

    say(f"  confirming {len(ids)} payments with pm_card_visa")
    result.confirm = run_pool("confirm", sorted(ids), confirm, concurrency)

    handled = ("charge.succeeded", "payment_intent.succeeded")
    events = [e for e in standin.undelivered() if e["type"] in handled]
    payloads = [json.dumps(e).encode() for e in events]
    types = [e["type"] for e in events]

    def post(expected: tuple[str, ...]) -> Callable[[requests.Session, bytes], tuple[bool, str]]:
        def one(session: requests.Session, payload: bytes) -> tuple[bool, str]:
            r = session.post(
                f"{base}/webhooks/stripe",
                data=payload,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(payload, secret),
                },
                timeout=60,
            )
            if r.status_code != 200:
                return False, f"HTTP {r.status_code}: {r.text[:200]}"
            outcome = str(r.json().get("outcome"))
            return outcome in expected, outcome

        return one

    calls_before = len(standin.requests)
    say(f"  (a) posting the stand-in's {len(payloads)} payment events ({', '.join(handled)})")
    since = datetime.now(UTC).replace(tzinfo=None)
    result.events = run_pool("acks", payloads, post(("queued",)), concurrency)
    result.booking = wait_booked(engine, since)
    calls = len(standin.requests) - calls_before
    result.stripe_calls["per event"] = calls / max(len(payloads), 1)
    # and per type, one event of each alone
    for type_ in handled:
        sample = next((p for p, t in zip(payloads, types, strict=True) if t == type_), None)
        if sample is None:
            continue
        fresh = json.loads(sample)
        fresh["id"] = f"evt_bench_again_{type_}"
        before = len(standin.requests)
        since = datetime.now(UTC).replace(tzinfo=None)
        ok, outcome = post(("queued",))(requests.Session(), json.dumps(fresh).encode())
        if not ok:
            result.notes.append(f"{fresh['id']}: {outcome}")
            say(f"    {fresh['id']} not queued: {outcome}")
        wait_booked(engine, since)
        result.stripe_calls[type_] = len(standin.requests) - before
    say(f"  (a) posting the same {len(payloads)} events again (duplicates)")
    result.duplicates = run_pool("duplicates", payloads, post(("duplicate",)), concurrency)


def verify(engine: Engine, n: int, result: Result) -> None:
    with engine.connect() as conn:
        payments = conn.execute(
            text("SELECT count(*) FROM journal_entries WHERE kind = 'payment_one_off'")
        ).scalar_one()
        fees = conn.execute(
            text("SELECT count(*) FROM journal_entries WHERE kind = 'stripe_fee'")
        ).scalar_one()
        events = conn.execute(
            text("SELECT count(*) FROM stripe_events WHERE id NOT LIKE 'evt_ack_%'")
        ).scalar_one()
        succeeded = conn.execute(
            text("SELECT count(*) FROM contributions WHERE status = 'succeeded'")
        ).scalar_one()
        unbalanced = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT currency FROM journal_lines GROUP BY currency "
                "HAVING sum(amount) <> 0) AS u"
            )
        ).scalar_one()
    expected_events = n if not result.stripe_calls else result.events.count + 2
    result.check_ok = (
        payments == n and events == expected_events and succeeded == n and unbalanced == 0
    )
    result.check = (
        f"{'OK' if result.check_ok else 'MISMATCH'}: {payments}/{n} payment entries, "
        f"{fees} fee entries, {events} events recorded, {succeeded} contributions succeeded, "
        f"books {'balanced' if unbalanced == 0 else 'UNBALANCED'}"
    )
    say(f"  check: {result.check}")


def raw_inserts(engine: Engine, rows: int, concurrency: int) -> Phase:
    """(b) The baseline: one INSERT per transaction into a scratch table, same concurrency."""
    scratch = Table(
        "bench_raw_inserts",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("payload", String(200), nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    scratch.drop(engine, checkfirst=True)
    scratch.create(engine)
    insert = scratch.insert()
    say(f"  (b) baseline: {rows} single-row INSERT transactions, {concurrency} clients")

    def one(_session: requests.Session, i: int) -> tuple[bool, str]:
        with engine.begin() as conn:
            conn.execute(
                insert,
                {
                    "payload": f"row {i} {secrets.token_hex(8)}",
                    "created_at": datetime.now(UTC).replace(tzinfo=None),
                },
            )
        return True, "inserted"

    phase = run_pool("raw inserts", range(rows), one, concurrency)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM bench_raw_inserts")).scalar_one()
    if stored != rows:
        phase.errors.append(f"{stored} rows stored of {rows}")
    scratch.drop(engine)
    return phase


# --- report -----------------------------------------------------------------------------------
def table(results: list[Result], args: argparse.Namespace) -> str:
    def rate(p: Phase) -> str:
        if not p.count:
            return "—"
        failed = f" ({len(p.errors)} failed)" if p.errors else ""
        return f"{p.rate:,.1f}/s{failed}"

    def lat(p: Phase) -> str:
        if not p.count:
            return "—"
        return f"{pct(p.latencies, 50):,.1f} / {pct(p.latencies, 99):,.1f}"

    def ratio(acks: Acks, r: Result) -> str:
        if not r.raw.rate or not acks.ok:
            return "n/a"
        return f"{acks.rate / r.raw.rate:.2f}"

    def ack_rate(acks: Acks) -> str:
        if acks.error:
            return f"error: {acks.error}" if not acks.ok else f"{acks.ok} events ({acks.error})"
        return f"{acks.rate:,.0f}/s ({acks.ok} events)" if acks.ok else "—"

    def ack_latency(acks: Acks) -> str:
        return f"{acks.p50_ms:,.1f} / {acks.p99_ms:,.1f}" if acks.ok else "—"

    def ack_booked(acks: Acks) -> str:
        b = acks.booking
        if b is None or not b.count:
            return "—"
        lag = f"lag p99 {pct(b.lags, 99) / 1000:.1f} s"
        return f"{b.rate:,.0f}/s, {lag}" + (f" ({b.pending} left)" if b.pending else "")

    def booked(r: Result) -> str:
        b = r.booking
        if not b.count:
            return "—"
        left = f" ({b.pending} left)" if b.pending else ""
        return f"{b.rate:,.1f}/s{left}"

    def lag(r: Result) -> str:
        lags = r.booking.lags
        if not lags:
            return "—"
        return f"{pct(lags, 50) / 1000:.2f} / {pct(lags, 99) / 1000:.2f} / {max(lags):.2f}"

    def calls(r: Result) -> str:
        if not r.stripe_calls:
            return "—"
        per_type = ", ".join(
            f"{k.split('.')[0]} {v:.0f}" for k, v in r.stripe_calls.items() if k != "per event"
        )
        return f"{r.stripe_calls['per event']:.2f} ({per_type})"

    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("Stripe", lambda r: r.stripe),
        ("Stripe calls per event", calls),
        ("(c) contributions created", lambda r: rate(r.create)),
        ("    p50 / p99 ms", lambda r: lat(r.create)),
        ("    payments confirmed", lambda r: rate(r.confirm)),
        ("    p50 / p99 ms", lambda r: lat(r.confirm)),
        ("(a) webhook acknowledgements", lambda r: rate(r.events)),
        ("    p50 / p99 ms", lambda r: lat(r.events)),
        ("    events booked (inbox)", booked),
        ("    booking lag p50/p99/max s", lag),
        ("    duplicate events", lambda r: rate(r.duplicates)),
        ("    p50 / p99 ms", lambda r: lat(r.duplicates)),
        ("    Stripe re-fetches alone", lambda r: rate(r.refetch)),
        ("    p50 / p99 ms", lambda r: lat(r.refetch)),
        ("(b) raw 1-row INSERT txns", lambda r: rate(r.raw)),
        ("    p50 / p99 ms", lambda r: lat(r.raw)),
        ("(a') acks under wrk, booking in web", lambda r: ack_rate(r.acks)),
        ("    p50 / p99 ms", lambda r: ack_latency(r.acks)),
        ("    then booked", lambda r: ack_booked(r.acks)),
        ("    acks ÷ raw inserts", lambda r: ratio(r.acks, r)),
        ("(a'') acks, booking by worker", lambda r: ack_rate(r.acks_alone)),
        ("    p50 / p99 ms", lambda r: ack_latency(r.acks_alone)),
        ("    then booked (worker)", lambda r: ack_booked(r.acks_alone)),
        ("    acks ÷ raw inserts (≥ 0.5)", lambda r: ratio(r.acks_alone, r)),
        ("ledger check", lambda r: "OK" if r.check_ok else r.check.split(":")[0]),
    ]
    first = max(len(label) for label, _ in rows) + 2
    width = max(
        [
            24,
            *(len(get(r)) + 2 for r in results for _, get in rows),
            *(len(r.version) + 2 for r in results),
        ]
    )
    out = [
        f"donations webhook benchmark: {args.events} events, {args.concurrency} concurrent "
        f"clients, granian {args.workers} workers x {args.blocking_threads} blocking threads, "
        f"{os.cpu_count()} CPUs",
        f"Python {platform.python_version()}, granian {metadata.version('granian')}, "
        f"stripe {metadata.version('stripe')}, localstripe {metadata.version('localstripe')}, "
        f"raw baseline {args.raw_rows} rows",
        "",
        " " * first + "".join(r.database.ljust(width) for r in results),
        " " * first + "".join(r.version.ljust(width) for r in results),
    ]
    out += [
        label.ljust(first) + "".join(get(r).ljust(width) for r in results) for label, get in rows
    ]
    out.append("")
    out += [f"{r.database}: {r.check}" for r in results]
    out += [f"{r.database}: note: {note}" for r in results for note in r.notes]
    for r in results:
        for label, phase in (("events", r.events), ("duplicates", r.duplicates)):
            if phase.errors:
                error, times = Counter(e[:160] for e in phase.errors).most_common(1)[0]
                out.append(
                    f"{r.database}: {len(phase.errors)} {label} failed; most common "
                    f"({times}x): {error}"
                )
    return "\n".join(line.rstrip() for line in out)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="payments/events (default 300)")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a server to create a DB on")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--raw-rows", type=int, default=2000, help="baseline INSERTs (2000)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--blocking-threads", type=int, default=DEFAULT_BLOCKING_THREADS)
    parser.add_argument("--stripe-port", type=int, default=STRIPE_PORT)
    parser.add_argument(
        "--stripe",
        choices=["localstripe", "standin", "both"],
        default="both",
        help="the emulator (2017 shapes), the pinned version's stand-in, or both",
    )
    parser.add_argument(
        "--latency", type=float, default=0.25, help="seconds per stand-in call (0.25)"
    )
    parser.add_argument(
        "--ack-seconds", type=float, default=8.0, help="wrk acknowledgement phase (8 s; 0: off)"
    )
    parser.add_argument(
        "--ack-events", type=int, default=40_000, help="pre-signed events for it (40,000)"
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.concurrency < 1 or args.raw_rows < 1:
        parser.error("--events, --concurrency and --raw-rows must be positive")
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]

    # A SIGTERM unwinds like Ctrl+C, so every finally below runs.
    signal.signal(signal.SIGTERM, _interrupt)

    if args.stripe != "standin" and port_open(args.stripe_port):
        say(f"port {args.stripe_port} is taken: is another localstripe running there?")
        return 2
    others = other_localstripes(args.stripe_port)
    if others:
        say(
            f"warning: localstripe already running (pids {others}); both write "
            "/tmp/localstripe.pickle, which slows both down"
        )

    workdir = Path(tempfile.mkdtemp(prefix="donations-bench-"))
    emulator = LocalStripe(args.stripe_port, log_path=workdir / "localstripe.log")
    standin: Any = None
    results: list[Result] = []
    started = time.perf_counter()
    modes = ["localstripe", "standin"] if args.stripe == "both" else [args.stripe]
    try:
        if "localstripe" in modes:
            say(f"starting localstripe on {emulator.base}")
            emulator.start()
        if "standin" in modes:
            from tests.standin import StripeStandin

            standin = StripeStandin(latency=args.latency).start()
            say(f"stand-in for Stripe (2026-10-28.endive) on {standin.base}, +{args.latency}s/call")
        for mode in modes:
            for kind in kinds:
                db_dir = workdir / f"{mode}-{kind}"
                db_dir.mkdir()
                try:
                    if mode == "localstripe":
                        emulator.flush()  # each database starts from an empty emulator
                        results.append(run_database(kind, args, emulator.base, db_dir))
                    else:
                        standin.reset()
                        results.append(run_database(kind, args, standin.base, db_dir, standin))
                except Exception as exc:  # report it, and still run the others
                    say(traceback.format_exc())
                    name = "SQLite" if kind == "sqlite" else "PostgreSQL"
                    results.append(
                        Result(
                            database=name, stripe=mode, check=f"ERROR: {type(exc).__name__}: {exc}"
                        )
                    )
                seen = sorted(set(others) | set(other_localstripes(args.stripe_port)))
                if seen and mode == "localstripe":
                    results[-1].notes.append(
                        f"other localstripe processes ran at the start or end (pids {seen}): "
                        "the machine was shared, so these figures are contended"
                    )
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        emulator.stop()
        if standin is not None:
            standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"\ndone in {time.perf_counter() - started:.0f}s\n")
    print(table(results, args), flush=True)
    return 0 if all(r.check_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
