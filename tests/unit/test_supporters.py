"""Supporter tokens live only as long as the support they prove is worth that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsdangerous import URLSafeTimedSerializer

from donations import supporters

KEY = "k" * 40
NOW = datetime(2026, 6, 1, 12, 0)


def at(days: float) -> datetime:
    return (NOW + timedelta(days=days)).replace(tzinfo=UTC)


def test_a_recurring_supporters_token_lasts_thirty_days():
    token = supporters.issue(KEY, "recurring", now=NOW, one_off_days=90)
    assert supporters.verify(KEY, token, now=at(29.9)).kind == "recurring"
    assert supporters.verify(KEY, token, now=at(30.1)) is None


def test_a_one_off_supporters_token_lasts_the_window_counted_from_the_gift():
    gift = NOW - timedelta(days=10)
    token = supporters.issue(KEY, "one_off", now=NOW, one_off_days=90, since=gift)
    found = supporters.verify(KEY, token, now=at(79))
    assert found.kind == "one_off"
    assert found.issued_at == int(gift.replace(tzinfo=UTC).timestamp())  # the window's start
    assert supporters.verify(KEY, token, now=at(80.1)) is None
    # a gift already outside its window gets no token at all
    assert supporters.issue(KEY, "one_off", now=NOW, one_off_days=5, since=gift) is None


def test_forged_or_foreign_tokens_prove_nothing():
    token = supporters.issue(KEY, "recurring", now=NOW)
    assert supporters.verify("another-key" * 4, token, now=at(1)) is None
    forged = URLSafeTimedSerializer(KEY, salt="elsewhere").dumps({"k": "recurring"})
    assert supporters.verify(KEY, forged) is None
    assert supporters.verify(KEY, "junk") is None


def test_tokens_from_before_they_carried_an_expiry_last_thirty_days_from_their_issue():
    legacy = URLSafeTimedSerializer(KEY, salt=supporters.SALT).dumps({"k": "recurring"})
    assert supporters.verify(KEY, legacy).kind == "recurring"
    later = datetime.now(UTC) + timedelta(days=31)
    assert supporters.verify(KEY, legacy, now=later) is None
