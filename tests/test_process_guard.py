"""The suite's own guard (tests/process_guard.py): a run fails when a process it started
outlives it, and says which, with its command line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

LEAKY = '''
import subprocess, time

def test_starts_a_server_and_forgets_it():
    subprocess.Popen(["sleep", "301"])

def test_kills_a_parent_whose_worker_lives_on():
    parent = subprocess.Popen(["bash", "-c", "sleep 302 & wait"])
    time.sleep(1)  # the worker is seen while its parent lives
    parent.kill()
    parent.wait()
'''

TIDY = '''
import subprocess

def test_starts_and_stops_a_process():
    child = subprocess.Popen(["sleep", "303"])
    child.terminate()
    child.wait()
'''


def pytest_run(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PROCESS_GUARD_GRACE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "tests.process_guard", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def sleepers(seconds: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_run_that_leaves_processes_behind_fails_and_names_them(tmp_path):
    done = pytest_run(tmp_path, LEAKY)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "2 process(es) started by the test suite outlived it" in done.stdout
    assert "sleep 301" in done.stdout and "sleep 302" in done.stdout  # their command lines
    assert sleepers("301") == sleepers("302") == []  # and the guard stopped them


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_run_that_stops_what_it_started_passes(tmp_path):
    done = pytest_run(tmp_path, TIDY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outlived" not in done.stdout
