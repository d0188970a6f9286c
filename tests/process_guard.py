"""A pytest plugin: the run fails if a process the suite started outlives it.

Every process descending from the pytest process (localstripe, granian and its workers, nginx,
a redis-server, a browser…) is noted while the suite runs: a sampling thread walks /proc every
SAMPLE_EVERY seconds, and once more after each test. A worker whose parent was killed is
re-parented to init and no longer looks like ours, so noting it while it still did is what
finds it. At the end of the session, every noted process still alive after a grace period is
reported with its command line and stopped, and the run's exit status says it failed.

Processes are known by pid *and* start time, so a pid the system reused is never mistaken for
ours. Linux only (/proc); elsewhere the plugin does nothing. Registered from tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROC = Path("/proc")
SAMPLE_EVERY = 0.2  # seconds
# Seconds for stopped processes to finish exiting after the last test.
GRACE = float(os.environ.get("PROCESS_GUARD_GRACE", "10"))


def _redis_port() -> str:
    match = re.search(r":(\d+)(/|$)", os.environ.get("REDIS_URL", "").split("@")[-1])
    return match.group(1) if match else "6379"


# This machine's own services, which the fault tests restart in place and which must outlive
# the suite: the PostgreSQL cluster pg_ctlcluster restarts (postmaster and its children), and
# a redis-server on REDIS_URL's port started (--daemonize) to replace the one a test stopped.
MACHINE_SERVICES = (
    re.compile(r"^\S*/postgres -D /var/lib/postgresql/"),
    re.compile(r"^postgres: [\d.]+/\w+: "),
    re.compile(rf"^\S*redis-server \S*:{_redis_port()}\b"),
)


@dataclass(frozen=True)
class Seen:
    pid: int
    started: int  # clock ticks after boot (/proc/<pid>/stat field 22)
    command: str


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None when it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _command(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or f"[pid {pid}]"


def _children(pid: int) -> list[int] | None:
    """The pids of a process's children, from each of its threads' children file (None when
    the kernel does not offer those files)."""
    out: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            out.extend(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:
            if not (task / "children").parent.exists():
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return out


def _all_children() -> dict[int, list[int]]:
    """Parent → children for every process (the slow way: every /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            children.setdefault(found[0], []).append(int(entry.name))
    return children


def _descendants(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of every living process below `root`."""
    table: dict[int, list[int]] | None = None
    out: list[tuple[int, int]] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        kids = _children(pid) if table is None else table.get(pid, [])
        if kids is None:  # no children files here: build the whole table once
            table = _all_children()
            kids = table.get(pid, [])
        for child in kids:
            found = _stat(child)
            if found is not None and found[1] != "Z":
                out.append((child, found[2]))
                stack.append(child)
    return out


def _alive(seen: Seen) -> bool:
    found = _stat(seen.pid)
    return found is not None and found[1] != "Z" and found[2] == seen.started


def _machine_service(seen: Seen) -> bool:
    return any(pattern.search(seen.command) for pattern in MACHINE_SERVICES)


class ProcessGuard:
    def __init__(self) -> None:
        self.root = os.getpid()
        self.seen: dict[tuple[int, int], Seen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="process-guard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note(self) -> None:
        try:
            found = _descendants(self.root)
        except OSError:
            return
        with self._lock:
            for pid, started in found:
                if (pid, started) not in self.seen:
                    self.seen[pid, started] = Seen(pid, started, _command(pid))

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.note()

    def survivors(self, grace: float = GRACE) -> list[Seen]:
        """Noted processes still alive after `grace` seconds (machine services excused)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.note()
        with self._lock:
            noted = list(self.seen.values())
        deadline = time.monotonic() + grace
        while True:
            # Read the command again: one noted between fork and exec showed its parent's.
            alive = [Seen(s.pid, s.started, _command(s.pid)) for s in noted if _alive(s)]
            alive = [s for s in alive if not _machine_service(s)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.2)


def stop(processes: list[Seen]) -> None:
    """SIGTERM, then SIGKILL two seconds later, to each one still the process we noted."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for seen in processes:
            if _alive(seen):
                with contextlib.suppress(OSError):
                    os.kill(seen.pid, sig)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(_alive(s) for s in processes):
            time.sleep(0.1)


GUARD = pytest.StashKey[ProcessGuard]()


def pytest_configure(config: pytest.Config) -> None:
    if PROC.joinpath("self", "stat").exists() and not hasattr(config, "workerinput"):
        guard = ProcessGuard()
        config.stash[GUARD] = guard
        guard.start()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: Any) -> None:
    guard = item.config.stash.get(GUARD, None)
    if guard is not None:
        guard.note()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    guard = session.config.stash.get(GUARD, None)
    if guard is None:
        return
    left = guard.survivors()
    if not left:
        return
    lines = [f"  pid {s.pid}: {s.command}" for s in sorted(left, key=lambda s: s.pid)]
    message = (
        f"{len(left)} process(es) started by the test suite outlived it "
        f"(now stopped by tests/process_guard.py):\n" + "\n".join(lines)
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "processes left behind", red=True)
        reporter.write_line(message)
    else:
        print(message)
    stop(left)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
