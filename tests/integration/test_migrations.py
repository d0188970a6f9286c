"""The migrations build exactly the schema the models describe (on SQLite and PostgreSQL)."""

import secrets
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from donations import migrate
from donations.db import Database, make_engine
from donations.ledger import accounts as a
from donations.models import Base
from donations.reports import rollups


def test_the_migrations_build_the_same_schema_as_the_models(database):
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_alembic_check_finds_nothing_to_generate(migrated_url):
    migrate.check(migrated_url)  # raises when models and migrations drift


def test_there_is_exactly_one_migration_head():
    assert len(migrate.heads()) == 1


@pytest.fixture
def fresh_url(database_url, tmp_path):
    """An empty database of the suite's kind, for migrating step by step."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'steps.sqlite3'}"
        return
    name = f"donations_steps_{secrets.token_hex(4)}"
    base = database_url.rpartition("/")[0]
    admin = make_engine(f"{base}/postgres").execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_rollups_migration_fills_them_from_the_books_already_kept(fresh_url):
    migrate.upgrade(fresh_url, "0003")
    engine = make_engine(fresh_url)
    t = sa.MetaData()
    t.reflect(engine)
    when = datetime(2026, 3, 1, 23, 30)
    with engine.begin() as conn:
        contribution = {
            "status": "succeeded",
            "currency": "usd",
            "fee_covered": 0,
            "refunded_amount": 0,
            "created_at": when,
            "updated_at": when,
            "campaign": "spring",
            "variant": "b",
            "article": "story-1",
            "parent_id": None,
        }
        conn.execute(
            t.tables["contributions"].insert(),
            [
                {
                    **contribution,
                    "id": "ctb_1",
                    "frequency": "monthly",
                    "amount": 1000,
                    "total": 1000,
                },
                {
                    **contribution,
                    "id": "ctb_2",
                    "frequency": "monthly",
                    "amount": 1000,
                    "total": 1000,
                    "parent_id": "ctb_1",
                },
            ],
        )
        for i, (cid, key, kind, lines) in enumerate(
            [
                (
                    "ctb_1",
                    "payment:ch_1",
                    a.PAYMENT_RECURRING,
                    [(a.STRIPE_BALANCE, 1000), (a.GIFTS_RECURRING, -1000)],
                ),
                (
                    "ctb_2",
                    "payment:ch_2",
                    a.PAYMENT_RECURRING,
                    [(a.STRIPE_BALANCE, 1000), (a.GIFTS_RECURRING, -1000)],
                ),
                (None, "fee:txn_1", a.STRIPE_FEE, [(a.STRIPE_FEES, 59), (a.STRIPE_BALANCE, -59)]),
            ],
            start=1,
        ):
            conn.execute(
                t.tables["journal_entries"].insert(),
                {
                    "id": i,
                    "key": key,
                    "kind": kind,
                    "currency": "usd",
                    "occurred_at": when,
                    "stripe_object_id": key.split(":")[1],
                    "contribution_id": cid,
                    "memo": "",
                    "created_at": when,
                },
            )
            conn.execute(
                t.tables["journal_lines"].insert(),
                [
                    {"entry_id": i, "account": acc, "currency": "usd", "amount": n}
                    for acc, n in lines
                ],
            )
        conn.execute(
            t.tables["event_counts"].insert(),
            [
                {
                    "day": when.date(),
                    "campaign": "spring",
                    "variant": "b",
                    "placement": p,
                    "article": "story-1",
                    "type": kind,
                    "count": n,
                }
                for p in ("epic", "banner")
                for kind, n in (("impression", 100), ("click", 7), ("view", 60))
            ],
        )
    engine.dispose()

    migrate.upgrade(fresh_url)
    database = Database(fresh_url)
    try:
        with database.sessions() as s:
            kept = rollups.snapshot(s)
        with database.transaction() as s:
            rollups.rebuild(s)
        with database.sessions() as s:
            assert rollups.snapshot(s) == kept
            balance = s.get(
                rollups.LedgerDaily, (when.date(), "usd", a.PAYMENT_RECURRING, a.STRIPE_BALANCE)
            )
            assert (balance.amount, balance.lines) == (2000, 2)
            (first,) = s.scalars(sa.select(rollups.CampaignPaymentsDaily)).all()
            assert (first.campaign, first.variant, first.payments, first.gross) == (
                "spring",
                "b",
                1,
                1000,
            )
            shown = s.get(rollups.EventCampaignDaily, ("spring", "b", "impression", when.date()))
            assert shown.count == 200
            (story,) = s.scalars(sa.select(rollups.EventArticleDaily)).all()
            assert (story.article, story.impressions, story.clicks) == ("story-1", 200, 14)
            (month,) = s.scalars(sa.select(rollups.EventArticleMonthly)).all()
            assert (month.month, month.impressions) == (when.date().replace(day=1), 200)
    finally:
        database.dispose()
