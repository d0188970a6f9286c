"""Choosing an appeal: one table row per targeting rule, caps, suppression, bucketing."""

import json
from collections import Counter
from datetime import datetime, timedelta
from random import Random

import pytest
from sqlalchemy import exc as sa_exc

from donations.appeals import throttle
from donations.appeals.engine import AppealRequest, AppealRules, Snapshot, choose
from donations.appeals.events import Event, refused_by_the_row
from donations.appeals.impressions import UNSIGNED, ImpressionTokens
from donations.appeals.service import InvalidInput, count_events, describe_appeal, parse_events
from donations.appeals.throttle import EventLimiter, client_key
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


# --- impression tokens: what an event needs to be counted ---------------------------------------
T0 = 1_795_000_000.0  # a fixed moment (2026-11-18)
FIELDS = ("year-end", "control", "epic", "a-1")


def test_an_impression_token_is_short_url_safe_and_checks_out_for_its_own_fields_only():
    tokens = ImpressionTokens("k" * 40)
    token = tokens.issue(*FIELDS, now=T0)
    assert len(token) == 24 and token.startswith("imp_")
    assert all(c.isalnum() or c in "-_" for c in token[4:])
    assert tokens.check(token, *FIELDS, now=T0) is None
    for i, other in enumerate(("spring", "bold", "banner", "a-2")):
        changed = list(FIELDS)
        changed[i] = other
        assert tokens.check(token, *changed, now=T0) == "invalid", other
    assert ImpressionTokens("another key" * 4).check(token, *FIELDS, now=T0) == "invalid"
    for junk in (None, 7, "", "imp_", UNSIGNED, token + "A", token[:-1], "imp_" + "é" * 20):
        assert tokens.check(junk, *FIELDS, now=T0) == "invalid", junk


def test_an_impression_token_lasts_a_day_and_tolerates_an_hour_of_clock_skew():
    tokens = ImpressionTokens("k" * 40)
    token = tokens.issue(*FIELDS, now=T0)
    hour = 3600
    assert tokens.check(token, *FIELDS, now=T0 + 24 * hour - 1) is None
    assert tokens.check(token, *FIELDS, now=T0 + 26 * hour) == "expired"
    assert tokens.check(token, *FIELDS, now=T0 - hour) is None  # issued by a clock a bit ahead
    assert tokens.check(token, *FIELDS, now=T0 - 2 * hour) == "expired"


def test_an_impression_token_has_one_spelling():
    """base64 also reads "+" and "/": another spelling would be another token to the limits."""
    tokens = ImpressionTokens("k" * 40)
    token = next(
        t
        for t in (tokens.issue(f"c-{i}", "control", "epic", "a-1", now=T0) for i in range(200))
        if "-" in t[4:] or "_" in t[4:]
    )
    campaign_id = next(
        f"c-{i}"
        for i in range(200)
        if tokens.issue(f"c-{i}", "control", "epic", "a-1", now=T0) == token
    )
    respelled = token[:4] + token[4:].replace("-", "+").replace("_", "/")
    assert tokens.check(token, campaign_id, "control", "epic", "a-1", now=T0) is None
    assert tokens.check(respelled, campaign_id, "control", "epic", "a-1", now=T0) == "invalid"


def test_the_same_appeal_gets_the_same_token_for_every_reader_within_the_hour():
    snapshot = Snapshot.build([campaign("year-end")], AppealRules(), version=1)
    tokens = ImpressionTokens("k" * 40)

    def token_for(rid, when=NOW):
        body, _ = describe_appeal(
            snapshot,
            AppealRequest(article="a-1", rid=rid),
            now=when,
            public_base_url="https://news.example",
            country_currencies={},
            minimums={},
            tokens=tokens,
        )
        return body["impression"]

    assert token_for("reader-1") == token_for("reader-2") == token_for(None)
    assert token_for("reader-1", NOW + timedelta(hours=1)) != token_for("reader-1")


# --- limits per client: the bound ---------------------------------------------------------------
def ev(type_="impression", token="imp_" + "A" * 20, article="a-1"):
    return Event(type_, token, "year-end", "control", "epic", article)


def test_one_token_counts_one_impression_one_view_and_three_actions_a_minute_per_client():
    limiter = EventLimiter()
    batch = [ev()] * 5 + [ev("view")] * 5 + [ev("click")] * 5 + [ev("dismiss")] * 5
    admitted = limiter.admit("192.0.2.1", batch)
    assert Counter(e.type for e in admitted) == {"impression": 1, "view": 1, "click": 3}
    assert limiter.admit("192.0.2.1", batch) == []
    assert len(limiter.admit("192.0.2.2", batch)) == 5  # another client has its own budget


def test_one_client_counts_at_most_60_events_of_which_10_actions_a_minute():
    limiter = EventLimiter()
    tokens = [f"imp_{i:020d}" for i in range(100)]
    actions = limiter.admit("192.0.2.1", [ev("dismiss", t) for t in tokens[:30]])
    assert len(actions) == 10
    shown = limiter.admit("192.0.2.1", [ev("impression", t) for t in tokens[:50]])
    shown += limiter.admit("192.0.2.1", [ev("impression", t) for t in tokens[50:]])
    assert len(shown) == 50
    assert limiter.admit("192.0.2.1", [ev("view", t) for t in tokens]) == []


def test_a_client_is_its_ipv4_address_or_its_ipv6_64():
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert (
        client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    )
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("unknown") == "unknown"


# --- counting: which failures are a row's fault -------------------------------------------------
@pytest.mark.parametrize(
    ("error", "the_row"),
    [
        (sa_exc.DataError("INSERT", {}, Exception("text cannot contain NUL")), True),
        (sa_exc.IntegrityError("INSERT", {}, Exception("check")), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
        (ValueError("Invalid isoformat string"), True),
        (sa_exc.OperationalError("INSERT", {}, Exception("connection refused")), False),
        (sa_exc.OperationalError("INSERT", {}, Exception("database is locked")), False),
        (sa_exc.ProgrammingError("INSERT", {}, Exception("relation does not exist")), False),
        (sa_exc.InterfaceError("INSERT", {}, Exception("connection closed")), False),
        (RuntimeError("anything else"), False),
    ],
)
def test_only_a_value_the_database_refuses_sets_a_row_aside(error, the_row):
    assert refused_by_the_row(error) is the_row


def test_events_with_control_characters_are_refused_before_counting():
    body = {
        "events": [
            {
                "type": "click",
                "impression": "imp_x",
                "campaign": "c",
                "variant": "v",
                "placement": "epic",
                "article": "poison\u0000nul",
            }
        ]
    }
    with pytest.raises(InvalidInput) as refused:
        parse_events(json.dumps(body).encode())
    assert "events.0" in refused.value.errors


def test_in_process_windows_forget_hits_older_than_the_window_and_idle_clients(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(throttle.time, "monotonic", lambda: clock[0])
    windows = throttle.InProcessWindows()
    three = throttle.parse("3/minute")
    assert [windows.hit(three, "a") for _ in range(4)] == [True, True, True, False]
    clock[0] += 30
    assert windows.hit(three, "a") is False and windows.get_window_stats(three, "a").remaining == 0
    clock[0] += 30.5  # the first three hits are a minute old
    assert windows.get_window_stats(three, "a").remaining == 3
    assert windows.hit(three, "a", cost=3) is True and windows.hit(three, "a") is False
    windows.hit(three, "b")
    clock[0] += 61 + windows.SWEEP_SECONDS
    windows.hit(three, "c")  # a sweep: "a" and "b" have had nothing for a window
    assert set(windows._hits) == {three.key_for("c")}


class FakeServices:
    """What count_events needs: the snapshot store, the settings and the counter."""

    def __init__(self, snapshot=None):
        self.settings = type("S", (), {"secret_key": "k" * 40})()
        self.added = []
        outer = self

        class Appeals:
            def current(self):
                if snapshot is None:
                    raise ConnectionError("the database is down")
                return snapshot

        class Events:
            def add(self, keys):
                outer.added.extend(keys)

        self.appeals, self.events = Appeals(), Events()


def test_events_count_only_for_campaigns_and_variants_that_exist_and_with_their_token():
    services = FakeServices(Snapshot.build([campaign("year-end")], AppealRules(), version=1))
    sign = ImpressionTokens("k" * 40).issue
    good = Event("impression", sign(*FIELDS, now=T0), *FIELDS)
    gone = Event("impression", sign("gone", "control", "epic", "a-1", now=T0), "gone",
                 "control", "epic", "a-1")  # fmt: skip
    forged = Event("click", "imp_" + "A" * 20, *FIELDS)
    counted = count_events(services, [good, gone, forged], "192.0.2.1", EventLimiter(), now=T0)
    assert counted == 1 and [k[1:] for k in services.added] == [(*FIELDS, "impression")]


def test_without_a_snapshot_the_token_alone_decides_what_counts():
    services = FakeServices(snapshot=None)
    good = Event("view", ImpressionTokens("k" * 40).issue(*FIELDS, now=T0), *FIELDS)
    forged = Event("view", "imp_" + "A" * 20, *FIELDS)
    assert count_events(services, [good, forged], "192.0.2.1", EventLimiter(), now=T0) == 1
