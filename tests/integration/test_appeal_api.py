"""The appeal and event endpoints, and the admin campaign API, over real HTTP."""

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from donations import supporters
from donations.admin.tokens import create_token
from donations.appeals.models import Campaign, EventCount
from donations.appeals.throttle import event_limiter
from tests.conftest import wait_for

CAMPAIGN = {
    "id": "year-end-2020",
    "name": "Year-end appeal",
    "status": "live",
    "placements": ["epic", "banner"],
    "priority": 10,
    "starts_at": "2020-12-01T00:00:00Z",
    "ends_at": None,
    "targeting": {
        "sections": {"include": ["news"], "exclude": []},
        "tags": {"include": [], "exclude": ["tragedy"]},
    },
    "frequency": {"max_impressions": 4, "per_days": 30, "after_dismiss_days": 14},
    "goal": {"amount": 5000000, "currency": "usd"},
    "holdback": 0.0,
    "variants": [
        {
            "id": "control",
            "weight": 1,
            "heading": "Support independent journalism",
            "body_html": "<p>Help us <strong>today</strong>.<script>alert(1)</script></p>",
            "cta_label": "Contribute today",
            "default_frequency": "monthly",
            "amounts": {
                "usd": {"one_off": [500, 1000, 2500], "monthly": [500, 1000], "annual": [5000]},
                "gbp": {"one_off": [400], "monthly": [300, 800], "annual": [4000]},
            },
            "translations": {"ru": {"heading": "Поддержите независимую журналистику"}},
        },
    ],
}


@pytest.fixture
def token(database):
    with database.transaction() as s:
        return create_token(s, "test")


@pytest.fixture
def admin(api, token):
    def call(method, path, **kw):
        return api.http.request(
            method, api.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
        )

    return call


@pytest.fixture
def live_campaign(admin):
    r = admin("POST", "/api/v1/admin/campaigns", json=CAMPAIGN)
    assert r.status_code == 201, r.text
    return r.json()


def appeal(api, **params):
    return api.get(
        "/api/v1/appeal",
        params={"article": "putin-congratulates-biden", "section": "news", **params},
    )


def test_the_appeal_for_an_article_follows_the_contract(api, live_campaign):
    r = appeal(api, rid="reader-1", views="7", country="US")
    assert r.status_code == 200, r.text
    body = r.json()["appeal"]
    assert body["campaign"] == "year-end-2020" and body["variant"] == "control"
    assert body["placement"] == "epic"
    assert body["impression"].startswith("imp_")
    assert "<script" not in body["body_html"] and "<strong>today</strong>" in body["body_html"]
    assert body["amounts"] == {
        "currency": "usd",
        "minimum": 100,
        "presets": {"one_off": [500, 1000, 2500], "monthly": [500, 1000], "annual": [5000]},
        "default_frequency": "monthly",
    }
    assert body["ticker"] == {"goal": 5000000, "raised": 0, "currency": "usd", "ends_at": None}
    assert body["articles_read"] == 7 and body["dismissible"] is True
    assert body["cta"]["label"] == "Contribute today"
    for part in (
        "amount=500",
        "currency=usd",
        "frequency=monthly",
        "campaign=year-end-2020",
        "variant=control",
        "placement=epic",
        "article=putin-congratulates-biden",
    ):
        assert part in body["cta"]["url"]
    assert "public" in r.headers["Cache-Control"] and "max-age" in r.headers["Cache-Control"]
    assert "Origin" in r.headers["Vary"]
    # a function of its URL: the same URL answers the same body
    assert appeal(api, rid="reader-1", views="7", country="US").json() == r.json()


def test_currency_and_copy_follow_the_reader(api, live_campaign):
    gb = appeal(api, country="GB").json()["appeal"]
    assert gb["amounts"]["currency"] == "gbp" and gb["amounts"]["presets"]["monthly"] == [300, 800]
    de = appeal(api, country="DE").json()["appeal"]  # no eur presets: falls back to usd
    assert de["amounts"]["currency"] == "usd"
    ru = appeal(api, lang="ru").json()["appeal"]
    assert ru["heading"] == "Поддержите независимую журналистику"
    assert "lang=ru" in ru["cta"]["url"]  # the checkout and the receipt follow the reader
    assert appeal(api, lang="fr").json()["appeal"]["heading"] == "Support independent journalism"


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"section": "sport"}, "section not included"),
        ({"tags": "tragedy,war"}, "tag excluded"),
        ({"placement": "gate"}, "not in campaign"),
        ({"seen": "year-end-2020:4"}, "cap"),
        ({"dismissed": "year-end-2020", "last_dismissed": "2099-01-01T00:00:00Z"}, "dismissed"),
    ],
)
def test_nothing_to_show_answers_204_with_cache_headers(api, live_campaign, params, why):
    r = appeal(api, **params)
    assert r.status_code == 204, (why, r.text)
    assert r.content == b""
    assert "max-age" in r.headers["Cache-Control"]


def test_supporters_get_no_appeal_and_forged_tokens_count_for_nothing(api, live_campaign, settings):
    token = supporters.issue(settings.secret_key, "recurring")
    assert appeal(api, supporter=token).status_code == 204
    assert appeal(api, supporter=token[:-2] + "xx").status_code == 200
    assert (
        appeal(api, supporter=supporters.issue("another-key" * 4, "recurring")).status_code == 200
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"article": ""}, "article"),
        ({"article": "x" * 201}, "article"),
        ({"placement": "sidebar"}, "placement"),
        ({"views": "-1"}, "views"),
        ({"views": "many"}, "views"),
        ({"country": "USA"}, "country"),
        ({"lang": "english!"}, "lang"),
        ({"rid": "has spaces"}, "rid"),
        ({"last_dismissed": "yesterday"}, "last_dismissed"),
        ({"dismissed": "Not A Slug"}, "dismissed"),
        ({"seen": "year-end:lots"}, "seen"),
    ],
)
def test_bad_query_values_get_422_naming_the_field(api, params, field):
    r = api.get("/api/v1/appeal", params={"article": "a", **params})
    assert r.status_code == 422
    assert r.headers["Content-Type"] == "application/problem+json"
    assert field in r.json()["errors"]


def test_debug_explains_every_campaign_to_an_admin_only(api, admin, live_campaign):
    admin("POST", "/api/v1/admin/campaigns", json={**CAMPAIGN, "id": "spring", "status": "paused"})
    assert appeal(api, debug="1").status_code == 401
    r = admin("GET", "/api/v1/appeal?article=a&section=news&debug=1")
    assert r.status_code == 200
    explain = {e["campaign"]: e for e in r.json()["explain"]}
    assert explain["year-end-2020"]["shown"] is True
    assert explain["spring"] == {"campaign": "spring", "shown": False, "reason": "status is paused"}
    assert r.headers["Cache-Control"] == "private, no-store"


def test_changes_reach_the_appeal_snapshot(api, admin, live_campaign):
    assert appeal(api).status_code == 200
    r = admin("PATCH", "/api/v1/admin/campaigns/year-end-2020", json={"status": "paused"})
    assert r.status_code == 200 and r.json()["status"] == "paused"
    assert appeal(api).status_code == 204
    r = admin("PATCH", "/api/v1/admin/appeal-settings", json={"killed_placements": ["banner"]})
    assert r.status_code == 200
    admin("PATCH", "/api/v1/admin/campaigns/year-end-2020", json={"status": "live"})
    assert appeal(api).status_code == 200
    assert appeal(api, placement="banner").status_code == 204  # kill switch


def test_another_instance_notices_a_change_within_seconds(app, database, live_campaign):
    from donations.appeals.snapshot import REFRESH_SECONDS, SnapshotStore

    other = SnapshotStore(database)  # as in a second app process
    assert [c.id for c in other.current().campaigns] == ["year-end-2020"]
    with database.transaction() as s:
        row = s.get(Campaign, "year-end-2020")
        from donations.appeals.campaigns import save_campaign
        from donations.appeals.documents import CampaignDocument

        save_campaign(s, CampaignDocument().load({**row.document, "status": "paused"}))
    time.sleep(REFRESH_SECONDS + 0.1)
    assert other.current().campaigns[0].status == "paused"


def test_the_campaign_api_validates_and_names_bad_fields(admin, live_campaign):
    r = admin("POST", "/api/v1/admin/campaigns", json={**CAMPAIGN, "id": "Bad Id", "holdback": 0.9})
    assert r.status_code == 422
    assert {"id", "holdback"} <= set(r.json()["errors"])
    assert admin("POST", "/api/v1/admin/campaigns", json=CAMPAIGN).status_code == 409
    r = admin("PATCH", "/api/v1/admin/campaigns/year-end-2020", json={"placements": ["side"]})
    assert r.status_code == 422 and "placements" in r.json()["errors"]
    assert admin("GET", "/api/v1/admin/campaigns/year-end-2020").json()["placements"] == [
        "epic",
        "banner",
    ]
    assert admin("GET", "/api/v1/admin/campaigns").json()["campaigns"][0]["id"] == "year-end-2020"
    assert admin("DELETE", "/api/v1/admin/campaigns/year-end-2020").status_code == 204
    assert admin("GET", "/api/v1/admin/campaigns/year-end-2020").status_code == 404


def test_campaign_endpoints_need_an_admin_token(api):
    assert api.get("/api/v1/admin/campaigns").status_code == 401
    assert api.post("/api/v1/admin/campaigns", json=CAMPAIGN).status_code == 401


def test_campaigns_load_is_an_idempotent_upsert(migrated_url, database, tmp_path):
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([CAMPAIGN, {**CAMPAIGN, "id": "gate", "placements": ["gate"]}]))
    env = {"DATABASE_URL": migrated_url, "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "donations.cli", "campaigns", "load", str(path)],
            env=env,
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert out.returncode == 0, out.stderr
    with database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 2
    path.write_text(json.dumps({**CAMPAIGN, "variants": []}))
    bad = subprocess.run(
        [sys.executable, "-m", "donations.cli", "campaigns", "load", str(path)],
        env=env,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert bad.returncode != 0 and "variants" in bad.stderr


# --- events ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_event_limits(app):
    """Every test's events start with the client's budgets untouched (all come from 127.0.0.1)."""
    event_limiter(app).reset()


def served(api, article="putin-congratulates-biden", **params):
    """The appeal a reader was shown (its impression token vouches for its events)."""
    r = appeal(api, article=article, **params)
    assert r.status_code == 200, r.text
    return r.json()["appeal"]


def event(shown=None, **changes):
    """An event about an appeal that was served (or a made-up one without `shown`)."""
    about = shown or {
        "impression": "imp_1",
        "campaign": "year-end-2020",
        "variant": "control",
        "placement": "epic",
    }
    return {
        "type": "impression",
        "impression": about["impression"],
        "campaign": about["campaign"],
        "variant": about["variant"],
        "placement": about["placement"],
        "article": (shown or {}).get("article", "putin-congratulates-biden"),
        **changes,
    }


def total_counts(database):
    with database.sessions() as s:
        return dict(
            s.execute(
                select(EventCount.type, func.sum(EventCount.count)).group_by(EventCount.type)
            ).all()
        )


def test_event_batches_are_counted_in_aggregate(api, app, database, live_campaign):
    first = {**served(api), "article": "putin-congratulates-biden"}
    other = {**served(api, article="another-story"), "article": "another-story"}
    batch = [event(first), event(other), event(first, type="view"), event(first, type="click")]
    r = api.post(
        "/api/v1/events",
        data=json.dumps({"events": batch}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )  # as sendBeacon sends
    assert r.status_code == 202 and r.json() == {"accepted": 4}
    r = api.post("/api/v1/events", json={"events": [event(first, type="dismiss")]})
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    app.extensions["donations"].events.flush_all()
    assert total_counts(database) == {"impression": 2, "view": 1, "click": 1, "dismiss": 1}
    with database.sessions() as s:
        rows = s.scalars(select(EventCount).where(EventCount.type == "impression")).all()
        assert {(r.campaign, r.variant, r.placement, r.article) for r in rows} == {
            ("year-end-2020", "control", "epic", "putin-congratulates-biden"),
            ("year-end-2020", "control", "epic", "another-story"),
        }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"events": [event()] * 51}, 422),
        ({"events": []}, 422),
        ({"events": [event(), event(type="purchase")]}, 422),  # one bad event: none counted
        ({"events": [event(campaign="")]}, 422),
        ({"events": [event(extra="x")]}, 422),
        ({"events": [event(article="poison\u0000nul")]}, 422),
        ({"events": [event(article="lone \ud800 surrogate")]}, 422),
        ({"events": "many"}, 422),
        ({}, 422),
    ],
)
def test_bad_event_batches_get_4xx_and_count_nothing(api, app, database, body, status):
    r = api.post("/api/v1/events", json=body)
    assert r.status_code == status, r.text
    app.extensions["donations"].events.flush_all()
    assert total_counts(database) == {}


def test_malformed_event_bodies(api, app, database):
    assert (
        api.post("/api/v1/events", data="{nope", headers={"Content-Type": "text/plain"}).status_code
        == 400
    )
    assert (
        api.post(
            "/api/v1/events", data="x", headers={"Content-Type": "application/xml"}
        ).status_code
        == 415
    )
    app.extensions["donations"].events.flush_all()
    assert total_counts(database) == {}


def test_counts_reach_the_database_without_another_request(
    api, app, database, migrated_url, live_campaign
):
    r = api.post("/api/v1/events", json={"events": [event(served(api), type="click")]})
    assert r.json() == {"accepted": 1}
    counter = app.extensions["donations"].events
    if counter.uses_redis:  # shared counts: the documented command moves them
        out = subprocess.run(
            [sys.executable, "-m", "donations.cli", "events", "flush"],
            env={
                "DATABASE_URL": migrated_url,
                "REDIS_URL": app.extensions["donations"].settings.redis_url,
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert out.returncode == 0, out.stderr
    wait_for(lambda: total_counts(database).get("click") == 1, timeout=10)


def test_with_redis_down_events_are_still_counted(database):
    from donations.appeals.events import EventCounter

    counter = EventCounter(database, "redis://127.0.0.1:9/0")  # nothing listens there
    counter.add([("2026-11-28", "c", "v", "epic", "a", "click")] * 3)
    assert counter.pending() == 3  # the documented fallback: this process's memory
    counter.flush_all()
    assert total_counts(database) == {"click": 3}
    counter.close()


def test_the_ticker_counts_gifts_to_the_campaign_less_refunds(api, database, live_campaign):
    from datetime import datetime

    from donations.appeals.snapshot import SnapshotStore
    from donations.checkout.models import Contribution
    from donations.ledger import accounts as a
    from donations.ledger import journal, postings

    def gift(cid, campaign, amount, covered, currency="usd"):
        s.add(
            Contribution(
                id=cid,
                status="succeeded",
                frequency="one_off",
                currency=currency,
                amount=amount,
                fee_covered=covered,
                total=amount + covered,
                campaign=campaign,
            )
        )
        s.flush()
        journal.post(
            s,
            key=f"payment:ch_{cid}",
            kind=a.PAYMENT_ONE_OFF,
            currency=currency,
            occurred_at=datetime(2026, 11, 1),
            stripe_object_id=f"ch_{cid}",
            contribution_id=cid,
            lines=postings.payment(
                amount + covered,
                amount,
                covered,
                currency=currency,
                settled=amount + covered,
                settlement_currency=currency,
                recurring=False,
            ),
        )

    with database.transaction() as s:
        gift("c1", "year-end-2020", 2500, 106)  # the covered fee is not part of what was raised
        gift("c2", "year-end-2020", 1000, 0)
        gift("c3", "another-campaign", 9999, 0)
        gift("c4", "year-end-2020", 700, 0, currency="eur")  # not the goal's currency
        journal.post(
            s,
            key="refund:re_1",
            kind=a.REFUND,
            currency="usd",
            occurred_at=datetime(2026, 11, 2),
            stripe_object_id="re_1",
            contribution_id="c2",
            lines=postings.returned(
                a.REFUNDS, 400, currency="usd", settled=400, at_rate=400, settlement_currency="usd"
            ),
        )
    store = SnapshotStore(database)
    assert store.current().raised["year-end-2020"] == 2500 + 1000 - 400
