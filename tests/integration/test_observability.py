"""Operations: /metrics (histograms, webhook and event counters, snapshot age, access control),
JSON logs with the request id, /readyz, and a graceful SIGTERM of `donations serve`."""

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from donations import migrate, observability
from donations.app import create_app
from donations.appeals.models import EventCount
from donations.db import Database
from tests.conftest import free_port, make_event, post_event, sign, wait_for


def scrape(api) -> dict[tuple[str, frozenset], float]:
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def event(**changes):
    return {
        "type": "impression",
        "impression": "imp_1",
        "campaign": "year-end-2020",
        "variant": "control",
        "placement": "epic",
        "article": "putin-congratulates-biden",
        **changes,
    }


HIST = "donations_http_request_duration_seconds_count"


def test_request_histogram_is_labelled_by_endpoint_not_path(api):
    before = scrape(api)
    assert api.get("/healthz").status_code == 200
    assert api.get("/api/v1/appeal", params={"article": "a-1", "section": "news"}).ok  # fast path
    assert api.get("/api/v1/appeal", params={"views": "many"}).status_code == 422  # via Flask
    assert api.get("/api/v1/contributions/ctb_nope").status_code == 404
    assert api.get("/no/such/page/123?email=x@example.org").status_code == 404
    after = scrape(api)

    def moved(**labels):
        return value(after, HIST, **labels) - value(before, HIST, **labels)

    assert moved(method="GET", endpoint="/healthz", status="2xx") == 1
    assert moved(method="GET", endpoint="appeal_fastpath", status="2xx") == 1
    assert moved(method="GET", endpoint="/api/v1/appeal", status="4xx") == 1
    assert moved(
        method="GET", endpoint="/api/v1/contributions/<contribution_id>", status="4xx"
    ) in (
        0,
        1,
    )
    assert moved(method="GET", endpoint="unmatched", status="4xx") >= 1
    endpoints = {dict(labels).get("endpoint") for name, labels in after if name == HIST}
    assert not any("/no/such" in (e or "") or "ctb_nope" in (e or "") for e in endpoints)
    # Buckets are there for latency quantiles.
    assert any(
        name == "donations_http_request_duration_seconds_bucket"
        and dict(labels).get("endpoint") == "appeal_fastpath"
        for name, labels in after
    )


def test_webhook_counters_and_lag_move(api):
    before = scrape(api)
    evt = make_event("customer.tax_id.created", {"id": "txi_obs"})
    assert post_event(api, evt).status_code == 200
    assert post_event(api, evt).json()["outcome"] == "duplicate"
    # a type the service books: a payout Stripe doesn't know, stored, then booked ("ignored")
    booked = make_event("payout.paid", {"id": "po_obs_unknown", "object": "payout"})
    booked["created"] = int(time.time()) - 30
    assert post_event(api, booked).json()["outcome"] == "queued"
    payload = json.dumps(make_event("customer.tax_id.created", {"id": "txi_2"}))
    bad = api.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, "whsec_x")},
    )
    assert bad.status_code == 400
    after = scrape(api)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    kind = "customer.tax_id.created"
    assert moved("donations_webhook_events_total", type=kind, outcome="received") == 1
    assert moved("donations_webhook_events_total", type=kind, outcome="duplicate") == 1
    assert moved("donations_webhook_events_total", type="payout.paid", outcome="booked") == 1
    assert moved("donations_webhook_failures_total", reason="signature") == 1
    assert moved("donations_webhook_lag_seconds_count") >= 1
    assert moved("donations_webhook_lag_seconds_sum") >= 29
    assert value(after, "donations_webhook_inbox_pending") == 0
    assert value(after, "donations_webhook_inbox_dead") == 0


def test_events_counted_by_type(api, app, database):
    from donations.admin.tokens import create_token
    from donations.appeals.throttle import event_limiter
    from tests.integration.test_funnel_integrity import CAMPAIGN

    event_limiter(app).reset()
    with database.transaction() as s:
        token = create_token(s, "metrics")
    made = api.post(
        "/api/v1/admin/campaigns", json=CAMPAIGN, headers={"Authorization": f"Bearer {token}"}
    )
    assert made.status_code == 201, made.text
    shown = []
    for article in ("a-1", "a-2"):  # one impression per answer's token
        appeal = api.get("/api/v1/appeal", params={"article": article}).json()["appeal"]
        fields = {k: appeal[k] for k in ("impression", "campaign", "variant", "placement")}
        shown.append({**fields, "article": article})
    batch = [
        {"type": "impression", **shown[0]},
        {"type": "impression", **shown[1]},
        {"type": "click", **shown[0]},
    ]
    before = scrape(api)
    r = api.post("/api/v1/events", json={"events": batch})
    assert r.status_code == 202 and r.json() == {"accepted": 3}
    after = scrape(api)
    name = "donations_appeal_events_counted_total"
    assert value(after, name, type="impression") - value(before, name, type="impression") == 2
    assert value(after, name, type="click") - value(before, name, type="click") == 1


def test_snapshot_age_and_outbox_are_sane_numbers(api):
    assert api.get("/api/v1/appeal", params={"article": "a-2"}).ok
    samples = scrape(api)
    age = samples[("donations_appeal_snapshot_age_seconds", frozenset())]
    assert 0 <= age < 120
    assert samples[("donations_mail_outbox_pending", frozenset())] >= 0
    built = samples[("donations_appeal_snapshot_built_timestamp_seconds", frozenset())]
    assert abs(time.time() - built - age) < 120
    assert any(name == "donations_info" for name, _ in samples)


def test_metrics_are_in_the_openapi_document(api):
    doc = api.get("/openapi.json").json()
    op = doc["paths"]["/metrics"]["get"]
    assert "text/plain" in op["responses"]["200"]["content"]
    assert "403" in op["responses"]


def test_metrics_access_without_a_token(app):
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    public = client.get("/metrics", environ_base={"REMOTE_ADDR": "8.8.8.8"})
    assert public.status_code == 403
    assert public.content_type == "application/problem+json"
    # Through a proxy (a load balancer on the private network): not for the public.
    proxied = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
        headers={"X-Forwarded-For": "1.1.1.1"},
    )
    assert proxied.status_code == 403


def test_metrics_access_with_a_token(settings, database):
    app = create_app(settings.with_overrides(metrics_token="s3cret-metrics"), database=database)
    client = app.test_client()
    local = {"REMOTE_ADDR": "127.0.0.1"}
    assert client.get("/metrics", environ_base=local).status_code == 403
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/metrics", environ_base=local, headers=wrong).status_code == 403
    right = {"Authorization": "Bearer s3cret-metrics"}
    r = client.get("/metrics", environ_base={"REMOTE_ADDR": "8.8.8.8"}, headers=right)
    assert r.status_code == 200 and "donations_info" in r.text
    app.extensions["donations"].mail.close()


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = observability.make_handler("json", stream)
    logger = logging.getLogger("donations")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_json_log_lines_carry_the_request_id(api, json_log):
    rid = "obs-test-request-0001"
    evt = make_event("customer.tax_id.created", {"id": "txi_log"})
    payload = json.dumps(evt)
    r = api.post(
        "/webhooks/stripe?token=hidden",
        data=payload,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(payload),
            "X-Request-ID": rid,
        },
    )
    assert r.status_code == 200 and r.headers["X-Request-ID"] == rid
    fast = api.get("/api/v1/appeal", params={"article": "a-3"}, headers={"X-Request-ID": rid})
    assert fast.headers["X-Request-ID"] == rid
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [x for x in lines if x["logger"] == "donations.access"]
    hook = next(x for x in access if x["path"] == "/webhooks/stripe")
    assert hook["request_id"] == rid
    assert hook["method"] == "POST" and hook["status"] == 200 and hook["duration_ms"] >= 0
    assert hook["endpoint"] == "/webhooks/stripe"
    assert "timestamp" in hook and hook["level"] == "INFO"
    # The fast path's answers are logged at DEBUG only (an access line costs more than they do).
    assert not any(x["endpoint"] == "appeal_fastpath" for x in access)
    logging.getLogger("donations.access").setLevel(logging.DEBUG)
    try:
        api.get("/api/v1/appeal", params={"article": "a-4"}, headers={"X-Request-ID": rid})
    finally:
        logging.getLogger("donations.access").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    appeal = next(x for x in lines if x.get("endpoint") == "appeal_fastpath")
    assert appeal["request_id"] == rid and appeal["path"] == "/api/v1/appeal"
    assert appeal["level"] == "DEBUG"
    # A line logged by the view inside the request carries the same id.
    view = next(x for x in lines if x["logger"] == "donations.webhooks.views")
    assert view["request_id"] == rid and evt["id"] in view["message"]
    assert "hidden" not in json_log.getvalue()  # never a query string


def test_emails_are_not_logged(api, json_log):
    r = api.get("/no/such/donor@example.org")
    assert r.status_code == 404
    text = json_log.getvalue()
    assert "donor@example.org" not in text
    assert "[redacted]" in text


def test_readyz_reports_the_database_and_redis(api, settings):
    r = api.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["database"] == "ok"
    if settings.redis_url:
        assert body["redis"] == "ok" and body["status"] == "ok"
    else:
        assert "redis" not in body


def test_readyz_is_degraded_but_ready_when_only_redis_is_down(settings, database):
    down = settings.with_overrides(redis_url="redis://127.0.0.1:1/0")
    app = create_app(down, database=database)
    r = app.test_client().get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "degraded", "database": "ok", "redis": "unreachable"}
    app.extensions["donations"].mail.close()


# --- graceful shutdown of `donations serve` ---------------------------------------------------
def descendants(pid: int) -> list[int]:
    """Every process below pid (granian runs in its own session: a failed test kills them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_sigterm_flushes_event_counts_of_every_worker(tmp_path):
    from donations.appeals.campaigns import save_campaign
    from donations.appeals.documents import CampaignDocument
    from donations.appeals.service import impression_tokens
    from donations.settings import DEV_SECRET_KEY
    from tests.integration.test_funnel_integrity import CAMPAIGN

    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    migrate.upgrade(url)
    db = Database(url)
    with db.transaction() as s:
        save_campaign(s, CampaignDocument().load(CAMPAIGN), actor="test")
    db.dispose()
    tokens = impression_tokens(DEV_SECRET_KEY)  # the server runs on the development key
    port = free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL")
    }
    env.update(
        DATABASE_URL=url,
        DONATIONS_ENV="test",
        DONATIONS_INSTANCE_PATH=str(tmp_path),
        TMPDIR=str(scratch),
    )
    cmd = [sys.executable, "-c", "from donations.cli import main; main()"]
    server = subprocess.Popen(
        [*cmd, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.extend(line.decode() for line in server.stdout), daemon=True
    )
    reader.start()
    try:
        # Every worker up (granian does not stop a worker still starting when asked to stop).
        wait_for(lambda: sum("Started worker" in line for line in output) == 2, timeout=60)
        assert requests.get(base + "/healthz", timeout=5).ok
        assert list(scratch.iterdir()), "no multiprocess metrics directory"
        sent = 0
        with requests.Session() as http:
            # views of 50 articles (one per token; one client counts at most 60 a minute)
            for i in range(10):
                batch = [
                    {
                        "type": "view",
                        "campaign": "spring",
                        "variant": "control",
                        "placement": "epic",
                        "article": f"a-{i}-{k}",
                        "impression": tokens.issue(
                            "spring", "control", "epic", f"a-{i}-{k}", now=time.time()
                        ),
                    }
                    for k in range(5)
                ]
                r = http.post(base + "/api/v1/events", json={"events": batch}, timeout=5)
                assert r.status_code == 202 and r.json() == {"accepted": 5}, r.text
                sent += 5
            # Several workers answered, and /metrics adds their samples up.
            metrics = http.get(base + "/metrics", timeout=5).text
        counted = [
            s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.name == "donations_appeal_events_counted_total" and s.labels == {"type": "view"}
        ]
        assert counted == [sent]
        # Stop at once: well inside the 2-second background flush interval.
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, "".join(output)
    finally:
        if server.poll() is None:
            for pid in [*descendants(server.pid), server.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            server.wait()
    reader.join(5)
    server.stdout.close()
    assert "Granian shutdown completed" in "".join(output)
    db = Database(url)
    try:
        with db.sessions() as s:
            stored = s.scalar(select(func.sum(EventCount.count)).where(EventCount.type == "view"))
    finally:
        db.dispose()
    assert stored == sent
    assert list(scratch.iterdir()) == []  # the metrics directory is gone
