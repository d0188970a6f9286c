"""The process's kept answers for GET /api/v1/appeals (appeals/candidates.py): found again by
the raw query the widget repeats, the first value of a repeated parameter winning as in
Flask; bounded in count and bytes; forgotten when the campaigns or the hour change."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from donations.appeals import candidates as module
from donations.appeals.candidates import CandidateAnswers


@dataclass
class Snapshot:
    version: int = 1
    built_at: float = 0.0


@pytest.fixture
def made(monkeypatch):
    """Every answer actually computed (not found), as (args, country)."""
    calls: list[tuple[dict[str, str], str | None]] = []

    def answer_candidates(services: Any, args: Any, country: Any) -> tuple[None, dict]:
        calls.append((dict(args), country))
        return None, {"article": args.get("article"), "pad": "x" * int(args.get("size", "10"))}

    monkeypatch.setattr(module, "answer_candidates", answer_candidates)
    return calls


def services(snapshot: Snapshot) -> Any:
    return SimpleNamespace(appeals=SimpleNamespace(current=lambda: snapshot))


def test_a_repeated_query_is_found_without_computing_again(made):
    cache, s = CandidateAnswers(), services(Snapshot())
    first = cache.for_query(s, "article=a&placement=epic", None)
    again = cache.for_query(s, "article=a&placement=epic", None)
    assert again is first and len(made) == 1
    # another country (the CDN's header) is another answer
    cache.for_query(s, "article=a&placement=epic", "GB")
    assert made[-1] == ({"article": "a", "placement": "epic"}, "GB") and len(made) == 2


def test_the_first_of_a_repeated_parameter_wins_as_in_flask(made):
    cache, s = CandidateAnswers(), services(Snapshot())
    cache.for_query(s, "article=first&article=second", None)
    assert made == [({"article": "first"}, None)]


def test_a_new_campaign_version_or_hour_forgets_every_answer(made, monkeypatch):
    snapshot = Snapshot()
    cache, s = CandidateAnswers(), services(snapshot)
    cache.for_query(s, "article=a", None)
    snapshot.version = 2
    cache.for_query(s, "article=a", None)
    assert len(made) == 2
    hour = module.BUCKET_SECONDS
    later = module.utcnow().timestamp() + hour
    monkeypatch.setattr(module, "utcnow", lambda: SimpleNamespace(timestamp=lambda: later))
    cache.for_query(s, "article=a", None)
    assert len(made) == 3


def test_the_least_recently_asked_go_first_within_the_byte_budget(made, monkeypatch):
    monkeypatch.setattr(module, "MAX_BYTES", 3_000)
    cache, s = CandidateAnswers(), services(Snapshot())
    for name in ("a", "b", "c"):  # ~1 KB each: all three fit
        cache.for_query(s, f"article={name}&size=900", None)
    cache.for_query(s, "article=a&size=900", None)  # a is now the most recent
    assert len(made) == 3
    cache.for_query(s, "article=d&size=900", None)  # over budget: b (least recent) goes
    assert cache._bytes <= 3_000
    cache.for_query(s, "article=a&size=900", None)
    cache.for_query(s, "article=c&size=900", None)
    assert len(made) == 4  # a and c were kept
    cache.for_query(s, "article=b&size=900", None)
    assert len(made) == 5  # b was not


def test_the_count_is_bounded_too(made, monkeypatch):
    monkeypatch.setattr(module, "MAX_ANSWERS", 2)
    cache, s = CandidateAnswers(), services(Snapshot())
    for name in ("a", "b", "c"):
        cache.for_query(s, f"article={name}", None)
    assert len(cache._answers) == 2
    cache.for_query(s, "article=a", None)
    assert len(made) == 4
