"""`donations serve` as the fault tests start it, and the guarantee that nothing it started
survives the test.

The process tree is `donations serve` → granian's main process (its own session and process
group) → the workers. Signalling the process group of `donations serve` never reaches
granian's, and a worker whose granian was killed is re-parented to init: neither the tree nor
a process group finds every process again. What does is the environment: each server is started
with a variable of its own (`DONATIONS_FAULT_TEST_PROCESS=<random>`) that every descendant
inherits, whatever its parent, session or group becomes; at the end of the test every process
carrying it is killed and waited for.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import free_port, wait_for

TAG = "DONATIONS_FAULT_TEST_PROCESS"


def tagged(tag: str) -> list[int]:
    """Every live process whose environment carries TAG=tag (zombies have none)."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The direct children of pid (every thread's)."""
    out: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return sorted(out)


def alive(pid: int) -> bool:
    """pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Served:
    """One `donations serve` on a free port, its output in a log file."""

    def __init__(
        self, workdir: Path, env: dict[str, str], workers: int, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers_wanted = workers
        self.tag = secrets.token_hex(8)
        self.env = {**env, TAG: self.tag}
        self.log_path = workdir / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Served:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "donations.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers_wanted)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the test, not the server
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 60) -> Served:
        """Every worker started (granian cannot stop one still starting) and /healthz answers."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"donations serve exited {self.proc.returncode}:\n{self.tail()}"
                )
            if self.log().count("Started worker") < self.workers_wanted:
                return False
            try:
                return requests.get(f"{self.base}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        try:
            wait_for(ready, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def master(self) -> int:
        """granian's main process: the only child of `donations serve`."""
        (pid,) = children(self.pid)
        return pid

    def workers(self) -> list[int]:
        """granian's live worker processes."""
        return [pid for pid in children(self.master()) if alive(pid)]

    def processes(self) -> list[int]:
        """Every live process this server started, wherever it now hangs in the tree."""
        return [pid for pid in tagged(self.tag) if alive(pid)]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, grace: float = 30) -> list[int]:
        """SIGTERM to `donations serve` (granian stops its workers gracefully), then SIGKILL to
        every process still carrying the tag, and wait until none is left. Answers the pids
        that had to be killed."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        killed = self.processes()
        deadline = time.monotonic() + 15
        while True:
            left = self.processes()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of donations serve survive SIGKILL: {left}")
            time.sleep(0.05)
        if proc is not None:
            proc.wait(timeout=15)  # reap it (it carries the tag, so it was killed above)
        return killed
