import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from donations.db import Database
from tests.conftest import empty_redis, empty_tables


@pytest.fixture(autouse=True)
def _clean_database(database: Database) -> Iterator[None]:
    empty_tables(database)
    empty_redis()
    yield


CHROMIUM = "/usr/bin/chromium"


def _chromium_or_skip() -> str:
    """Debian's Chromium; outside CI a machine without it skips, in CI it must be there."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(
            f"{CHROMIUM} is missing: in CI the browser tests must run (apt install chromium)"
        )
    pytest.skip(f"{CHROMIUM} is not installed (apt install chromium); browser tests skipped")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium_or_skip()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install playwright); browser tests skipped")
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
