"""The pure parts of donations.observability: access rules, scrubbing, log format, timing."""

import io
import json
import logging
import os

import pytest

from donations import observability as o
from donations.settings import ConfigurationError, Settings

TOKEN = "metrics-token-1"


@pytest.mark.parametrize(
    ("addr", "auth", "forwarded", "token", "allowed"),
    [
        ("127.0.0.1", "", False, None, True),
        ("::1", "", False, None, True),
        ("10.0.0.7", "", False, None, True),
        ("172.18.0.3", "", False, None, True),  # a Docker network
        ("192.168.1.2", "", False, None, True),
        ("8.8.8.8", "", False, None, False),
        ("10.0.0.7", "", True, None, False),  # came through a proxy
        (None, "", False, None, False),
        ("not-an-ip", "", False, None, False),
        ("127.0.0.1", "", False, TOKEN, False),  # a token, once set, is always required
        ("8.8.8.8", f"Bearer {TOKEN}", True, TOKEN, True),
        ("8.8.8.8", f"bearer {TOKEN}", False, TOKEN, True),
        ("127.0.0.1", "Bearer wrong", False, TOKEN, False),
        ("127.0.0.1", f"Basic {TOKEN}", False, TOKEN, False),
    ],
)
def test_who_may_read_metrics(addr, auth, forwarded, token, allowed):
    assert o.metrics_allowed(addr, auth, forwarded, token) is allowed


@pytest.mark.parametrize(
    "secret",
    [
        "donor@example.org",
        "first.last+tag@news.example.co.uk",
        "sk_test_abc123",
        "whsec_abc123",
        "Bearer abc.def-ghi",
    ],
)
def test_secrets_and_emails_are_scrubbed(secret):
    assert secret not in o.scrub(f"something about {secret} here")


def log_through(fmt, *args, **extra):
    stream = io.StringIO()
    logger = logging.getLogger("tests.observability")
    handler = o.make_handler(fmt, stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info(*args, extra=extra or None)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_outside_a_request():
    line = json.loads(log_through("json", "sent to %s", "donor@example.org"))
    assert line["message"] == "sent to [redacted]"
    assert line["level"] == "INFO" and line["logger"] == "tests.observability"
    assert line["request_id"] is None and "timestamp" in line


def test_access_fields_are_json_fields_and_paths_are_scrubbed():
    line = json.loads(
        log_through("json", "GET", request_id="r1", path="/x/a@b.org", status=200, duration_ms=1.5)
    )
    assert (line["request_id"], line["status"], line["duration_ms"]) == ("r1", 200, 1.5)
    assert line["path"] == "/x/[redacted]"


def test_text_lines():
    assert "[None] hello" in log_through("text", "hello")


def test_log_format_setting():
    assert Settings(env="production").effective_log_format == "json"
    assert Settings(env="development").effective_log_format == "text"
    assert Settings(env="production", log_format="text").effective_log_format == "text"
    env = {"DONATIONS_ENV": "development", "LOG_FORMAT": "JSON", "METRICS_TOKEN": "t"}
    s = Settings.from_env(env)
    assert (s.log_format, s.metrics_token) == ("json", "t")
    with pytest.raises(ConfigurationError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})


def test_configure_logging_replaces_its_own_root_handler():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        o.configure_logging(Settings(env="test", log_format="json"))
        o.configure_logging(Settings(env="test", log_format="json"))
        ours = [h for h in root.handlers if getattr(h, "donations", False)]
        assert len(ours) == 1
        assert type(ours[0].formatter).__name__ == "JsonFormatter"
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(level)
    o.configure_logging(Settings(env="test"))  # test env, no LOG_FORMAT: logging left alone
    assert root.handlers == before


def count(endpoint, status, method="GET"):
    return (
        o.REGISTRY.get_sample_value(
            "donations_http_request_duration_seconds_count",
            {"method": method, "endpoint": endpoint, "status": status},
        )
        or 0
    )


def test_the_wsgi_layer_labels_by_endpoint_and_status_class():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom")
        if environ["PATH_INFO"] == "/rule":
            environ[o.ENDPOINT_KEY] = "/rule/<id>"
        start_response("204 NO CONTENT", [("X-Request-ID", "abc")])
        return [b""]

    wrapped = o.Instrumented(app, "/fast")
    before = (
        count("appeal_fastpath", "2xx"),
        count("/rule/<id>", "2xx"),
        count("unmatched", "5xx"),
    )
    for path in ("/fast", "/rule"):
        wrapped({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda *a: None)
    with pytest.raises(RuntimeError):
        wrapped({"PATH_INFO": "/boom", "REQUEST_METHOD": "BREW"}, lambda *a: None)
    assert count("appeal_fastpath", "2xx") == before[0] + 1
    assert count("/rule/<id>", "2xx") == before[1] + 1
    assert count("unmatched", "5xx", method="other") >= 1


def test_the_shared_appeal_answers_are_counted_apart_and_logged_only_at_debug(caplog):
    """GET /api/v1/appeals and its version are answered thousands of times a second: an
    INFO access line each would cost more than the answer. What Flask answers is logged."""

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/api/v1/appeals" and environ.get("QUERY_STRING") == "bad":
            environ[o.ENDPOINT_KEY] = "appeal_pages.candidates"  # Flask answered (a 422)
        start_response("200 OK", [])
        return [b""]

    wrapped = o.Instrumented(
        app,
        {
            "/api/v1/appeals": "appeals_fastpath",
            "/api/v1/appeals/version": "appeals_version_fastpath",
        },
    )
    before = count("appeals_fastpath", "2xx"), count("appeals_version_fastpath", "2xx")
    with caplog.at_level(logging.INFO, logger="donations.access"):
        for path in ("/api/v1/appeals", "/api/v1/appeals/version"):
            wrapped({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda *a: None)
        assert caplog.records == []
        wrapped(
            {"PATH_INFO": "/api/v1/appeals", "REQUEST_METHOD": "GET", "QUERY_STRING": "bad"},
            lambda *a: None,
        )
        assert [r.getMessage().split()[:2] for r in caplog.records] == [["GET", "/api/v1/appeals"]]
    assert count("appeals_fastpath", "2xx") == before[0] + 1
    assert count("appeals_version_fastpath", "2xx") == before[1] + 1


def test_events_counted_by_type():
    def value(t):
        return (
            o.REGISTRY.get_sample_value("donations_appeal_events_counted_total", {"type": t}) or 0
        )

    before = value("click"), value("view")
    o.events_counted(["click", "click", "view"])
    assert (value("click"), value("view")) == (before[0] + 2, before[1] + 1)


def test_a_killed_workers_live_gauges_are_dropped_at_scrape_time(tmp_path):
    """granian respawns a worker killed with SIGKILL; the dead one's livemin file would keep
    reporting its last snapshot time for ever."""
    import subprocess
    import sys

    from donations.observability import _forget_dead_workers

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"gauge_livemin_{gone.pid}.db"
    alive = tmp_path / f"gauge_livemin_{os.getpid()}.db"
    other = tmp_path / f"counter_{gone.pid}.db"  # counters stay: their totals still count
    for path in (dead, alive, other):
        path.write_bytes(b"")
    _forget_dead_workers(str(tmp_path))
    assert not dead.exists()
    assert alive.exists() and other.exists()
