"""Fault tests use the integration tests' live server and leave nothing behind either: every
table is emptied (and Redis and the login throttle reset) before each, and every process a test
started (`donations serve`, granian and its workers, wherever they ended up) is gone after it,
whether it passed or failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.processes import Served
from tests.integration.conftest import _clean_database  # noqa: F401  (autouse fixture)


@pytest.fixture
def donations_serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """`start(env, workers=2, port=None)` starts `donations serve` (not waited for); every server
    is stopped at the end of the test and every process it started is killed and waited for."""
    started: list[Served] = []

    def start(env: dict[str, str], workers: int = 2, port: int | None = None) -> Served:
        served = Served(tmp_path, env, workers, port)
        started.append(served)
        return served.start()

    try:
        yield start
    finally:
        problems = []
        for served in started:
            try:
                served.stop()
            except Exception as exc:  # every server is stopped, whatever happened to one
                problems.append(f"port {served.port}: {exc}")
            if served.processes():
                problems.append(f"port {served.port}: left behind {served.processes()}")
        assert not problems, problems
