"""Soak: the reader endpoints at saturation, alone and while signed webhooks arrive, under the
recommended server (`donations serve`: granian, 2 workers × 4 blocking threads).

Two phases of --duration seconds (default 60) each, on one server:
  1. readers alone: wrk saturating GET /api/v1/appeal with varied reader queries (bench/appeal.py's)
     and wrk saturating POST /api/v1/events with batches of 20 events (real impression tokens);
  2. the same two loads while a steady stream of Stripe's own signed `payout.created` events
     arrives (--webhooks-per-second, default 20), for payouts made beforehand at the stand-in for
     Stripe's API at the pinned version (tests/standin), with --stripe-latency seconds per call.
The webhooks are acknowledged once stored (the inbox) and booked by the workers' bookers, so the
readers' throughput with them must stay ≥ 0.8× that without. Then it checks: 0 errors (non-2xx
or socket errors) on every load, every webhook answered 200, the ledger holding exactly one
payout entry per webhook sent once the inbox is booked, and the stored event counts equal the
events accepted. It prints each worker's resident memory before and after.

    python bench/soak.py                   # SQLite file, 2 × 60 s
    python bench/soak.py --postgres-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import stripe  # noqa: E402
from appeal import (  # noqa: E402
    Load,
    Server,
    event_total,
    free_port,
    prepare,
    run_wrk,
    say,
    wait_until,
)
from webhooks import sign, webhooks_worker  # noqa: E402

from donations.settings import DEV_WEBHOOK_SECRET  # noqa: E402

WORKERS, THREADS = 2, 4  # what `donations serve` runs by default (README, "Serving")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def workers_of(pid: int) -> list[int]:
    """The server's worker processes (children of its main process)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children += [int(c) for c in text]
    return sorted(children)


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for child in workers_of(pid):
        out += [child, *descendants(child)]
    return out


def memory(pid: int) -> dict[str, int]:
    """RSS of `donations serve`, granian's main process and each worker (the leaves)."""
    out = {"donations serve": rss_kib(pid)}
    for child in descendants(pid):
        kind = "worker" if not workers_of(child) else "granian main"
        out[f"{kind} (pid {child})"] = rss_kib(child)
    return out


class Webhooks(threading.Thread):
    """Stripe's own signed events, one after another at a steady rate, until stopped or all
    sent; records every answer."""

    def __init__(
        self, base: str, rate: float, events: list[dict[str, Any]], stop: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.base, self.rate, self.events, self.stop = base, rate, events, stop
        self.sent: list[str] = []
        self.failures: list[str] = []
        self.latencies: list[float] = []

    def run(self) -> None:
        http = requests.Session()
        interval, next_at = 1 / self.rate, time.monotonic()
        for event in self.events:
            if self.stop.is_set():
                return
            body = json.dumps(event).encode()
            started = time.monotonic()
            try:
                r = http.post(
                    f"{self.base}/webhooks/stripe",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "Stripe-Signature": sign(body, DEV_WEBHOOK_SECRET),
                    },
                    timeout=30,
                )
                ok = r.status_code == 200
                detail = f"HTTP {r.status_code}: {r.text[:120]}"
            except requests.RequestException as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            self.latencies.append(time.monotonic() - started)
            self.sent.append(event["data"]["object"]["id"])
            if not ok:
                self.failures.append(detail)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def payouts_booked(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(sa.text("SELECT count(*) FROM journal_entries WHERE kind = 'payout'"))
            )
    finally:
        engine.dispose()


def postgres_database(server_url: str) -> str:
    name = f"donations_soak_{secrets.token_hex(4)}"
    admin = sa.create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    atexit.register(drop_database, server_url, name)  # whatever way the soak ends
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(server_url: str, name: str) -> None:
    admin = sa.create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    say(f"dropped database {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--webhooks-per-second", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32, help="per wrk load")
    parser.add_argument("--postgres-url", help="run on a fresh database on this server")
    parser.add_argument(
        "--stripe-latency", type=float, default=0.05, help="seconds per stand-in call (0.05)"
    )
    parser.add_argument(
        "--webhook-booking",
        choices=["web", "worker"],
        default="web",
        help="who books the webhooks: the web processes (default) or `donations webhooks "
        "worker` beside them (WEBHOOK_BOOKING=worker, as the compose stack runs)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="donations-soak-"))
    fx = prepare(workdir, random.Random(20201215), 3000)
    url = fx.url
    if args.postgres_url:
        from donations import migrate

        url = postgres_database(args.postgres_url)
        say(f"using PostgreSQL database {url.rsplit('/', 1)[1]}")
        migrate.upgrade(url)
        # the same campaigns as the SQLite fixture
        from appeal import campaign_documents

        from donations.appeals.campaigns import save_campaign
        from donations.appeals.documents import CampaignDocument
        from donations.db import Database

        database = Database(url)
        from datetime import UTC, datetime

        with database.transaction() as session:
            for raw in campaign_documents(
                random.Random(20201215), datetime.now(UTC).replace(tzinfo=None)
            ):
                save_campaign(session, CampaignDocument().load(raw))
        database.dispose()

    # Stripe: the stand-in for its API at the pinned version, in this process, with money in
    # the balance and the payouts whose events the webhook phase will send.
    from tests.standin import StripeStandin

    standin = StripeStandin(latency=args.stripe_latency).start()
    say(f"stand-in for Stripe on {standin.base} (+{args.stripe_latency}s per call)")
    n_hooks = int(args.duration * args.webhooks_per_second) + 10
    sdk = stripe.StripeClient("sk_test_soak", base_addresses={"api": standin.base})
    funds = sdk.v1.payment_intents.create(
        params={"amount": 100 * n_hooks + 10_000, "currency": "usd",
                "allowed_payment_method_types": ["card"]}
    )  # fmt: skip
    sdk.v1.payment_intents.confirm(funds.id, params={"payment_method": "pm_card_visa"})
    latency, standin.latency = standin.latency, 0.0
    for _ in range(n_hooks):
        standin.create_payout(100)
    standin.latency = latency
    payout_events = [e for e in standin.undelivered() if e["type"] == "payout.created"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env: dict[str, Any] = {
        **fx.env,
        "DATABASE_URL": url,
        "STRIPE_API_BASE": standin.base,
        "STRIPE_SECRET_KEY": "sk_test_soak",
        "STRIPE_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
        "PUBLIC_BASE_URL": base,
        "WEBHOOK_BOOKING": args.webhook_booking,
    }
    env.pop("STRIPE_EMULATOR", None)
    cmd = [
        sys.executable, "-m", "donations.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(WORKERS), "--blocking-threads", str(THREADS),
    ]  # fmt: skip
    server = Server("donations serve", cmd, env, workdir / "server.log")
    server.start(base)
    booker = contextlib.ExitStack()
    if args.webhook_booking == "worker":
        booker.enter_context(webhooks_worker(env, workdir, workdir / "worker.log"))
    phases: dict[str, dict[str, Load]] = {}
    hooks: Webhooks | None = None
    try:
        wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).ok, 30, "readiness")
        before_events = event_total(url)
        assert server.proc is not None
        main_pid = server.proc.pid
        mem_before = memory(main_pid)
        say(f"memory before: {mem_before}")

        def phase(name: str, with_hooks: bool) -> dict[str, Load]:
            nonlocal hooks
            results: dict[str, Load] = {}

            def load(kind: str, script: Path, extra: list[str], tail: float) -> None:
                results[kind] = run_wrk(
                    f"{name}: {kind}",
                    base,
                    script,
                    extra,
                    threads=1,
                    connections=args.connections,
                    seconds=args.duration + tail,
                )

            rate = f", webhooks at {args.webhooks_per_second:g}/s" if with_hooks else ""
            say(f"{name}: {args.duration:.0f} s, appeal + events at saturation{rate}")
            stop = threading.Event()
            if with_hooks:
                hooks = Webhooks(base, args.webhooks_per_second, payout_events, stop)
            loads = [
                threading.Thread(
                    target=load,
                    args=("appeal", fx.get_lua, [str(fx.queries), "/api/v1/appeal?"], 0.0),
                ),
                # the events load ends with a few seconds of /healthz: no batch in flight
                threading.Thread(
                    target=load,
                    args=("events", fx.events_lua, [str(fx.bodies), f"{args.duration:g}"], 3.0),
                ),
            ]
            if hooks is not None and with_hooks:
                hooks.start()
            for t in loads:
                t.start()
            started = time.monotonic()
            while any(t.is_alive() for t in loads):
                time.sleep(5)
                sent = f", {len(hooks.sent)} webhooks sent" if with_hooks and hooks else ""
                say(f"  … {time.monotonic() - started:.0f} s{sent}")
            stop.set()
            if with_hooks and hooks is not None:
                hooks.join(timeout=60)
            return results

        phases["readers alone"] = phase("readers alone", with_hooks=False)
        phases["with webhooks"] = phase("with webhooks", with_hooks=True)
        mem_after = memory(main_pid)
        sent = len(hooks.sent) if hooks else 0
        wait_until(lambda: payouts_booked(url) >= sent, 120, "every webhook booked")
        booked = payouts_booked(url)
    finally:
        booker.close()
        server.stop()
        standin.stop()
    # in-process counts are flushed at shutdown: compare after the server stopped
    accepted = sum(p["events"].counts.get("accepted", 0) for p in phases.values() if "events" in p)
    in_flight = sum(
        p["events"].counts.get("sent_events", 0) - p["events"].counts.get("s202", 0)
        for p in phases.values()
        if "events" in p
    )
    stored = event_total(url) - before_events

    booked_by = "the web processes" if args.webhook_booking == "web" else "a webhooks worker"
    print(f"\nSoak: 2 × {args.duration:.0f} s under donations serve ({WORKERS} workers × "
          f"{THREADS} threads), database {'PostgreSQL' if args.postgres_url else 'SQLite'}, "
          f"Stripe stand-in +{args.stripe_latency * 1000:.0f} ms per call, webhooks booked by "
          f"{booked_by}")  # fmt: skip
    ok = all(set(p) == {"appeal", "events"} for p in phases.values()) and len(phases) == 2
    for phase_name, results in phases.items():
        for name, result in results.items():
            errors = result.non_2xx + result.socket_errors + result.counts.get("timeouts", 0)
            ok &= errors == 0 and not result.error
            print(
                f"  {phase_name:14} {name:7} {result.rate:9,.0f} req/s  p50 "
                f"{result.p50_ms:6.1f} ms  p99 {result.p99_ms:7.1f} ms  errors {errors}  "
                f"{result.error}"
            )
    if len(phases) == 2:
        alone, loaded = phases["readers alone"], phases["with webhooks"]
        for kind in ("appeal", "events"):
            if kind in alone and kind in loaded and alone[kind].rate:
                ratio = loaded[kind].rate / alone[kind].rate
                verdict = "≥ 0.8" if ratio >= 0.8 else "BELOW 0.8"
                print(f"  {kind} throughput with webhooks ÷ without: {ratio:.2f} ({verdict})")
                ok &= ratio >= 0.8
    lat = sorted(hooks.latencies) if hooks and hooks.latencies else [0.0]
    failures = hooks.failures if hooks else []
    print(
        f"  webhooks {sent} sent, {len(failures)} failed, acknowledged p50 "
        f"{lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms; "
        f"ledger holds {booked} payout entries ({'exact' if booked == sent else 'MISMATCH'})"
    )
    ok &= not failures and booked == sent and sent > 0
    verdict = "exact" if stored == accepted else "MISMATCH"
    print(f"  events   {accepted:,} accepted, {stored:,} stored ({verdict}; "
          f"{in_flight} batches in flight)")  # fmt: skip
    ok &= stored == accepted
    print("  memory (RSS, KiB) before → after:")
    for key, kib in mem_before.items():
        print(f"    {key:28} {kib:8,} → {mem_after.get(key, 0):8,}")
    for failure in failures[:5]:
        print(f"  webhook failure: {failure}")
    print("RESULT:", "OK" if ok else "FAILED")
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"the server's log and the fixtures are kept in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
