"""Funnel integrity: only events about an appeal the service served are counted, one client
moves the report by a small bounded amount a minute, and counting never gets stuck on a bad
row (issue 10, items 2 and 4)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from donations import migrate
from donations.admin.tokens import create_token
from donations.app import create_app
from donations.appeals import events as events_module
from donations.appeals.events import EventCounter, now_day
from donations.appeals.impressions import UNSIGNED
from donations.appeals.models import EventCount
from donations.appeals.service import impression_tokens
from donations.appeals.throttle import EventLimiter, event_limiter
from donations.db import Database
from tests.conftest import LiveServer, close_app, free_port, wait_for

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
ARTICLE = "putin-congratulates-biden"
CAMPAIGN = {
    "id": "spring",
    "name": "Spring appeal",
    "status": "live",
    "placements": ["epic", "banner"],
    "priority": 10,
    "starts_at": "2020-12-01T00:00:00Z",
    "ends_at": None,
    "frequency": {"max_impressions": None, "per_days": 30, "after_dismiss_days": 14},
    "goal": None,
    "holdback": 0.0,
    "variants": [
        {
            "id": variant,
            "weight": 1,
            "heading": f"Support us ({variant})",
            "body_html": "<p>Help us today.</p>",
            "cta_label": "Contribute today",
            "default_frequency": "monthly",
            "amounts": {"usd": {"one_off": [500], "monthly": [500], "annual": [5000]}},
        }
        for variant in ("control", "bold")
    ],
}


@pytest.fixture(autouse=True)
def _fresh_event_limits(app: Any) -> None:
    """Every test's events start with the client's budgets untouched (all from 127.0.0.1)."""
    event_limiter(app).reset()


@pytest.fixture
def admin_token(database: Database) -> str:
    with database.transaction() as s:
        return create_token(s, "funnel")


@pytest.fixture
def campaign(api: Any, admin_token: str) -> dict[str, Any]:
    r = api.post(
        "/api/v1/admin/campaigns",
        json=CAMPAIGN,
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def served(api: Any, article: str = ARTICLE, **params: str) -> dict[str, Any]:
    """The appeal a reader was shown, with the article it was shown on."""
    r = api.get("/api/v1/appeal", params={"article": article, **params})
    assert r.status_code == 200, r.text
    return {**r.json()["appeal"], "article": article}


def event(shown: dict[str, Any], type_: str = "impression", **changes: Any) -> dict[str, Any]:
    fields = ("impression", "campaign", "variant", "placement", "article")
    return {"type": type_, **{k: shown[k] for k in fields}, **changes}


def post(http: Any, base: str, events: list[dict[str, Any]], **kw: Any) -> int:
    r = http.post(
        base + "/api/v1/events",
        data=json.dumps({"events": events}),
        headers={"Content-Type": "text/plain;charset=UTF-8", **kw.pop("headers", {})},
        timeout=30,
        **kw,
    )
    assert r.status_code == 202, r.text
    return int(r.json()["accepted"])


def counts(database: Database, **where: str) -> dict[str, int]:
    query = select(EventCount.type, func.sum(EventCount.count)).group_by(EventCount.type)
    for name, value in where.items():
        query = query.where(getattr(EventCount, name) == value)
    with database.sessions() as s:
        return {t: int(n) for t, n in s.execute(query).all()}


def refused(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("donations_appeal_events_refused_total", {"reason": reason}) or 0
    )


# --- the token ---------------------------------------------------------------------------------
def test_the_token_names_no_reader_so_one_cached_answer_serves_every_reader(api, campaign):
    one = served(api, rid="reader-1")
    two = served(api, rid="reader-2")
    if one["variant"] != two["variant"]:
        two = served(api, rid="reader-1")
    assert one["impression"] == two["impression"]  # the same answer for everyone
    assert len(one["impression"]) == 24 and one["impression"].startswith("imp_")
    assert one["impression"].replace("-", "").replace("_", "")[4:].isalnum()
    assert f"impression={one['impression']}" in one["cta"]["url"]
    other_article = served(api, article="another-story", rid="reader-1")
    other_placement = served(api, rid="reader-1", placement="banner")
    assert len({one["impression"], other_article["impression"], other_placement["impression"]}) == 3


def test_an_event_counts_with_the_token_of_the_appeal_it_is_about(api, app, database, campaign):
    shown = served(api)
    assert post(api.http, api.base, [event(shown), event(shown, "view")]) == 2
    app.extensions["donations"].events.flush_all()
    assert counts(database) == {"impression": 1, "view": 1}


def test_events_without_a_token_of_this_service_for_their_fields_are_not_counted(
    api, app, database, settings, campaign
):
    shown = served(api)
    other = "bold" if shown["variant"] == "control" else "control"
    now = time.time()

    def signed(campaign: str, variant: str, ago: float = 0, key: str = settings.secret_key) -> str:
        return impression_tokens(key).issue(campaign, variant, "epic", ARTICLE, now=now - ago)

    tampered = shown["impression"][:-1] + ("A" if shown["impression"][-1] != "A" else "B")
    invalid = [
        {k: v for k, v in event(shown).items() if k != "impression"},  # no token at all
        event(shown, impression="imp_1"),
        event(shown, impression=tampered),
        event(shown, impression=shown["impression"].replace("-", "+").replace("_", "/")),
        event(shown, variant=other),  # the token of another variant
        event(shown, placement="banner"),  # … of another placement
        event(shown, article="another-story"),  # … of another article
        event(shown, impression=signed("spring", shown["variant"], key="another-" + "x" * 32)),
    ]
    expired = event(shown, impression=signed("spring", shown["variant"], ago=26 * 3600))
    unknown = [  # well signed, but no such campaign or variant (any more)
        event(shown, campaign="gone", impression=signed("gone", "control")),
        event(shown, variant="retired", impression=signed("spring", "retired")),
    ]
    before = {reason: refused(reason) for reason in ("invalid", "expired", "unknown")}
    for bad in [*invalid, expired, *unknown]:
        assert post(api.http, api.base, [bad]) == 0, bad
    assert refused("invalid") - before["invalid"] == len(invalid)
    assert refused("expired") - before["expired"] == 1
    assert refused("unknown") - before["unknown"] == 2
    # A token a little under a day old still counts: a reader's tab left open overnight.
    yesterday = signed("spring", shown["variant"], ago=23 * 3600)
    assert post(api.http, api.base, [event(shown, impression=yesterday)]) == 1
    app.extensions["donations"].events.flush_all()
    assert counts(database) == {"impression": 1}


def test_the_admin_preview_counts_nothing(api, app, database, admin_token, campaign):
    r = api.post(
        "/api/v1/admin/campaigns/preview",
        json={"document": CAMPAIGN, "variant": "bold", "placement": "epic"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 200, r.text
    preview = {**r.json()["appeal"], "article": "preview"}
    assert preview["impression"] == UNSIGNED
    assert post(api.http, api.base, [event(preview), event(preview, "click")]) == 0
    assert post(api.http, api.base, [event(preview, article=ARTICLE)]) == 0
    app.extensions["donations"].events.flush_all()
    assert counts(database) == {}


# --- the bound per client ----------------------------------------------------------------------
def test_the_reported_attack_moves_the_report_by_one_impression_and_three_clicks(
    api, app, database, admin_token, campaign
):
    """400 requests of 50 clicks from one address (the issue: 20,000 clicks were counted)."""
    shown = served(api)
    accepted = post(api.http, api.base, [event(shown)])
    started = time.monotonic()
    with requests.Session() as http:
        for _ in range(400):
            accepted += post(http, api.base, [event(shown, "click")] * 50)
    assert time.monotonic() - started < 60  # all inside one minute: the bound applies
    assert accepted == 1 + 3
    assert post(api.http, api.base, [event(shown)] * 50) == 0  # and not one impression more
    app.extensions["donations"].events.flush_all()
    assert counts(database) == {"impression": 1, "click": 3}
    r = api.get(
        "/api/v1/admin/reports/experiments",
        params={"campaign": "spring"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 200, r.text
    variants = {v["variant"]: v for c in r.json()["campaigns"] for v in c["variants"]}
    assert variants[shown["variant"]]["impressions"] == 1
    assert variants[shown["variant"]]["clicks"] == 3
    assert refused("limited") >= 400 * 50 - 3


def test_many_tokens_from_one_address_count_at_most_60_events_of_which_10_clicks(
    api, app, database, campaign
):
    """Fetching a token per article doesn't widen the bound: per address and minute, at most
    60 events are counted, at most 10 of them clicks or dismissals."""
    shown = [served(api, article=f"story-{i}") for i in range(70)]
    clicks = [event(s, "click") for s in shown[:20]]
    assert post(api.http, api.base, clicks) == 10
    impressions = [event(s) for s in shown]
    accepted = post(api.http, api.base, impressions[:50]) + post(
        api.http, api.base, impressions[50:]
    )
    assert accepted == 60 - 10
    app.extensions["donations"].events.flush_all()
    assert counts(database) == {"click": 10, "impression": 50}


def test_behind_a_trusted_proxy_each_reader_has_budgets_of_their_own(
    api, settings, database, campaign
):
    shown = served(api)
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    # Not configured to trust a proxy: the header is the client's word, and changes nothing.
    assert post(api.http, api.base, [event(shown)], headers=spoofed) == 1
    assert post(api.http, api.base, [event(shown)], headers={"X-Forwarded-For": "203.0.113.8"}) == 0
    proxied = create_app(settings.with_overrides(trusted_proxies=1), database=database)
    server = LiveServer(proxied).start()
    try:
        event_limiter(proxied).reset()
        for reader in ("198.51.100.1", "198.51.100.2", "2001:db8:1::1"):
            through = {"X-Forwarded-For": reader}
            assert post(api.http, server.url, [event(shown)] * 3, headers=through) == 1, reader
        # Another address of the same IPv6 /64 is the same subscriber.
        assert (
            post(api.http, server.url, [event(shown)], headers={"X-Forwarded-For": "2001:db8:1::2"})
            == 0
        )
    finally:
        server.stop()
        close_app(proxied)


@needs_redis
def test_the_budgets_are_shared_by_every_instance_through_redis():
    from donations.appeals.events import Event

    one, two = EventLimiter(REDIS_URL), EventLimiter(REDIS_URL)
    click = Event("click", "imp_" + "A" * 20, "spring", "control", "epic", ARTICLE)
    assert len(one.admit("192.0.2.1", [click] * 2)) == 2
    assert len(two.admit("192.0.2.1", [click] * 2)) == 1  # 3 per token a minute, in all
    assert two.admit("192.0.2.1", [click]) == []
    assert len(two.admit("192.0.2.2", [click])) == 1  # another client


def test_with_redis_unreachable_the_limits_still_hold_in_process():
    from donations.appeals.events import Event

    limiter = EventLimiter("redis://127.0.0.1:9/0")  # nothing listens there
    view = Event("view", "imp_" + "A" * 20, "spring", "control", "epic", ARTICLE)
    assert len(limiter.admit("192.0.2.1", [view] * 5)) == 1
    assert limiter.admit("192.0.2.1", [view]) == []


# --- counting never gets stuck -----------------------------------------------------------------
GOOD: list[events_module.Key] = [
    (now_day(), "spring", "control", "epic", ARTICLE, "impression"),
    (now_day(), "spring", "control", "epic", ARTICLE, "click"),
]
SURROGATE = (now_day(), "spring", "control", "epic", "lone \ud800 surrogate", "impression")
NUL = (now_day(), "spring", "control", "epic", "poison\x00nul", "impression")


def poisons(database: Database) -> list[events_module.Key]:
    """Rows the database (or its driver) refuses: a lone surrogate anywhere; NUL in text on
    PostgreSQL (SQLite stores it)."""
    return [SURROGATE, *([NUL] if database.engine.dialect.name == "postgresql" else [])]


def aside_metric() -> float:
    return REGISTRY.get_sample_value("donations_appeal_event_rows_set_aside_total") or 0


def test_a_bad_row_in_memory_is_kept_aside_and_never_blocks_the_others(database):
    counter = EventCounter(database)  # no Redis: counts wait in this process's memory
    bad = poisons(database)
    before = aside_metric()
    counter.add([GOOD[0], *bad, GOOD[1], GOOD[1]])
    assert counter.flush() == 3
    assert counts(database) == {"impression": 1, "click": 2}
    assert counter.pending() == 0
    kept = {tuple(key): (n, why) for key, n, why in counter.aside()}
    assert set(kept) == set(bad) and all(n == 1 and why for n, why in kept.values())
    assert counter.aside_count() == len(bad)
    assert aside_metric() - before == len(bad)
    counter.add([GOOD[0]])  # later counts are not stuck behind it
    assert counter.flush() == 1
    assert counts(database) == {"impression": 2, "click": 2}
    counter.close()


def test_a_failing_database_sets_nothing_aside_and_the_counts_wait(database):
    down = Database("postgresql://postgres@127.0.0.1:9/nothing")  # nothing listens there
    counter = EventCounter(down)
    counter.add([*GOOD, SURROGATE])
    assert counter.flush() == 0
    assert counter.pending() == 3 and counter.aside() == []
    down.dispose()
    counter._db = database  # the database is back
    assert counter.flush() == 2
    assert counts(database) == {"impression": 1, "click": 1}
    assert [tuple(k) for k, _, _ in counter.aside()] == [SURROGATE]
    counter.close()


def test_counts_held_in_memory_while_redis_is_down_are_written_at_shutdown(database):
    counter = EventCounter(database, "redis://127.0.0.1:9/0")  # nothing listens there
    counter.add([*GOOD, *poisons(database)])
    assert counter.pending() == 2 + len(poisons(database))
    counter.close()  # what atexit and a worker's clean shutdown call
    assert counts(database) == {"impression": 1, "click": 1}
    assert {tuple(k) for k, _, _ in counter.aside()} == set(poisons(database))


@needs_redis
def test_a_bad_field_in_the_redis_hash_is_kept_aside_and_the_others_are_moved(app, database):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    day = events_module.REDIS_PREFIX + now_day()
    sep = events_module.SEP.encode()
    good = sep.join([b"spring", b"control", b"epic", ARTICLE.encode(), b"impression"])
    client.hincrby(day, good, 5)
    bad = [
        sep.join([b"spring", b"control", b"epic", b"\xff\xfe not utf-8", b"impression"]),
        sep.join([b"spring", b"control", b"only-three-parts"]),
        *([sep.join([b"spring", b"control", b"epic", b"poison\x00nul", b"click"])]
          if database.engine.dialect.name == "postgresql" else []),
    ]  # fmt: skip
    for field in bad:
        client.hincrby(day, field, 2)
    counter = EventCounter(database, REDIS_URL)
    before = aside_metric()
    assert counter.flush_redis() == 5
    assert counts(database) == {"impression": 5}
    assert not client.exists(day) and not client.exists(day + ":flushing")
    assert client.hlen(events_module.ASIDE) == len(bad)
    assert all(n == 2 for _, n, _ in counter.aside())
    assert counter.aside_count() == len(bad)
    assert aside_metric() - before == len(bad)
    client.hincrby(day, good, 1)  # the funnel goes on
    assert counter.flush_redis() == 1
    assert counts(database) == {"impression": 6}
    counter.close()
    client.close()


@needs_redis
def test_a_failing_database_leaves_the_redis_counts_where_they_are(database):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    day = events_module.REDIS_PREFIX + now_day()
    client.hincrby(day, events_module.SEP.join(GOOD[0][1:]), 4)
    down = Database("postgresql://postgres@127.0.0.1:9/nothing")
    assert EventCounter(down, REDIS_URL).flush_redis() == 0
    assert client.hlen(events_module.ASIDE) == 0
    counter = EventCounter(database, REDIS_URL)
    assert counter.flush_redis() == 4  # picked up from where the failed flush left them
    assert counts(database) == {"impression": 4}
    down.dispose()
    client.close()


def test_rows_kept_aside_and_events_not_counted_show_in_metrics(api, app, campaign):
    def scrape() -> dict[str, float]:
        text = api.get("/metrics").text
        return {
            name: float(value)
            for name, _, value in (line.rpartition(" ") for line in text.splitlines())
            if name.startswith("donations_appeal_event")
        }

    before = scrape()
    counter = app.extensions["donations"].events
    counter.add([SURROGATE])  # cannot even be written to Redis: counted in memory
    counter.flush_all()
    shown = served(api)
    assert post(api.http, api.base, [event(shown, impression="imp_forged")]) == 0
    after = scrape()
    assert after["donations_appeal_event_rows_aside"] >= 1
    aside_total = "donations_appeal_event_rows_set_aside_total"
    assert after[aside_total] - before.get(aside_total, 0) == 1
    invalid = 'donations_appeal_events_refused_total{reason="invalid"}'
    assert after[invalid] - before.get(invalid, 0) == 1


def test_sigterm_writes_the_counts_a_server_held_in_memory_while_redis_was_down(tmp_path):
    """`donations serve`, Redis unreachable: each worker counts in its memory, and a SIGTERM
    writes those counts before the workers exit."""
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    migrate.upgrade(url)
    from donations.appeals.campaigns import save_campaign
    from donations.appeals.documents import CampaignDocument

    db = Database(url)
    try:
        with db.transaction() as s:
            save_campaign(s, CampaignDocument().load(CAMPAIGN))
    finally:
        db.dispose()
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL")
    }
    env.update(
        DATABASE_URL=url,
        REDIS_URL="redis://127.0.0.1:9/0",  # nothing listens there
        DONATIONS_ENV="test",
        DONATIONS_INSTANCE_PATH=str(tmp_path),
    )
    cmd = [sys.executable, "-c", "from donations.cli import main; main()"]
    server = subprocess.Popen(
        [*cmd, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.extend(line.decode() for line in server.stdout), daemon=True
    )
    reader.start()
    try:
        wait_for(lambda: sum("Started worker" in line for line in output) == 2, timeout=60)
        counted = 0
        with requests.Session() as http:
            wait_for(lambda: http.get(base + "/healthz", timeout=5).ok, timeout=30)
            for i in range(20):
                r = http.get(base + "/api/v1/appeal", params={"article": f"a-{i}"}, timeout=5)
                assert r.status_code == 200, r.text
                shown = {**r.json()["appeal"], "article": f"a-{i}"}
                counted += post(http, base, [event(shown), event(shown, "view")])
        assert counted == 40
        server.send_signal(signal.SIGTERM)  # at once: inside the 2-second background flush
        assert server.wait(timeout=30) == 0, "".join(output)
    finally:
        if server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        reader.join(5)
        server.stdout.close()
    db = Database(url)
    try:
        assert counts(db) == {"impression": 20, "view": 20}
    finally:
        db.dispose()
