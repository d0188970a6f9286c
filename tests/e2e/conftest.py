import dataclasses
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.serving import make_server

from donations.app import create_app
from donations.db import Database
from tests.conftest import empty_redis, empty_tables, free_port


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


SCREENSHOTS = Path(
    os.environ.get("DONATIONS_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "build" / "screenshots"
)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Where a test keeps its screenshots, kept after the run as test artefacts:
    build/screenshots/<test>/ (or $DONATIONS_SCREENSHOTS/<test>/), emptied first."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    path = SCREENSHOTS / name
    if path.exists():
        for old in path.iterdir():
            old.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


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


@pytest.fixture(scope="module")
def server(settings: Any, database: Database) -> Iterator[SimpleNamespace]:
    """The app on a real port of its own, with its public base URL set to that port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(dataclasses.replace(settings, public_base_url=url), database=database)
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=url, app=app, services=app.extensions["donations"])
    httpd.shutdown()
