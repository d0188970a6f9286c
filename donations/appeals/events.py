"""Counting impressions, views, clicks and dismissals: aggregates only, written in batches.

Without REDIS_URL each process keeps counts in memory and a background thread adds them to
the database every FLUSH_SECONDS (and at exit). With REDIS_URL every instance increments the
same Redis hashes, and `donations events flush` (or `donations events worker`) moves them to
the database, so many instances count together and a restart loses nothing.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import date

from sqlalchemy.dialects import postgresql, sqlite

from donations import observability
from donations.appeals.models import EventCount
from donations.db import Database
from donations.reports import rollups

log = logging.getLogger(__name__)
EVENT_TYPES = ("impression", "view", "click", "dismiss")
FLUSH_SECONDS = 2.0
SEP = "\x1f"  # cannot occur in validated fields
REDIS_PREFIX = "donations:events:"

Key = tuple[str, str, str, str, str, str]  # day, campaign, variant, placement, article, type


def upsert_counts(db: Database, counts: Iterable[tuple[Key, int]]) -> int:
    """Add counts to event_counts in one transaction (insert or increment)."""
    rows = [
        {
            "day": date.fromisoformat(k[0]),
            "campaign": k[1],
            "variant": k[2],
            "placement": k[3],
            "article": k[4],
            "type": k[5],
            "count": n,
        }
        for k, n in counts
        if n
    ]
    if not rows:
        return 0
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(EventCount)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "campaign", "variant", "placement", "article", "type"],
        set_={"count": EventCount.count + stmt.excluded.count},
    )
    with db.transaction() as session:
        # Sorted, so concurrent flushes lock rows in the same order (no deadlocks).
        rows.sort(
            key=lambda r: (
                r["day"],
                r["campaign"],
                r["variant"],
                r["placement"],
                r["article"],
                r["type"],
            )
        )
        session.execute(stmt, rows)
        rollups.add_events(session, rows)
    return sum(int(r["count"]) for r in rows)  # type: ignore[call-overload]


class EventCounter:
    def __init__(self, db: Database, redis_url: str | None = None) -> None:
        self._db = db
        self._buffer: Counter[Key] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        atexit.register(self.close)
        # Server workers (granian's, forked) end with os._exit: atexit never runs there, but
        # multiprocessing's finalizers do on their clean shutdown.
        multiprocessing.util.Finalize(None, self.close, exitpriority=10)

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    def add(self, keys: Iterable[Key]) -> None:
        keys = list(keys)
        observability.events_counted(k[5] for k in keys)
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for k in keys:
                    pipe.hincrby(REDIS_PREFIX + k[0], SEP.join(k[1:]), 1)
                pipe.execute()
                return
            except Exception:
                # Documented fallback: Redis down → count in this process's memory instead.
                log.warning("redis unavailable: counting events in process memory")
        with self._lock:
            self._buffer.update(keys)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="event-flush")
                self._thread.start()

    def pending(self) -> int:
        with self._lock:
            return sum(self._buffer.values())

    def flush(self) -> int:
        """Write this process's buffered counts; on failure they stay buffered."""
        with self._lock:
            batch, self._buffer = self._buffer, Counter()
        if not batch:
            return 0
        try:
            return upsert_counts(self._db, batch.items())
        except Exception:
            with self._lock:
                self._buffer.update(batch)
            log.exception("event counts not written; kept for the next flush")
            return 0

    def flush_redis(self) -> int:
        """Move every day's Redis counts to the database (atomically per day)."""
        if self._redis is None:
            return 0
        try:
            return self._move_from_redis()
        except Exception:
            # Counts stay in Redis (or its ':flushing' key) and move on the next run.
            log.warning("could not move event counts from redis", exc_info=True)
            return 0

    def _move_from_redis(self) -> int:
        assert self._redis is not None
        moved = 0
        for raw in self._redis.scan_iter(match=REDIS_PREFIX + "*"):
            name = raw.decode()
            if name.endswith(":flushing"):
                processing = name
            else:
                processing = name + ":flushing"
                if self._redis.exists(processing):
                    continue  # a previous flush failed mid-way: handled via its own key
                self._redis.rename(name, processing)
            day = processing[len(REDIS_PREFIX) :].split(":")[0]
            fields = self._redis.hgetall(processing)
            counts: list[tuple[Key, int]] = []
            for field, value in fields.items():
                text = field.decode() if isinstance(field, bytes) else str(field)
                parts = text.split(SEP)
                key = (day, parts[0], parts[1], parts[2], parts[3], parts[4])
                counts.append((key, int(value)))
            moved += upsert_counts(self._db, counts)
            self._redis.delete(processing)
        return moved

    def flush_all(self) -> int:
        """Everything counted so far, wherever it waits (this process's memory and Redis)."""
        return self.flush() + self.flush_redis()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        """Clean shutdown: stop the thread and write what is buffered."""
        self._stop.set()
        self.flush()


def now_day() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())
