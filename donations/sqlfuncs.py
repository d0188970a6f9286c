"""SQL functions that compile alike on PostgreSQL and SQLite (used by the ledger's rollups
and the reports)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction


class utc_day(GenericFunction[date]):
    """The UTC calendar day of a naive-UTC timestamp column, as a DATE on every database."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    # SQLite has no DATE type: CAST would give a number; date() gives 'YYYY-MM-DD'.
    return f"date({compiler.process(element.clauses, **kw)})"


class month_start(GenericFunction[date]):
    """The first day of the month of a DATE column, as a DATE on every database."""

    type = Date()
    name = "month_start"
    inherit_cache = True


@compiles(month_start)
def _month_start_default(element: month_start, compiler: Any, **kw: Any) -> str:
    return f"CAST(date_trunc('month', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(month_start, "sqlite")
def _month_start_sqlite(element: month_start, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"
