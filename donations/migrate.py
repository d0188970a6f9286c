"""Alembic, driven from Python so `donations db …` works from any directory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from donations.db import make_engine, unavailable
from donations.paths import MIGRATIONS

NOT_MIGRATED = "the database is not migrated: run `donations db upgrade`"


class NotMigrated(RuntimeError):
    """The database lacks migrations this code needs (the message says what to run)."""


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


@contextlib.contextmanager
def reachable(database_url: str) -> Iterator[Connection]:
    """A connection on our own engine (SQLite pragmas, folder created); DatabaseUnavailable
    (one line, no password) when DATABASE_URL is malformed, names no known database or the
    database cannot be reached."""
    try:
        engine = make_engine(database_url)
    except (ArgumentError, NoSuchModuleError, ValueError, OSError) as exc:
        raise unavailable(database_url, exc) from exc
    try:
        try:
            connection = engine.connect()
        except (DBAPIError, OSError) as exc:
            raise unavailable(database_url, exc) from exc
        with connection:
            yield connection
    finally:
        engine.dispose()


def _with_connection(database_url: str, run: Callable[[Config], None]) -> None:
    """Run an Alembic command on our own engine."""
    with reachable(database_url) as connection:
        cfg = alembic_config(database_url)
        cfg.attributes["connection"] = connection
        run(cfg)
        connection.commit()


def upgrade(database_url: str, revision: str = "head") -> None:
    _with_connection(database_url, lambda cfg: command.upgrade(cfg, revision))


def check(database_url: str) -> None:
    """Raise if the models differ from what the migrations build (alembic check)."""
    _with_connection(database_url, command.check)


def heads(database_url: str = "sqlite://") -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def require_migrated(database_url: str) -> None:
    """NotMigrated unless the database is at this code's head, or ahead of it (migrated by a
    newer release, during a rolling deploy); DatabaseUnavailable if it cannot be reached."""
    with reachable(database_url) as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    script = ScriptDirectory.from_config(alembic_config(database_url))
    if current == set(script.get_heads()):
        return
    known = {revision.revision for revision in script.walk_revisions()}
    if current and not current <= known:
        return
    raise NotMigrated(NOT_MIGRATED)
