"""The migrations build exactly the schema the models describe (on SQLite and PostgreSQL)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from donations import migrate
from donations.models import Base


def test_the_migrations_build_the_same_schema_as_the_models(database):
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_alembic_check_finds_nothing_to_generate(migrated_url):
    migrate.check(migrated_url)  # raises when models and migrations drift


def test_there_is_exactly_one_migration_head():
    assert len(migrate.heads()) == 1
