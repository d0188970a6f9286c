"""Counting impressions, views, clicks and dismissals: aggregates only, written in batches.

Without REDIS_URL each process keeps counts in memory and a background thread adds them to
the database every FLUSH_SECONDS (and at exit). With REDIS_URL every instance increments the
same Redis hashes, and `donations events flush` (or `donations events worker`) moves them to
the database, so many instances count together and a restart loses nothing. While Redis is
unreachable a process counts in its memory instead, and writes those counts like the above.

A flush never gets stuck on one bad row: when a batch fails because of a value the database
refuses (NUL in PostgreSQL text, a count out of range…), it is retried row by row and each row
that still fails is kept aside (the Redis hash `donations:events:aside`, or this process's
memory without Redis; counted in /metrics) while every other row is written. When the database
itself fails (unreachable, locked), nothing is set aside: the counts wait for the next flush.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing.util
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import exc as sa_exc
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
# Count hashes are named by their day; everything else under the prefix is not counts.
REDIS_DAYS = REDIS_PREFIX + "[0-9]*"
DAY_KEY = re.compile(r"(\d{4}-\d{2}-\d{2})(:flushing)?")
ASIDE = REDIS_PREFIX + "aside"  # field: the row's key as JSON → its count
ASIDE_WHY = REDIS_PREFIX + "aside:why"  # field → why the database refused it
FLUSH_LOCK = REDIS_PREFIX + "flush-lock"
REDIS_RETRY_SECONDS = 5.0  # after a Redis failure, count in memory this long before retrying
MAX_ASIDE_IN_MEMORY = 10_000

Key = tuple[str, str, str, str, str, str]  # day, campaign, variant, placement, article, type


@dataclass(frozen=True)
class Event:
    """One widget event, as validated from the request."""

    type: str
    impression: str | None
    campaign: str
    variant: str
    placement: str
    article: str

    def key(self, day: str) -> Key:
        return (day, self.campaign, self.variant, self.placement, self.article, self.type)


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


def refused_by_the_row(exc: BaseException) -> bool:
    """Whether a failed write is the row's fault (a value the database or its driver refuses),
    as opposed to the database's (unreachable, locked, not migrated), which passes."""
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return False
    if isinstance(exc, sa_exc.StatementError):  # a value that could not even be sent
        return isinstance(exc.orig, ValueError | TypeError | OverflowError)
    # date.fromisoformat, a lone surrogate the driver cannot encode, an int too large
    return isinstance(exc, ValueError | TypeError | OverflowError)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


@dataclass
class Written:
    """What a write of counts did: rows written, rows refused (kept aside by the caller) and
    rows left for later because the database failed (`error`)."""

    written: list[tuple[Key, int]] = field(default_factory=list)
    aside: list[tuple[Key, int, str]] = field(default_factory=list)
    left: list[tuple[Key, int]] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def events(self) -> int:
        return sum(n for _, n in self.written)


def write_counts(db: Database, counts: Iterable[tuple[Key, int]]) -> Written:
    """Add counts to the database in one transaction; if a row's value makes that fail, row by
    row, so each bad row is reported (never written) and the others are."""
    items = [(k, n) for k, n in counts if n]
    if not items:
        return Written()
    try:
        upsert_counts(db, items)
        return Written(written=items)
    except Exception as exc:
        if not refused_by_the_row(exc):
            return Written(left=items, error=exc)
    out = Written()
    for i, (key, n) in enumerate(items):
        try:
            upsert_counts(db, [(key, n)])
        except Exception as exc:
            if not refused_by_the_row(exc):
                out.left, out.error = items[i:], exc
                return out
            out.aside.append((key, n, _why(exc)))
        else:
            out.written.append((key, n))
    return out


def aside_field(key: Iterable[str]) -> str:
    """A row kept aside, as ASCII JSON (whatever bytes it held stay readable)."""
    return json.dumps(list(key), ensure_ascii=True)


class EventCounter:
    def __init__(self, db: Database, redis_url: str | None = None) -> None:
        self._db = db
        self._buffer: Counter[Key] = Counter()
        self._aside: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._redis: Any = None
        self._redis_down_until = 0.0
        self._redis_errors: tuple[type[BaseException], ...] = ()
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._redis_errors = (redis.ConnectionError, redis.TimeoutError)
        atexit.register(self.close)
        # Server workers (granian's, forked) end with os._exit: atexit never runs there, but
        # multiprocessing's finalizers do on their clean shutdown.
        multiprocessing.util.Finalize(None, self.close, exitpriority=10)

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    def add(self, keys: Iterable[Key]) -> None:
        keys = list(keys)
        if not keys:
            return
        observability.events_counted(k[5] for k in keys)
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for k in keys:
                    pipe.hincrby(REDIS_PREFIX + k[0], SEP.join(k[1:]), 1)
                pipe.execute()
                return
            except Exception as exc:
                # Documented fallback: Redis down → count in this process's memory instead
                # (and don't wait on a dead Redis for every request meanwhile).
                if isinstance(exc, self._redis_errors):
                    self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("redis unavailable (%s): counting events in process memory", exc)
        with self._lock:
            self._buffer.update(keys)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="event-flush")
                self._thread.start()

    def pending(self) -> int:
        with self._lock:
            return sum(self._buffer.values())

    def flush(self) -> int:
        """Write this process's buffered counts. Rows the database refuses are kept aside; when
        the database fails, the rest stays buffered for the next flush."""
        with self._lock:
            batch, self._buffer = self._buffer, Counter()
        if not batch:
            return 0
        out = write_counts(self._db, batch.items())
        if out.left:
            with self._lock:
                self._buffer.update(dict(out.left))
            log.warning(
                "event counts not written (%s); kept for the next flush",
                _why(out.error or Exception()),
            )
        if out.aside:
            self._set_aside(out.aside)
        return out.events

    def flush_redis(self) -> int:
        """Move every day's Redis counts to the database (atomically per day)."""
        if self._redis is None:
            return 0
        try:
            # One flush at a time (the worker, a cron's `events flush`): two would both rename
            # and write the same day's counts.
            lock = self._redis.lock(FLUSH_LOCK, timeout=300, blocking_timeout=10)
            if not lock.acquire():
                return 0  # another flush is still moving them
        except Exception:
            log.warning("could not move event counts from redis", exc_info=True)
            return 0
        try:
            return self._move_from_redis()
        except Exception:
            # Counts stay in Redis (or its ':flushing' key) and move on the next run.
            log.warning("could not move event counts from redis", exc_info=True)
            return 0
        finally:
            try:
                lock.release()
            except Exception:  # expired or Redis gone: it times out by itself
                log.debug("event flush lock not released", exc_info=True)

    def _move_from_redis(self) -> int:
        assert self._redis is not None
        moved = 0
        for raw in self._redis.scan_iter(match=REDIS_DAYS):
            name = raw.decode()
            found = DAY_KEY.fullmatch(name[len(REDIS_PREFIX) :])
            if found is None:
                continue
            if found.group(2):
                processing = name
            else:
                processing = name + ":flushing"
                if self._redis.exists(processing):
                    continue  # a previous flush failed mid-way: handled via its own key
                self._redis.rename(name, processing)
            day = found.group(1)
            fields_of: dict[Key, bytes] = {}
            unreadable: list[tuple[list[str], int, str]] = []
            unreadable_fields: list[bytes] = []
            counts: list[tuple[Key, int]] = []
            for field_, value in self._redis.hgetall(processing).items():
                try:
                    parts = field_.decode("utf-8").split(SEP)
                    if len(parts) != 5:
                        raise ValueError(f"{len(parts)} parts instead of 5")
                    key: Key = (day, parts[0], parts[1], parts[2], parts[3], parts[4])
                    count = int(value)
                except ValueError as exc:  # UnicodeDecodeError is one too
                    text = field_.decode("utf-8", "backslashreplace")
                    unreadable.append(([day, text], _int_or_zero(value), _why(exc)))
                    unreadable_fields.append(field_)
                    continue
                fields_of[key] = field_
                counts.append((key, count))
            out = write_counts(self._db, counts)
            moved += out.events
            aside: list[tuple[Any, int, str]] = [*unreadable, *out.aside]
            # One Redis transaction: what was set aside is recorded and leaves the day's hash.
            pipe = self._redis.pipeline(transaction=True)
            for key_, n, why in aside:
                pipe.hincrby(ASIDE, aside_field(key_), n)
                pipe.hset(ASIDE_WHY, aside_field(key_), why)
            if out.left:
                done = [fields_of[k] for k, _ in out.written]
                done += [fields_of[k] for k, _, _ in out.aside] + unreadable_fields
                if done:
                    pipe.hdel(processing, *done)
            else:
                pipe.delete(processing)
            pipe.execute()
            if aside:
                self._report_aside(aside)
            if out.left:
                log.warning(
                    "event counts of %s not written (%s); kept in redis for the next flush",
                    day,
                    _why(out.error or Exception()),
                )
                return moved  # the database is failing: the other days wait too
        return moved

    def flush_all(self) -> int:
        """Everything counted so far, wherever it waits (this process's memory and Redis)."""
        return self.flush() + self.flush_redis()

    # --- rows kept aside ---------------------------------------------------------------------
    def _report_aside(self, rows: list[tuple[Any, int, str]]) -> None:
        observability.event_rows_set_aside(len(rows))
        for key, n, why in rows:
            log.error("event count kept aside, not written: %s x%d (%s)", aside_field(key), n, why)

    def _set_aside(self, rows: list[tuple[Any, int, str]]) -> None:
        """Keep rows the database refused where an operator can see them: Redis when it
        answers, else this process's memory."""
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=True)
                for key, n, why in rows:
                    pipe.hincrby(ASIDE, aside_field(key), n)
                    pipe.hset(ASIDE_WHY, aside_field(key), why)
                pipe.execute()
                self._report_aside(rows)
                return
            except Exception:
                log.warning("could not keep event counts aside in redis", exc_info=True)
        with self._lock:
            for key, n, why in rows:
                name = aside_field(key)
                if name not in self._aside and len(self._aside) >= MAX_ASIDE_IN_MEMORY:
                    continue  # logged below all the same
                self._aside[name] = (self._aside.get(name, (0, ""))[0] + n, why)
        self._report_aside(rows)

    def aside(self) -> list[tuple[list[str], int, str]]:
        """The rows kept aside: (day, campaign, variant, placement, article, type), count, why."""
        rows = [(json.loads(k), n, why) for k, (n, why) in self._aside.items()]
        if self._redis is not None:
            try:
                whys = self._redis.hgetall(ASIDE_WHY)
                for k, n in self._redis.hgetall(ASIDE).items():
                    rows.append((json.loads(k), int(n), whys.get(k, b"").decode()))
            except Exception:
                log.warning("could not read the event counts kept aside in redis", exc_info=True)
        return rows

    def aside_count(self) -> int:
        """How many rows are kept aside (for /metrics; never raises)."""
        count = len(self._aside)
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                count += int(self._redis.hlen(ASIDE))
            except Exception:
                log.debug("could not count the event rows kept aside in redis", exc_info=True)
        return count

    # --- the background flush and shutdown ------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        """Clean shutdown: stop the thread and write what is buffered (the counts of a process
        without Redis, or counted in memory while Redis was down). If the database fails,
        they go to Redis when it answers; only if neither does are they lost (and logged)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)  # a flush under way finishes first
        self.flush()
        with self._lock:
            left, self._buffer = self._buffer, Counter()
        if not left:
            return
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for k, n in left.items():
                    pipe.hincrby(REDIS_PREFIX + k[0], SEP.join(k[1:]), n)
                pipe.execute()
                log.warning("%d event counts handed to redis at shutdown", sum(left.values()))
                return
            except Exception:
                log.warning("redis unavailable at shutdown", exc_info=True)
        log.error(
            "%d event counts lost at shutdown (database and redis unavailable): %s",
            sum(left.values()),
            [(aside_field(k), n) for k, n in left.items()],
        )


def _int_or_zero(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def now_day() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())
