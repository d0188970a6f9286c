"""What an operator sees when the database is not ready or not there: one line that says what
to do (exit 1, no traceback), for every command; `postgres://` works; `donations demo` finds or
names free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from donations import demo
from donations.cli import cli
from tests.conftest import free_port

NOT_MIGRATED = "Error: the database is not migrated: run `donations db upgrade`"
COMMANDS = [
    ["create-admin-token"],
    ["create-admin", "ed@example.org", "--password-stdin"],
    ["purge"],
    ["reports", "check"],
    ["mail", "send"],
    ["export-donor", "someone@example.org"],
    ["erase-donor", "someone@example.org", "--yes"],
    ["events", "flush"],
]


@pytest.fixture
def fresh(tmp_path: Path) -> dict[str, str]:
    """The environment of a newly installed service: an empty SQLite file, nothing migrated."""
    return {
        "DONATIONS_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/15",  # `events flush` needs one to get that far
    }


def run(args: list[str], env: dict[str, str], stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {result.exception!r}"
    )
    return result.exit_code, result.output.strip()


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_any_command_before_db_upgrade_says_to_run_it_in_one_line(fresh, args):
    code, output = run(args, fresh, stdin="a long enough password\n")
    assert (code, output) == (1, NOT_MIGRATED)


def test_after_db_upgrade_the_same_commands_work(fresh):
    assert run(["db", "upgrade"], fresh) == (0, "database at head")
    code, output = run(["purge"], fresh)
    assert code == 0 and "deleted" in output


def test_a_real_process_prints_one_line_and_no_traceback(fresh):
    env = {**os.environ, **fresh}
    done = subprocess.run(
        [sys.executable, "-m", "donations.cli", "create-admin-token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == NOT_MIGRATED
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgress://u@127.0.0.1:5432/x", "names an unknown kind of database ('postgress')"),
        ("not a url at all", "DATABASE_URL is not a database URL"),
        ("postgresql://u:hunter2@127.0.0.1:notaport/x", "DATABASE_URL is not a database URL"),
        ("postgresql://u:hunter2@127.0.0.1:{port}/x", "cannot reach the database at "),
        ("sqlite:////proc/nope/x.sqlite3", "cannot reach the database at "),
    ],
)
def test_a_misspelt_or_unreachable_database_url_is_one_line(fresh, url, says):
    env = {**fresh, "DATABASE_URL": url.format(port=free_port())}
    for args in (["purge"], ["db", "upgrade"]):
        code, output = run(args, env)
        assert code == 1
        assert output.startswith("Error: ") and says in output, output
        assert "\n" not in output
        assert "hunter2" not in output  # never the password


def test_postgres_urls_in_herokus_spelling_work(settings):
    if not settings.database_url.startswith("postgresql://"):
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    heroku = "postgres://" + settings.database_url.removeprefix("postgresql://")
    code, output = run(["reports", "check"], {"DATABASE_URL": heroku})
    assert code in (0, 1) and "rows" in output, output  # it reached the database


# --- donations demo: the ports ------------------------------------------------------------------
@pytest.fixture
def taken() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_demo_names_a_taken_port_in_one_line(fresh, taken):
    code, output = run(["demo", "--port", str(free_port()), "--stripe-port", str(taken)], fresh)
    assert code == 1
    assert output == (
        f"Error: port {taken} (the Stripe emulator's) is taken: choose another with "
        "--stripe-port, or leave it out to use a free one"
    )
    code, output = run(["demo", "--port", str(taken)], fresh)
    assert (code, output) == (1, f"Error: port {taken} is taken: choose another with --port")


def test_demo_finds_a_free_port_for_the_emulator_when_its_own_is_taken(
    taken, monkeypatch, capsys
):
    monkeypatch.setattr(demo, "DEFAULT_STRIPE_PORT", taken)
    app_port = free_port()
    port, stripe_port = demo.choose_ports(app_port, None)
    assert port == app_port and stripe_port not in (taken, app_port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", stripe_port))  # free indeed
    said = capsys.readouterr().out
    assert f"port {taken} is taken: the Stripe emulator uses {stripe_port}" in said
    free = free_port()
    monkeypatch.setattr(demo, "DEFAULT_STRIPE_PORT", free)
    assert demo.choose_ports(app_port, None) == (app_port, free)
