"""Choosing an appeal: one table row per targeting rule, caps, suppression, bucketing."""

from collections import Counter
from datetime import datetime, timedelta
from random import Random

import pytest

from donations.appeals.engine import AppealRequest, AppealRules, Snapshot, choose
from donations.supporters import Supporter

NOW = datetime(2026, 11, 28, 12, 0, 0)


def campaign(id_="c", **changes):
    doc = {
        "id": id_,
        "name": id_,
        "status": "live",
        "placements": ["epic", "banner", "gate"],
        "priority": 0,
        "starts_at": "2026-11-01T00:00:00Z",
        "ends_at": None,
        "targeting": {
            "sections": {"include": [], "exclude": []},
            "tags": {"include": [], "exclude": []},
            "countries": {"include": [], "exclude": []},
            "languages": [],
            "articles_read": {"min": 0, "max": None},
        },
        "frequency": {"max_impressions": 4, "per_days": 30, "after_dismiss_days": 14},
        "goal": None,
        "holdback": 0.0,
        "variants": [{"id": "control", "weight": 1, "heading": "Support us"}],
    }
    for key, value in changes.items():
        if key in doc["targeting"]:
            doc["targeting"][key] = value
        else:
            doc[key] = value
    return doc


def shown(doc, rules=AppealRules(), **req):
    snapshot = Snapshot.build([doc], rules, version=1)
    decision = choose(snapshot, AppealRequest(**{"article": "a-1", **req}), NOW)
    return decision.campaign is not None, decision.explain


RULES = [
    # (description, campaign changes, request, shown?)
    ("live campaign, no targeting", {}, {}, True),
    ("draft is never shown", {"status": "draft"}, {}, False),
    ("paused is never shown", {"status": "paused"}, {}, False),
    ("not started", {"starts_at": "2026-12-01T00:00:00Z"}, {}, False),
    ("ended", {"ends_at": "2026-11-20T00:00:00Z"}, {}, False),
    ("placement not in campaign", {"placements": ["banner"]}, {"placement": "epic"}, False),
    (
        "section included",
        {"sections": {"include": ["news"], "exclude": []}},
        {"section": "News"},
        True,
    ),
    (
        "section not included",
        {"sections": {"include": ["news"], "exclude": []}},
        {"section": "sport"},
        False,
    ),
    ("section missing but required", {"sections": {"include": ["news"], "exclude": []}}, {}, False),
    (
        "section excluded",
        {"sections": {"include": [], "exclude": ["obituaries"]}},
        {"section": "obituaries"},
        False,
    ),
    (
        "tag included",
        {"tags": {"include": ["putin"], "exclude": []}},
        {"tags": frozenset({"putin", "usa"})},
        True,
    ),
    (
        "no included tag",
        {"tags": {"include": ["climate"], "exclude": []}},
        {"tags": frozenset({"putin"})},
        False,
    ),
    (
        "tag excluded",
        {"tags": {"include": [], "exclude": ["tragedy"]}},
        {"tags": frozenset({"tragedy"})},
        False,
    ),
    (
        "country included",
        {"countries": {"include": ["GB"], "exclude": []}},
        {"country": "GB"},
        True,
    ),
    (
        "country not included",
        {"countries": {"include": ["GB"], "exclude": []}},
        {"country": "US"},
        False,
    ),
    ("country unknown but required", {"countries": {"include": ["GB"], "exclude": []}}, {}, False),
    (
        "country excluded",
        {"countries": {"include": [], "exclude": ["RU"]}},
        {"country": "RU"},
        False,
    ),
    ("language targeted", {"languages": ["ru"]}, {"lang": "ru"}, True),
    ("language region falls back", {"languages": ["pt"]}, {"lang": "pt-br"}, True),
    ("language not targeted", {"languages": ["ru"]}, {"lang": "en"}, False),
    ("read enough", {"articles_read": {"min": 3, "max": None}}, {"views": 3}, True),
    ("read too few", {"articles_read": {"min": 3, "max": None}}, {"views": 2}, False),
    ("read too many", {"articles_read": {"min": 0, "max": 10}}, {"views": 11}, False),
    (
        "dismissed recently",
        {},
        {"dismissed": frozenset({"c"}), "last_dismissed": NOW - timedelta(days=3)},
        False,
    ),
    (
        "dismissed long ago",
        {},
        {"dismissed": frozenset({"c"}), "last_dismissed": NOW - timedelta(days=15)},
        True,
    ),
    ("dismissed, no time given", {}, {"dismissed": frozenset({"c"})}, False),
    ("another campaign dismissed", {}, {"dismissed": frozenset({"other"})}, True),
    ("under the impression cap", {}, {"seen": {"c": 3}}, True),
    ("at the impression cap", {}, {"seen": {"c": 4}}, False),
    (
        "no cap",
        {"frequency": {"max_impressions": None, "per_days": 30, "after_dismiss_days": 14}},
        {"seen": {"c": 99}},
        True,
    ),
]


@pytest.mark.parametrize(
    ("description", "changes", "request_", "expected"), RULES, ids=[r[0] for r in RULES]
)
def test_targeting_rules(description, changes, request_, expected):
    ok, explain = shown(campaign(**changes), **request_)
    assert ok is expected, explain


def test_explain_gives_a_reason_for_every_campaign():
    snapshot = Snapshot.build(
        [campaign("a", priority=5), campaign("b", priority=1), campaign("c", status="draft")],
        AppealRules(),
        version=1,
    )
    decision = choose(snapshot, AppealRequest(article="x"), NOW)
    reasons = {e["campaign"]: (e["shown"], e["reason"]) for e in decision.explain}
    assert reasons == {
        "a": (True, "shown"),
        "b": (False, "lower priority than a"),
        "c": (False, "status is draft"),
    }


def test_ties_in_priority_go_to_the_earliest_start():
    snapshot = Snapshot.build(
        [
            campaign("late", starts_at="2026-11-10T00:00:00Z"),
            campaign("early", starts_at="2026-11-02T00:00:00Z"),
        ],
        AppealRules(),
        version=1,
    )
    assert choose(snapshot, AppealRequest(article="x"), NOW).campaign.id == "early"


@pytest.mark.parametrize(
    ("rules", "request_", "reason"),
    [
        (
            AppealRules(blackout_sections=frozenset({"obituaries"})),
            {"section": "Obituaries"},
            "blackout",
        ),
        (
            AppealRules(blackout_tags=frozenset({"terror"})),
            {"tags": frozenset({"terror"})},
            "blackout",
        ),
        (AppealRules(killed_placements=frozenset({"epic"})), {"placement": "epic"}, "switched off"),
        (AppealRules(gate_after_articles=5), {"placement": "gate", "views": 4}, "gate needs 5"),
    ],
)
def test_newsroom_rules_show_nothing(rules, request_, reason):
    ok, explain = shown(campaign(), rules, **request_)
    assert not ok and reason in explain[0]["reason"]


def test_kill_switch_leaves_other_placements_alone():
    rules = AppealRules(killed_placements=frozenset({"epic"}))
    assert shown(campaign(), rules, placement="banner")[0]


def test_the_gate_appears_once_enough_articles_are_read():
    assert shown(campaign(), AppealRules(gate_after_articles=5), placement="gate", views=5)[0]


def supporter(kind, days_ago):
    return Supporter(kind=kind, issued_at=int((NOW - timedelta(days=days_ago)).timestamp()))


@pytest.mark.parametrize(
    ("who", "placement", "expected"),
    [
        (supporter("recurring", 300), "epic", False),  # recurring supporters: never
        (supporter("one_off", 10), "epic", False),  # one-off: for the configured period
        (supporter("one_off", 100), "epic", True),  # … and then appeals again
        (supporter("one_off", 100), "gate", False),  # but never the gate
        (None, "gate", True),
    ],
)
def test_supporters_are_not_asked(who, placement, expected):
    rules = AppealRules(one_off_supporter_days=90, gate_after_articles=1)
    assert shown(campaign(), rules, supporter=who, placement=placement, views=5)[0] is expected


def test_variants_split_by_weight_over_100000_readers():
    doc = campaign(
        variants=[
            {"id": "control", "weight": 1, "heading": "A"},
            {"id": "urgent", "weight": 3, "heading": "B"},
        ]
    )
    snapshot = Snapshot.build([doc], AppealRules(), version=1)
    rng = Random(20261128)
    counts = Counter(
        choose(
            snapshot, AppealRequest(article="x", rid=f"{rng.getrandbits(64):016x}"), NOW
        ).variant.id
        for _ in range(100_000)
    )
    assert abs(counts["control"] / 100_000 - 0.25) < 0.01
    assert abs(counts["urgent"] / 100_000 - 0.75) < 0.01


def test_the_same_reader_always_gets_the_same_variant_on_every_article():
    doc = campaign(variants=[{"id": f"v{i}", "weight": 1, "heading": str(i)} for i in range(5)])
    snapshot = Snapshot.build([doc], AppealRules(), version=1)
    for rid in ("r1", "r2", "r3", "reader-42"):
        seen = {
            choose(snapshot, AppealRequest(article=f"a{i}", rid=rid), NOW).variant.id
            for i in range(20)
        }
        assert len(seen) == 1


def test_holdback_hides_the_appeal_from_its_share_of_readers():
    snapshot = Snapshot.build([campaign(holdback=0.2)], AppealRules(), version=1)
    hidden = sum(
        choose(snapshot, AppealRequest(article="x", rid=f"r{i}"), NOW).campaign is None
        for i in range(20_000)
    )
    assert abs(hidden / 20_000 - 0.2) < 0.015
