"""Alembic, driven from Python so `donations db …` works from any directory."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from donations.db import make_engine
from donations.paths import MIGRATIONS


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def _with_connection(database_url: str, run: Callable[[Config], None]) -> None:
    """Run an Alembic command on our own engine (SQLite pragmas, folder created)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            cfg = alembic_config(database_url)
            cfg.attributes["connection"] = connection
            run(cfg)
            connection.commit()
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    _with_connection(database_url, lambda cfg: command.upgrade(cfg, revision))


def check(database_url: str) -> None:
    """Raise if the models differ from what the migrations build (alembic check)."""
    _with_connection(database_url, command.check)


def heads(database_url: str = "sqlite://") -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
