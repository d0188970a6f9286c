"""Running the localstripe emulator as its own process (development, demo and tests).

localstripe is GPL: it is only ever started as a separate program, never imported.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

PICKLE = Path("/tmp/localstripe.pickle")  # noqa: S108 - hard-coded by localstripe itself


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class LocalStripe:
    """A localstripe process on 127.0.0.1:port, started from scratch."""

    def __init__(self, port: int = 8420, log_path: Path | None = None) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> LocalStripe:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another localstripe running?")
        exe = shutil.which("localstripe")
        cmd = [exe] if exe else [sys.executable, "-m", "localstripe"]
        if self.log_path:
            with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
                self._proc = subprocess.Popen(  # noqa: S603
                    [*cmd, "--port", str(self.port), "--from-scratch"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        else:
            self._proc = subprocess.Popen(  # noqa: S603
                [*cmd, "--port", str(self.port), "--from-scratch"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError("localstripe exited at start; is it installed?")
            if port_open(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("localstripe did not start in time")

    def register_webhook(self, url: str, secret: str, name: str = "donations") -> None:
        """Deliver every event to `url`, signed with `secret` (survives flush())."""
        r = requests.post(
            f"{self.base}/_config/webhooks/{name}", data={"url": url, "secret": secret}, timeout=10
        )
        r.raise_for_status()

    def flush(self) -> None:
        """Forget all objects (webhook registrations stay)."""
        requests.delete(f"{self.base}/_config/data", timeout=30).raise_for_status()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
