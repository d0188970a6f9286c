"""Deciding for one reader among an article's candidates (docs/appeals-in-the-browser.md).

The browser does this in `widget.js` with the reader's state that never leaves it; the server
does it here for `GET /api/v1/appeal`, whose query carries that state (clients without
JavaScript). One algorithm, over the same data (the candidates answer of
`GET /api/v1/appeals`), checked against one table of conformance cases in both languages
(tests/conformance/appeals.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DAY_SECONDS = 86_400


def bucket(*parts: str) -> float:
    """A stable number in [0, 1) for its parts (a campaign, a salt, a reader id): FNV-1a
    (32-bit) over the UTF-8 bytes of "a:b:c", then MurmurHash3's 32-bit finaliser, / 2**32.
    widget.js computes exactly this (Math.imul), so a reader lands in the same bucket in the
    browser and on the server."""
    h = 0x811C9DC5
    for byte in ":".join(parts).encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h / 2**32


@dataclass(frozen=True)
class Reader:
    """What the browser knows of its reader (times are naive UTC)."""

    views: int = 0  # articles read in the last 30 days
    rid: str = ""  # a random id made in the browser
    dismissed: Mapping[str, datetime] = field(default_factory=dict)  # campaign → when
    seen: Mapping[str, int] = field(default_factory=dict)  # campaign → impressions in window
    supporter_kind: str | None = None  # "recurring" | "one_off" | None
    supporter_since: datetime | None = None  # when the support counts from


@dataclass
class Choice:
    campaign: str | None
    variant: str | None
    index: int | None  # the winner's position among the candidates
    explain: list[dict[str, Any]]


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)


def _none(reason: str) -> Choice:
    return Choice(None, None, None, [{"campaign": "*", "shown": False, "reason": reason}])


def supporter_reason(
    reader: Reader, rules: Mapping[str, Any], placement: str, now: datetime
) -> str | None:
    """Why a supporter (or the gate's threshold) hides every appeal, or None."""
    kind, since = reader.supporter_kind, reader.supporter_since
    if kind == "recurring":
        return "reader is a supporter"
    window = timedelta(days=int(rules.get("one_off_supporter_days", 90)))
    if kind == "one_off" and since is not None and now - since < window:
        return "reader is a supporter"
    if placement == "gate":
        if kind is not None:
            return "the gate is never shown to supporters"
        needed = int(rules.get("gate_after_articles", 5))
        if reader.views < needed:
            return f"gate needs {needed} articles read"
    return None


def rejection(candidate: Mapping[str, Any], reader: Reader, now: datetime) -> str | None:
    """Why this candidate may not be shown to this reader, or None when it may."""
    starts, ends = _time(candidate.get("starts_at")), _time(candidate.get("ends_at"))
    if starts is not None and now < starts:
        return "not started yet"
    if ends is not None and now >= ends:
        return "ended"
    reads = candidate.get("articles_read") or {}
    low, high = int(reads.get("min") or 0), reads.get("max")
    if reader.views < low:
        return f"fewer than {low} articles read"
    if high is not None and reader.views > int(high):
        return f"more than {high} articles read"
    campaign = candidate["campaign"]
    frequency = candidate.get("frequency") or {}
    cooling = int(frequency.get("after_dismiss_days", 14))
    dismissed_at = reader.dismissed.get(campaign)
    if dismissed_at is not None and now - dismissed_at < timedelta(days=cooling):
        return f"dismissed (hidden for {cooling} days)"
    cap = frequency.get("max_impressions")
    if cap is not None and reader.seen.get(campaign, 0) >= int(cap):
        return f"seen {cap} times in {frequency.get('per_days', 30)} days"
    if sum(int(v.get("weight", 0)) for v in candidate.get("variants") or []) <= 0:
        return "no variant has weight"
    return None


def variant_for(candidate: Mapping[str, Any], rid: str) -> str:
    """Weighted and stable: the same reader always gets the same variant."""
    variants = candidate["variants"]
    total = sum(int(v.get("weight", 0)) for v in variants)
    point = bucket(candidate["campaign"], "variant", rid) * total
    running = 0
    for v in variants:
        running += int(v.get("weight", 0))
        if point < running:
            return str(v["id"])
    return str(variants[-1]["id"])


def decide(
    answer: Mapping[str, Any], reader: Reader, now: datetime, *, explain: bool = True
) -> Choice:
    """The candidate and variant to show this reader, with a reason for each candidate."""
    rules = answer.get("rules") or {}
    reason = supporter_reason(reader, rules, str(answer.get("placement", "epic")), now)
    if reason is not None:
        return _none(reason)
    reasons: list[dict[str, Any]] = []
    winner: int | None = None
    for i, candidate in enumerate(answer.get("candidates") or []):
        if winner is not None and not explain:
            break
        why = rejection(candidate, reader, now)
        if why is None and winner is not None:
            why = f"lower priority than {answer['candidates'][winner]['campaign']}"
        if why is None:
            winner = i
        reasons.append(
            {"campaign": candidate["campaign"], "shown": why is None, "reason": why or "shown"}
        )
    if winner is None:
        return Choice(None, None, None, reasons)
    chosen = answer["candidates"][winner]
    holdback = float(chosen.get("holdback") or 0.0)
    if holdback > 0 and bucket(chosen["campaign"], "holdback", reader.rid) < holdback:
        for item in reasons:
            if item["campaign"] == chosen["campaign"]:
                item.update(shown=False, reason=f"reader is in the {holdback:.0%} holdback")
        return Choice(None, None, None, reasons)
    return Choice(chosen["campaign"], variant_for(chosen, reader.rid), winner, reasons)


def reader_from_json(data: Mapping[str, Any], now: datetime) -> Reader:
    """A reader from the conformance table's JSON (times RFC 3339); an expired supporter
    token counts as none, as in the browser."""
    supporter = data.get("supporter") or {}
    expires = _time(supporter.get("expires"))
    active = bool(supporter) and (expires is None or expires > now)
    return Reader(
        views=int(data.get("views", 0)),
        rid=str(data.get("rid", "")),
        dismissed={c: t for c, v in (data.get("dismissed") or {}).items() if (t := _time(v))},
        seen={c: int(n) for c, n in (data.get("seen") or {}).items()},
        supporter_kind=supporter.get("kind") if active else None,
        supporter_since=_time(supporter.get("since")) if active else None,
    )
