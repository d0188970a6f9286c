"""Engine, sessions and the declarative base; the transaction boundary lives with the callers.

Views, CLI commands and webhook handling open a transaction with `Database.transaction()`;
service functions take a Session, may flush, and never commit.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    """Public ids look like Stripe's: a short prefix and 24 random url-safe characters."""
    return f"{prefix}_{secrets.token_hex(12)}"


def normalize_url(url: str) -> str:
    """`postgres://` (Heroku's and others' spelling) is PostgreSQL too."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def safe_url(url: str) -> str:
    """The URL to show a person: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


class DatabaseUnavailable(RuntimeError):
    """DATABASE_URL is malformed, names no known database, or the database cannot be reached.
    The message is one line, fit for an operator (no password)."""


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """What went wrong reaching `url`, in one line."""
    where = safe_url(url)
    if isinstance(exc, NoSuchModuleError):
        kind = url.split(":", 1)[0]
        return DatabaseUnavailable(
            f"DATABASE_URL names an unknown kind of database ({kind!r}): use "
            "postgresql://user:password@host:5432/name or sqlite:///path/to/file.sqlite3"
        )
    if isinstance(exc, ArgumentError | ValueError):
        return DatabaseUnavailable(
            "DATABASE_URL is not a database URL: use "
            "postgresql://user:password@host:5432/name or sqlite:///path/to/file.sqlite3"
        )
    reason = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    return DatabaseUnavailable(
        f"cannot reach the database at {where}: {lines[0] if lines else type(reason).__name__}"
    )


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False, "isolation_level": None},
            poolclass=NullPool if path == ":memory:" else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # Take the write lock when the transaction starts, so two writers queue on
        # busy_timeout instead of failing to upgrade a read lock (SQLAlchemy's pysqlite recipe);
        # but a transaction that mostly reads while it waits on Stripe begins deferred.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN" if _DEFERRED.get() else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_deferred", default=False)


class Database:
    """One engine and session factory per app."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def transaction(self, *, reads_first: bool = False) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any exception.

        `reads_first`: on SQLite, begin deferred: no write lock until the first write, so a
        transaction that reads, waits on Stripe and rarely writes does not stop every other
        writer meanwhile (a late write may then fail as busy: only for such transactions).
        PostgreSQL locks rows, not the database: nothing changes there."""
        token = _DEFERRED.set(reads_first)
        try:
            with self.sessions() as session, session.begin():
                yield session
        finally:
            _DEFERRED.reset(token)

    def dispose(self) -> None:
        self.engine.dispose()
