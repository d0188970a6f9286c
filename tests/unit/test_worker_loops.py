"""A worker loop's pass that fails (the database or Redis restarting) is reported and the
loop goes on: `donations webhooks|mail|events worker` never exits for it."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from donations.cli import _one_pass


def test_a_lost_database_is_one_line_and_the_loop_goes_on(capsys):
    def down() -> int:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection\nmore"))

    assert _one_pass("booking Stripe events", down) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "booking Stripe events failed (OperationalError: server closed the connection)" in err


def test_a_bug_is_logged_with_its_traceback_and_the_loop_goes_on(caplog):
    def bug() -> int:
        raise KeyError("oops")

    assert _one_pass("sending email", bug) is None
    assert "sending email failed" in caplog.text and "KeyError" in caplog.text


@pytest.mark.parametrize("value", [0, 3])
def test_a_pass_that_works_answers_what_it_did(value):
    assert _one_pass("flushing event counts", lambda: value) == value
