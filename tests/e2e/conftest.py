from collections.abc import Iterator

import pytest

from donations.db import Database
from tests.conftest import empty_redis, empty_tables


@pytest.fixture(autouse=True)
def _clean_database(database: Database) -> Iterator[None]:
    empty_tables(database)
    empty_redis()
    yield
