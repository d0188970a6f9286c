"""Soak: the reader endpoints at saturation while signed webhooks arrive, under the recommended
server (`donations serve`: granian, 2 workers × 4 blocking threads).

For --duration seconds (default 60) three loads run at once against one server:
  - wrk saturating GET /api/v1/appeal with varied reader queries (bench/appeal.py's),
  - wrk saturating POST /api/v1/events with batches of 20 events,
  - a steady stream of signed `payout.paid` webhooks (--webhooks-per-second), each a new payout.
Then it checks: 0 errors (non-2xx or socket errors) on every load, every webhook answered 200,
the ledger holds exactly one payout entry per webhook sent, and the stored event counts equal
the events accepted. It prints each worker's resident memory before and after.

    python bench/soak.py                   # SQLite file, 60 s
    python bench/soak.py --postgres-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
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

from appeal import (  # noqa: E402
    BATCH,
    Load,
    Server,
    event_total,
    free_port,
    prepare,
    run_wrk,
    say,
    wait_until,
)
from webhooks import sign  # noqa: E402

from donations.emulator import LocalStripe  # noqa: E402
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
    """Signed payout.paid events at a steady rate until stopped; records every answer."""

    def __init__(self, base: str, rate: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.rate, self.stop = base, rate, stop
        self.sent: list[str] = []
        self.failures: list[str] = []
        self.latencies: list[float] = []

    def run(self) -> None:
        http = requests.Session()
        interval, next_at = 1 / self.rate, time.monotonic()
        while not self.stop.is_set():
            payout_id = f"po_soak_{secrets.token_hex(8)}"
            event = {
                "id": f"evt_soak_{secrets.token_hex(8)}",
                "object": "event",
                "type": "payout.paid",
                "created": int(time.time()),
                "data": {
                    "object": {
                        "id": payout_id,
                        "object": "payout",
                        "amount": 1000,
                        "currency": "usd",
                        "created": int(time.time()),
                        "arrival_date": int(time.time()),
                        "status": "paid",
                    }
                },
            }
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
            self.sent.append(payout_id)
            if not ok:
                self.failures.append(detail)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def payouts_booked(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM journal_entries "
                        "WHERE kind = 'payout' AND key LIKE 'payout:po_soak_%'"
                    )
                )
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
    return server_url.rsplit("/", 1)[0] + "/" + name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--webhooks-per-second", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32, help="per wrk load")
    parser.add_argument("--postgres-url", help="run on a fresh database on this server")
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

    stripe_port = free_port()
    emulator = LocalStripe(stripe_port, log_path=workdir / "localstripe.log")
    say(f"starting localstripe on {stripe_port}")
    emulator.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env: dict[str, Any] = {
        **fx.env,
        "DATABASE_URL": url,
        "STRIPE_API_BASE": emulator.base,
        "PUBLIC_BASE_URL": base,
    }
    cmd = [
        sys.executable, "-m", "donations.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(WORKERS), "--blocking-threads", str(THREADS),
    ]  # fmt: skip
    server = Server("donations serve", cmd, env, workdir / "server.log")
    server.start(base)
    try:
        wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).ok, 30, "readiness")
        before_events = event_total(url)
        assert server.proc is not None
        main_pid = server.proc.pid
        mem_before = memory(main_pid)
        say(f"memory before: {mem_before}")

        stop = threading.Event()
        hooks = Webhooks(base, args.webhooks_per_second, stop)
        results: dict[str, Load] = {}

        def load(name: str, script: Path, extra: list[str], tail: float) -> None:
            results[name] = run_wrk(
                name,
                base,
                script,
                extra,
                threads=1,
                connections=args.connections,
                seconds=args.duration + tail,
            )

        say(f"soaking for {args.duration:.0f} s: appeal + events at saturation, webhooks at "
            f"{args.webhooks_per_second:g}/s")  # fmt: skip
        loads = [
            threading.Thread(
                target=load, args=("appeal", fx.get_lua, [str(fx.queries), "/api/v1/appeal?"], 0.0)
            ),
            # the events load ends with a few seconds of /healthz, so no batch is in flight
            threading.Thread(
                target=load,
                args=("events", fx.events_lua, [str(fx.bodies), f"{args.duration:g}"], 3.0),
            ),
        ]
        hooks.start()
        for t in loads:
            t.start()
        started = time.monotonic()
        while any(t.is_alive() for t in loads):
            time.sleep(5)
            say(f"  … {time.monotonic() - started:.0f} s, {len(hooks.sent)} webhooks sent")
        stop.set()
        hooks.join(timeout=60)
        mem_after = memory(main_pid)

        sent = len(hooks.sent)
        wait_until(lambda: payouts_booked(url) >= sent, 60, "every webhook booked")
        booked = payouts_booked(url)
    finally:
        server.stop()
        emulator.stop()
    # in-process counts are flushed at shutdown: compare after the server stopped
    events = results.get("events")
    accepted = events.counts.get("s202", 0) * BATCH if events else 0
    in_flight = (
        (events.counts.get("sent_events", 0) - events.counts.get("s202", 0)) if events else 0
    )
    stored = event_total(url) - before_events

    print(f"\nSoak: {args.duration:.0f} s under donations serve ({WORKERS} workers × {THREADS} "
          f"threads), database {'PostgreSQL' if args.postgres_url else 'SQLite'}")  # fmt: skip
    ok = set(results) == {"appeal", "events"}  # both loads ran (wrk is Debian's `wrk`)
    for name, result in results.items():
        errors = result.non_2xx + result.socket_errors + result.counts.get("timeouts", 0)
        ok &= errors == 0 and not result.error
        print(
            f"  {name:8} {result.rate:9,.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
            f"p99 {result.p99_ms:7.1f} ms  errors {errors}  {result.error}"
        )
    lat = sorted(hooks.latencies) or [0.0]
    print(
        f"  webhooks {sent} sent, {len(hooks.failures)} failed, p50 "
        f"{lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms; "
        f"ledger holds {booked} payout entries ({'exact' if booked == sent else 'MISMATCH'})"
    )
    ok &= not hooks.failures and booked == sent
    if events is not None:
        verdict = "exact" if stored == accepted else "MISMATCH"
        print(f"  events   {accepted:,} accepted, {stored:,} stored ({verdict}; "
              f"{in_flight} batches in flight)")  # fmt: skip
        ok &= stored == accepted
    print("  memory (RSS, KiB) before → after:")
    for key, kib in mem_before.items():
        print(f"    {key:28} {kib:8,} → {mem_after.get(key, 0):8,}")
    for failure in hooks.failures[:5]:
        print(f"  webhook failure: {failure}")
    print("RESULT:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
