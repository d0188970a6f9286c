"""The conformance table (appeals.json): one set of cases for the Python engine and widget.js."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from donations.appeals.engine import (
    AppealRequest,
    AppealRules,
    Snapshot,
    default_country_currencies,
)
from donations.appeals.impressions import ImpressionTokens
from donations.appeals.reader import Reader, reader_from_json
from donations.appeals.service import describe_candidates
from donations.supporters import Supporter

TABLE = Path(__file__).with_name("appeals.json")
SECRET = "conformance-secret-key-" + "x" * 20
BASE_URL = "https://news.example"


def load_cases() -> list[dict[str, Any]]:
    return list(json.loads(TABLE.read_text(encoding="utf-8"))["cases"])


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def rules_of(case: dict[str, Any]) -> AppealRules:
    r = case["rules"]
    return AppealRules(
        blackout_sections=frozenset(r.get("blackout_sections", [])),
        blackout_tags=frozenset(r.get("blackout_tags", [])),
        killed_placements=frozenset(r.get("killed_placements", [])),
        gate_after_articles=int(r.get("gate_after_articles", 5)),
        one_off_supporter_days=int(r.get("one_off_supporter_days", 90)),
    )


def page_of(case: dict[str, Any], **reader_state: Any) -> AppealRequest:
    p = case["page"]
    return AppealRequest(
        article=p["article"],
        placement=p.get("placement", "epic"),
        section=p.get("section"),
        tags=frozenset(p.get("tags") or []),
        lang=p.get("lang", "en"),
        country=p.get("country"),
        **reader_state,
    )


def snapshot_of(case: dict[str, Any]) -> Snapshot:
    return Snapshot.build(case["campaigns"], rules_of(case), version=1)


def answer_for(case: dict[str, Any]) -> dict[str, Any]:
    """The candidates answer `GET /api/v1/appeals` gives for the case's page at `now`."""
    return describe_candidates(
        snapshot_of(case),
        page_of(case),
        now=moment(case["now"]),
        public_base_url=BASE_URL,
        country_currencies=default_country_currencies(),
        minimums={"usd": 100, "eur": 100, "gbp": 100},
        tokens=ImpressionTokens(SECRET),
    )


def decide_at(case: dict[str, Any]) -> datetime:
    return moment(case.get("decide_at") or case["now"])


def reader_for(case: dict[str, Any]) -> Reader:
    return reader_from_json(case["reader"], decide_at(case))


def legacy_request(case: dict[str, Any]) -> AppealRequest | None:
    """The same reader as a `GET /api/v1/appeal` query, or None when the query cannot say it
    (it carries one time for every dismissal)."""
    r = case["reader"]
    times = set((r.get("dismissed") or {}).values())
    if len(times) > 1:
        return None
    supporter = None
    s = r.get("supporter")
    if s and moment(s["expires"]) > decide_at(case):
        since = moment(s["since"]).timestamp() - datetime(1970, 1, 1).timestamp()
        supporter = Supporter(kind=s["kind"], issued_at=int(since))
    return page_of(
        case,
        views=int(r.get("views", 0)),
        rid=r.get("rid") or None,
        dismissed=frozenset(r.get("dismissed") or {}),
        last_dismissed=moment(times.pop()) if times else None,
        seen=dict(r.get("seen") or {}),
        supporter=supporter,
    )
