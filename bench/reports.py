"""Report endpoints at newsroom scale: 1,000,000 contributions and 10,000,000 event counts.

Seeds a fresh database (SQLite file, and PostgreSQL when --postgres-url is given) with a year
of contributions, their journal entries (payments, Stripe fees, refunds, disputes), their
subscriptions and the appeal event counts, then times every report endpoint through the app
(in-process WSGI, viewer token) and prints a table: median and worst of --repeat runs after a
warm-up, against the 300 ms target.

    python bench/reports.py                                   # SQLite only
    python bench/reports.py --postgres-url postgresql://postgres@127.0.0.1:5432/test
    python bench/reports.py --contributions 100000 --events 1000000   # a quick look

Seeding shows progress on stderr; --reuse skips it when the database already holds the data.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from donations import migrate  # noqa: E402
from donations.ledger import accounts as a  # noqa: E402
from donations.ledger import postings  # noqa: E402

TARGET_MS = 300.0
BATCH = 20_000
CURRENCIES = (("usd", 0.70), ("eur", 0.15), ("gbp", 0.10), ("jpy", 0.05))
FREQUENCIES = (("one_off", 0.70), ("monthly", 0.25), ("annual", 0.05))
PLACEMENTS = ("epic", "banner", "gate")
EVENT_TYPES = ("impression", "view", "click", "dismiss")
N_ARTICLES = 5_000
N_CAMPAIGNS = 20
VARIANTS = ("control", "b", "c")
DAYS = 365


def same_currency(contra: str, amount: int, currency: str) -> postings.Lines:
    """Money returned to a donor of a newsroom settled in the donor's currency."""
    return postings.returned(
        contra,
        amount,
        currency=currency,
        settled=amount,
        at_rate=amount,
        settlement_currency=currency,
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 2 or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            say(
                f"  {self.label}: {self.done:,}/{self.total:,} "
                f"({100 * self.done / self.total:.0f}%, {rate:,.0f}/s)"
            )


def pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x, acc = rng.random(), 0.0
    for value, weight in weighted:
        acc += weight
        if x < acc:
            return value
    return weighted[-1][0]


# --- what gets seeded ----------------------------------------------------------------------------
@dataclass
class Rows:
    contributions: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    lines: list[dict[str, Any]]


def ledger_rows(n: int, today: date, rng: random.Random) -> Iterator[Rows]:
    """Contributions over the last DAYS days with their journal and subscriptions, in batches.
    Amounts follow the service's own posting rules (donations.ledger.postings)."""
    start = datetime.combine(today - timedelta(days=DAYS - 1), datetime.min.time())
    recurring_firsts: list[tuple[str, str, str]] = []  # (id, currency, frequency)
    entry_id = line_id = 0
    for base in range(0, n, BATCH):
        rows = Rows([], [], [], [])
        for i in range(base, min(base + BATCH, n)):
            cid = f"ctb_{i:024x}"
            created = start + timedelta(seconds=int(i * DAYS * 86400 / n) + rng.randrange(60))
            parent = None
            if recurring_firsts and rng.random() < 0.10:  # a renewal of an earlier subscription
                parent, currency, frequency = rng.choice(recurring_firsts)
            else:
                currency, frequency = pick(rng, CURRENCIES), pick(rng, FREQUENCIES)
            zero_decimal = currency == "jpy"
            amount = rng.choice((500, 1000, 1500, 2500, 5000, 10000)) * (10 if zero_decimal else 1)
            covered = 0 if rng.random() < 0.6 else (amount * 3 // 100 + (0 if zero_decimal else 30))
            total = amount + covered
            roll = rng.random()
            status = (
                "failed"
                if roll < 0.03
                else "refunded"
                if roll < 0.05
                else "disputed"
                if roll < 0.055
                else "succeeded"
            )
            article = f"article-{rng.randrange(N_ARTICLES):05d}"
            campaign = f"campaign-{rng.randrange(N_CAMPAIGNS):02d}"
            rows.contributions.append(
                {
                    "id": cid,
                    "status": status,
                    "frequency": frequency,
                    "currency": currency,
                    "amount": amount,
                    "fee_covered": covered,
                    "total": total,
                    "article": article,
                    "campaign": campaign,
                    "variant": rng.choice(VARIANTS),
                    "placement": rng.choice(PLACEMENTS),
                    "parent_id": parent,
                    "refunded_amount": total if status == "refunded" else 0,
                    "created_at": created,
                    "updated_at": created,
                    "succeeded_at": None if status == "failed" else created,
                }
            )
            if status == "failed":
                continue
            if parent is None and frequency != "one_off":
                recurring_firsts.append((cid, currency, frequency))
                canceled = created + timedelta(days=40) if rng.random() < 0.2 else None
                rows.subscriptions.append(
                    {
                        "id": f"sub_{i:024x}",
                        "contribution_id": cid,
                        "status": "canceled" if canceled else "active",
                        "currency": currency,
                        "amount": total,
                        "interval": "month" if frequency == "monthly" else "year",
                        "cancel_at_period_end": False,
                        "current_period_end": created + timedelta(days=30),
                        "created_at": created,
                        "canceled_at": canceled,
                        "updated_at": canceled or created,
                    }
                )
            fee = total * 29 // 1000 + (0 if zero_decimal else 30)
            kind = a.PAYMENT_ONE_OFF if frequency == "one_off" else a.PAYMENT_RECURRING
            booked = [
                (
                    kind,
                    f"payment:ch_{i}",
                    created,
                    postings.payment(
                        total,
                        amount,
                        covered,
                        currency=currency,
                        settled=total,
                        settlement_currency=currency,
                        recurring=frequency != "one_off",
                    ),
                ),
                (a.STRIPE_FEE, f"fee:txn_{i}", created, postings.stripe_fee(fee, currency)),
            ]
            if status == "refunded":
                booked.append(
                    (
                        a.REFUND,
                        f"refund:re_{i}",
                        created + timedelta(days=3),
                        same_currency(a.REFUNDS, total, currency),
                    )
                )
            elif status == "disputed":
                booked.append(
                    (
                        a.DISPUTE,
                        f"dispute:dp_{i}",
                        created + timedelta(days=9),
                        same_currency(a.DISPUTES, total, currency),
                    )
                )
            for kind_, key, when, lines in booked:
                entry_id += 1
                rows.entries.append(
                    {
                        "id": entry_id,
                        "key": key,
                        "kind": kind_,
                        "currency": currency,
                        "occurred_at": when,
                        "stripe_object_id": key.split(":", 1)[1],
                        "contribution_id": cid,
                        "event_id": None,
                        "memo": "",
                        "created_at": when,
                    }
                )
                for account, line_currency, value in lines:
                    line_id += 1
                    rows.lines.append(
                        {
                            "id": line_id,
                            "entry_id": entry_id,
                            "account": account,
                            "currency": line_currency,
                            "amount": value,
                        }
                    )
        yield rows


def event_rows(n: int, today: date) -> Iterator[list[dict[str, Any]]]:
    """Daily aggregate counts, unique per (day, campaign, variant, placement, article, type)."""
    per_day = max(1, n // (DAYS * len(EVENT_TYPES)))
    batch: list[dict[str, Any]] = []
    made = 0
    for d in range(DAYS):
        day = today - timedelta(days=DAYS - 1 - d)
        for k in range(per_day):
            article = f"article-{k % N_ARTICLES:05d}"
            cv = (d + k + 7 * (k // N_ARTICLES)) % (N_CAMPAIGNS * len(VARIANTS))
            campaign, variant = f"campaign-{cv // 3:02d}", VARIANTS[cv % 3]
            placement = PLACEMENTS[(k // N_ARTICLES) % 3]
            impressions = 20 + (k * 7919 + d) % 400
            counts = (impressions, impressions * 2 // 3, impressions // 40, impressions // 25)
            for type_, count in zip(EVENT_TYPES, counts, strict=True):
                made += 1
                batch.append(
                    {
                        "id": made,
                        "day": day,
                        "campaign": campaign,
                        "variant": variant,
                        "placement": placement,
                        "article": article,
                        "type": type_,
                        "count": count,
                    }
                )
            if len(batch) >= BATCH * 4:
                yield batch
                batch = []
    if batch:
        yield batch


# --- writing it ----------------------------------------------------------------------------------
class Writer:
    """executemany on SQLite; COPY on PostgreSQL (an order of magnitude faster than INSERTs)."""

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData) -> None:
        self.engine, self.metadata = engine, metadata
        self.postgres = engine.dialect.name == "postgresql"

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        t = self.metadata.tables[table]
        columns = list(rows[0])
        if not self.postgres:
            with self.engine.begin() as conn:
                conn.execute(t.insert(), rows)
            return
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([row[c] for c in columns])
            raw.commit()
        finally:
            raw.close()

    def fix_sequences(self) -> None:
        if not self.postgres:
            return
        with self.engine.begin() as conn:
            for table in ("journal_entries", "journal_lines", "event_counts"):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
                )
            conn.execute(sa.text("ANALYZE"))


def seed(url: str, n_contributions: int, n_events: int, today: date) -> None:
    from donations.appeals.campaigns import save_campaign
    from donations.appeals.documents import CampaignDocument
    from donations.db import Database, make_engine

    migrate.upgrade(url)
    database = Database(url)
    with database.transaction() as session:
        for c in range(N_CAMPAIGNS):
            save_campaign(
                session,
                CampaignDocument().load(
                    {
                        "id": f"campaign-{c:02d}",
                        "name": f"Campaign {c}",
                        "status": "live",
                        "placements": list(PLACEMENTS),
                        "variants": [
                            {
                                "id": v,
                                "weight": 1,
                                "heading": f"Support us ({v})",
                                "body_html": "<p>…</p>",
                            }
                            for v in VARIANTS
                        ],
                    }
                ),
                actor="bench",
            )
    database.dispose()
    engine = make_engine(url)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    writer = Writer(engine, metadata)
    rng = random.Random(20201215)
    progress = Progress("contributions (with journal and subscriptions)", n_contributions)
    for rows in ledger_rows(n_contributions, today, rng):
        writer.write("contributions", [r for r in rows.contributions if r["parent_id"] is None])
        writer.write("contributions", [r for r in rows.contributions if r["parent_id"] is not None])
        writer.write("subscriptions", rows.subscriptions)
        writer.write("journal_entries", rows.entries)
        writer.write("journal_lines", rows.lines)
        progress.add(len(rows.contributions))
    progress = Progress("event counts", n_events)
    for batch in event_rows(n_events, today):
        writer.write("event_counts", batch)
        progress.add(len(batch))
    say("  rebuilding the report rollups (a bulk load bypasses the writers that keep them) …")
    from donations.reports import rollups

    database = Database(url)
    with database.transaction() as session:
        written = rollups.rebuild(session)
    database.dispose()
    say("  " + ", ".join(f"{table}: {rows:,} rows" for table, rows in written.items()))
    say("  analyzing …")
    writer.fix_sequences()
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def already_seeded(url: str, n_contributions: int) -> bool:
    from donations.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT count(*) FROM contributions")) == n_contributions
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


# --- timing --------------------------------------------------------------------------------------
def endpoints(today: date) -> list[tuple[str, str]]:
    d = today.isoformat
    month = (today - timedelta(days=29)).isoformat()
    quarter = (today - timedelta(days=89)).isoformat()
    year = (today - timedelta(days=DAYS - 1)).isoformat()
    one_day = (today - timedelta(days=100)).isoformat()
    return [
        ("summary, 30 days", f"/api/v1/admin/reports/summary?from={month}&to={d()}"),
        ("summary, 365 days", f"/api/v1/admin/reports/summary?from={year}&to={d()}"),
        ("daily, 90 days usd", f"/api/v1/admin/reports/daily?from={quarter}&to={d()}&currency=usd"),
        ("daily, 365 days usd", f"/api/v1/admin/reports/daily?from={year}&to={d()}&currency=usd"),
        ("articles, 30 days", f"/api/v1/admin/reports/articles?from={month}&to={d()}&limit=20"),
        ("articles, 365 days", f"/api/v1/admin/reports/articles?from={year}&to={d()}&limit=20"),
        ("experiments, one campaign", "/api/v1/admin/reports/experiments?campaign=campaign-07"),
        ("experiments, all campaigns", "/api/v1/admin/reports/experiments"),
        ("recurring, 30 days", f"/api/v1/admin/reports/recurring?from={month}&to={d()}"),
        ("contributions, first page", "/api/v1/admin/contributions?limit=50"),
        (
            "contributions, filtered",
            f"/api/v1/admin/contributions?from={year}&to={d()}&status=refunded&limit=50",
        ),
        (
            "contributions CSV, one day",
            f"/api/v1/admin/contributions?from={one_day}&to={one_day}&format=csv",
        ),
        ("trial balance", "/api/v1/admin/ledger/trial-balance"),
    ]


def time_endpoints(url: str, today: date, repeat: int) -> list[tuple[str, float, float, int]]:
    from donations.admin.tokens import create_token
    from donations.app import create_app
    from donations.db import Database
    from donations.settings import Settings

    settings = Settings(
        env="test",
        database_url=url,
        secret_key="bench-" + "x" * 40,
        instance_path=Path(tempfile.mkdtemp(prefix="donations-bench-")),
    )
    database = Database(url)
    with database.transaction() as session:
        token = create_token(session, "bench", "viewer")
    app = create_app(settings, database=database)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    for label, path in endpoints(today):

        def once(path: str = path, label: str = label) -> tuple[float, int]:
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            size = len(response.get_data())  # the whole body, streamed ones included
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(
                    f"{label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
                )
            return elapsed, size

        once()  # warm-up: caches, plans
        times = []
        size = 0
        for _ in range(repeat):
            elapsed, size = once()
            times.append(elapsed)
        results.append((label, statistics.median(times), max(times), size))
        say(f"  {label}: median {statistics.median(times):.0f} ms")
    database.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contributions", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--postgres-url",
        help="also run on this PostgreSQL server (a database `donations_bench` is made next to it)",
    )
    parser.add_argument(
        "--sqlite-path", default=str(Path(tempfile.gettempdir()) / "donations-bench.sqlite3")
    )
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    today = datetime.now(UTC).date()

    targets: list[tuple[str, str]] = []
    if not args.skip_sqlite:
        targets.append(("SQLite", f"sqlite:///{args.sqlite_path}"))
    if args.postgres_url:
        targets.append(("PostgreSQL", postgres_database(args.postgres_url, args.reuse)))

    table: dict[str, dict[str, tuple[float, float, int]]] = {}
    for name, url in targets:
        if args.reuse and already_seeded(url, args.contributions):
            say(f"{name}: reusing the seeded database (migrating it to the latest schema)")
            started = time.monotonic()
            migrate.upgrade(url)
            say(f"{name}: migrated in {time.monotonic() - started:.0f} s")
        else:
            if url.startswith("sqlite"):
                Path(args.sqlite_path).unlink(missing_ok=True)
            say(
                f"{name}: seeding {args.contributions:,} contributions "
                f"and {args.events:,} event counts"
            )
            started = time.monotonic()
            seed(url, args.contributions, args.events, today)
            say(f"{name}: seeded in {time.monotonic() - started:.0f} s")
        say(f"{name}: timing each endpoint ({args.repeat} runs after a warm-up)")
        for label, median, worst, size in time_endpoints(url, today, args.repeat):
            table.setdefault(label, {})[name] = (median, worst, size)

    names = [n for n, _ in targets]
    print(
        f"\nReport endpoints with {args.contributions:,} contributions "
        f"and {args.events:,} event counts"
    )
    print(f"median / worst of {args.repeat} runs, ms; target < {TARGET_MS:.0f} ms on PostgreSQL")
    header = f"{'endpoint':32}" + "".join(f"{n:>22}" for n in names)
    print(header)
    print("-" * len(header))
    for label, by_db in table.items():
        cells = []
        for n in names:
            median, worst, _ = by_db[n]
            flag = " !" if n == "PostgreSQL" and worst >= TARGET_MS else ""
            cells.append(f"{median:9.0f} / {worst:6.0f}{flag:2}")
        print(f"{label:32}" + "".join(f"{c:>22}" for c in cells))
    if "PostgreSQL" in names:
        slow = [label for label, by_db in table.items() if by_db["PostgreSQL"][1] >= TARGET_MS]
        print(
            f"\nPostgreSQL: {len(table) - len(slow)}/{len(table)} endpoints "
            f"under {TARGET_MS:.0f} ms" + (f"; over: {', '.join(slow)}" if slow else "")
        )


def postgres_database(server_url: str, reuse: bool) -> str:
    """A database `donations_bench` on the server of `server_url` (fresh unless --reuse)."""
    admin = sa.create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = 'donations_bench'"))
        if exists and not reuse:
            conn.execute(sa.text("DROP DATABASE donations_bench WITH (FORCE)"))
            exists = False
        if not exists:
            conn.execute(sa.text("CREATE DATABASE donations_bench"))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/donations_bench"


if __name__ == "__main__":
    main()
