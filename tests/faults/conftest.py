from collections.abc import Iterator
from typing import Any

import pytest

from donations.db import Database
from tests.conftest import empty_redis, empty_tables


@pytest.fixture(autouse=True)
def _clean_database(database: Database, app: Any) -> Iterator[None]:
    empty_tables(database)
    empty_redis()
    app.extensions["donations"].login_limiter.reset()
    yield
