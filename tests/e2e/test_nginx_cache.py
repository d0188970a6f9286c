"""deploy/nginx/donations.conf in front of the app: what it caches, and what it never does.

nginx (Debian's) runs as a plain foreground process under a temporary prefix, with the config
rendered from the same template a human renders with envsubst (deploy/nginx/local.py).

Time travel: the app's `max-age=60, stale-while-revalidate=60` is a constant
(donations/appeals/fastpath.py), so against the app the test only shows that a changed campaign
is *not* seen through the cache at once and that the answer's Cache-Control bounds the
staleness (120 s at most). That nginx then refreshes the entry (stale answer while one request
updates it in the background, the new answer after) is shown against a tiny upstream of the
test's own with `max-age=1`, through the very same config.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from deploy.nginx.local import LocalNginx, nginx_binary
from donations.admin.tokens import create_token
from tests.conftest import free_port
from tests.integration.test_appeal_api import CAMPAIGN

pytestmark = pytest.mark.nginx

APPEAL = "/api/v1/appeal"
_articles = itertools.count()


def _nginx_or_skip() -> None:
    if nginx_binary() is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("nginx is missing: in CI the nginx tests must run (apt-get install nginx)")
    pytest.skip("nginx is not installed (apt-get install nginx); nginx tests skipped")


def _start(tmp: Path, upstream: str) -> LocalNginx:
    _nginx_or_skip()
    return LocalNginx(tmp, upstream, free_port()).start()


@pytest.fixture(scope="module")
def nginx(server: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    proxy = _start(tmp_path_factory.mktemp("nginx"), server.url.removeprefix("http://"))
    yield proxy
    proxy.stop()


@pytest.fixture
def token(database: Any) -> str:
    with database.transaction() as s:
        return create_token(s, "nginx-test")


@pytest.fixture
def admin(server: SimpleNamespace, token: str) -> Any:
    """The admin API straight at the app (not through nginx)."""

    def call(method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return requests.request(method, server.url + path, headers=headers, timeout=30, **kw)

    return call


@pytest.fixture
def campaign(admin: Any) -> dict[str, Any]:
    r = admin("POST", "/api/v1/admin/campaigns", json=CAMPAIGN)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def article() -> str:
    """An article of its own per test: the cache outlives each test's database."""
    return f"nginx-test-article-{os.getpid()}-{next(_articles)}"


def get(base: str, article: str, headers: dict[str, str] | None = None, **params: str) -> Any:
    return requests.get(
        base + APPEAL,
        params={"article": article, "section": "news", **params},
        headers=headers or {},
        timeout=30,
    )


def status(r: requests.Response) -> str | None:
    return r.headers.get("X-Cache-Status")


def test_the_rendered_config_passes_nginx_t(nginx: LocalNginx) -> None:
    nginx.check()
    conf = (nginx.prefix / "donations.conf").read_text().splitlines()
    directives = [line.split("#")[0] for line in conf]
    # The app's Cache-Control decides: nothing overrides or ignores it.
    assert not any(("proxy_ignore_headers" in d or "proxy_cache_valid" in d) for d in directives)


def test_an_appeal_is_cached_by_its_full_url(nginx, server, campaign, article) -> None:
    first = get(nginx.url, article, rid="reader-1", views="3")
    assert first.status_code == 200 and status(first) == "MISS"
    assert first.headers["Cache-Control"] == "public, max-age=60, stale-while-revalidate=60"
    assert "Origin" in first.headers["Vary"]
    second = get(nginx.url, article, rid="reader-1", views="3")
    assert second.status_code == 200 and status(second) == "HIT"
    assert second.content == first.content
    assert second.json()["appeal"]["campaign"] == "year-end-2020"

    # Another reader (rid), another query value, another Origin: entries of their own.
    other = get(nginx.url, article, rid="reader-2", views="3")
    assert status(other) == "MISS"
    assert status(get(nginx.url, article, rid="reader-2", views="3")) == "HIT"
    assert status(get(nginx.url, article, rid="reader-1", views="4")) == "MISS"
    origin = {"Origin": "https://news.example.org"}
    assert status(get(nginx.url, article, origin, rid="reader-1", views="3")) == "MISS"
    assert status(get(nginx.url, article, origin, rid="reader-1", views="3")) == "HIT"


def test_no_appeal_204_is_cached_too_and_invalid_queries_are_not(nginx, campaign, article):
    # Placement killed for this section: 204, as public and cacheable as a 200.
    none = get(nginx.url, article, section="sport")
    assert none.status_code == 204 and status(none) == "MISS"
    assert status(get(nginx.url, article, section="sport")) == "HIT"
    # 422 carries no Cache-Control: never stored, every one reaches the app.
    for _ in range(2):
        bad = get(nginx.url, article, views="many")
        assert bad.status_code == 422 and status(bad) == "MISS"


def test_debug_answers_are_never_cached(nginx, campaign, article, token) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        r = get(nginx.url, article, auth, debug="1")
        assert r.status_code == 200 and "explain" in r.json()
        assert r.headers["Cache-Control"] == "private, no-store"
        assert status(r) == "BYPASS"
    # Without a token: 401 every time, nothing stored either.
    for _ in range(2):
        assert get(nginx.url, article, debug="1").status_code == 401
    # The plain URL was not poisoned by the explanations.
    plain = get(nginx.url, article, debug="0")
    assert "explain" not in plain.json()


def test_a_changed_campaign_is_served_from_the_cache_until_max_age(
    nginx, server, admin, campaign, article
) -> None:
    before = get(nginx.url, article, rid="r")
    assert before.status_code == 200 and status(before) == "MISS"
    r = admin("PATCH", "/api/v1/admin/campaigns/year-end-2020", json={"status": "paused"})
    assert r.status_code == 200
    assert get(server.url, article, rid="r").status_code == 204  # the app knows at once
    cached = get(nginx.url, article, rid="r")
    assert cached.status_code == 200 and status(cached) == "HIT"
    assert cached.content == before.content
    # How stale it may get: max-age plus the stale-while-revalidate window, then refreshed.
    cc = dict(re.findall(r"([a-z-]+)=(\d+)", before.headers["Cache-Control"]))
    assert int(cc["max-age"]) + int(cc["stale-while-revalidate"]) <= 120
    # A URL not yet cached sees the change at once.
    assert get(nginx.url, article, rid="someone-else").status_code == 204


def test_events_pass_through_and_are_never_cached(nginx, campaign, article) -> None:
    answer = get(nginx.url, article)
    assert answer.status_code == 200, answer.text
    shown = answer.json()["appeal"]
    event = {
        "type": "impression",
        "impression": shown["impression"],  # the token of the answer nginx served
        "campaign": shown["campaign"],
        "variant": shown["variant"],
        "placement": shown["placement"],
        "article": article,
    }
    # Each post reaches the app (never a cached answer): the first counts, the second is the
    # same impression again from the same client, which the app does not count twice.
    for accepted in (1, 0):
        r = requests.post(nginx.url + "/api/v1/events", json={"events": [event]}, timeout=30)
        assert r.status_code == 202 and r.json() == {"accepted": accepted}
        assert status(r) is None
    # The app's 64 KiB body limit is nginx's too: refused before it reaches the app.
    big = requests.post(
        nginx.url + "/api/v1/events", data=b"x" * (65 * 1024), timeout=30,
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    assert big.status_code == 413


def test_admin_and_account_pages_pass_through_uncached(nginx, admin, token, campaign) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    listed = requests.get(nginx.url + "/api/v1/admin/campaigns", headers=auth, timeout=30)
    assert listed.status_code == 200 and status(listed) is None
    assert [c["id"] for c in listed.json()["campaigns"]] == ["year-end-2020"]
    r = admin("POST", "/api/v1/admin/campaigns", json={**CAMPAIGN, "id": "second"})
    assert r.status_code == 201
    again = requests.get(nginx.url + "/api/v1/admin/campaigns", headers=auth, timeout=30)
    assert sorted(c["id"] for c in again.json()["campaigns"]) == ["second", "year-end-2020"]
    anonymous = requests.get(nginx.url + "/api/v1/admin/campaigns", timeout=30)
    assert anonymous.status_code == 401 and status(anonymous) is None
    for path in ("/admin/login", "/account/login", "/healthz"):
        r = requests.get(nginx.url + path, timeout=30, allow_redirects=False)
        assert r.status_code < 500 and status(r) is None, path
    hook = requests.post(nginx.url + "/webhooks/stripe", data=b"{}", timeout=30)
    assert 400 <= hook.status_code < 500 and status(hook) is None  # unsigned: refused, by the app


def test_javascript_and_json_are_gzipped(nginx) -> None:
    r = requests.get(nginx.url + "/widget.js", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 200 and r.headers.get("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in r.headers.get("Vary", "")


# --- the config's cache mechanics, against an upstream of the test's own (max-age=1) -------------
@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """An upstream that counts what reaches it and says what to cache in its query."""
    state = SimpleNamespace(hits=0, version="v1", seen=[])
    lock = threading.Lock()

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        with lock:
            state.hits += 1
            state.seen.append(dict(request.headers))
        if request.args.get("slow"):
            time.sleep(float(request.args["slow"]))
        response = Response(f"{state.version}:{request.full_path}", mimetype="text/plain")
        response.headers["Cache-Control"] = request.args.get(
            "cc", "public, max-age=1, stale-while-revalidate=30"
        )
        if request.args.get("cookie"):
            response.set_cookie("s", "1")
        return response

    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    proxy = _start(tmp_path_factory.mktemp("nginx-stub"), f"127.0.0.1:{port}")
    state.url = proxy.url
    yield state
    proxy.stop()
    httpd.shutdown()


def stub_get(stub: SimpleNamespace, query: str, **kw: Any) -> requests.Response:
    return requests.get(f"{stub.url}{APPEAL}?{query}", timeout=30, **kw)


def test_an_expired_entry_is_served_stale_while_one_request_refreshes_it(stub) -> None:
    stub.version = "v1"
    assert status(stub_get(stub, "a=1")) == "MISS"
    hit = stub_get(stub, "a=1")
    assert status(hit) == "HIT" and hit.text.startswith("v1:")
    stub.version = "v2"
    # Past max-age=1 (nginx counts whole seconds: up to 2 s), inside stale-while-revalidate.
    time.sleep(2.05)
    limit = time.monotonic() + 1.5
    stale = stub_get(stub, "a=1")
    while status(stale) == "HIT" and time.monotonic() < limit:
        time.sleep(0.1)
        stale = stub_get(stub, "a=1")
    assert status(stale) in ("STALE", "UPDATING") and stale.text.startswith("v1:")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the background update lands
        fresh = stub_get(stub, "a=1")
        if fresh.text.startswith("v2:"):
            break
        time.sleep(0.05)
    assert fresh.text.startswith("v2:") and status(fresh) == "HIT"


def test_private_no_store_and_cookies_are_not_stored(stub) -> None:
    for query in ("cc=private,no-store", "cc=no-cache", "cookie=1", "cc=public,max-age=0"):
        before = stub.hits
        for _ in range(2):
            assert status(stub_get(stub, query)) in ("MISS", "EXPIRED")
        assert stub.hits == before + 2, query


def test_simultaneous_misses_cost_the_upstream_one_request(stub) -> None:
    before = stub.hits
    results: list[requests.Response] = []

    def one() -> None:
        results.append(stub_get(stub, "lock=1&slow=0.5"))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({r.text for r in results}) == 1
    assert stub.hits == before + 1


def test_the_client_address_and_scheme_are_forwarded(stub) -> None:
    stub_get(stub, "fwd=1", headers={"X-Forwarded-For": "203.0.113.9"})
    headers = stub.seen[-1]
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"  # the app takes the last one
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Real-Ip"] == "127.0.0.1"
    assert "Authorization" not in headers


# --- the answers every reader of an article shares (GET /api/v1/appeals) -----------------------
def version_via(base: str) -> str:
    r = requests.get(base + "/api/v1/appeals/version", timeout=30)
    assert r.status_code == 200
    return str(r.json()["version"])


def candidates_via(base: str, article: str, v: str, **headers: str) -> requests.Response:
    return requests.get(
        base + "/api/v1/appeals",
        params={"article": article, "placement": "epic", "section": "news", "v": v},
        headers=headers,
        timeout=30,
    )


def test_the_shared_answer_is_cached_once_for_every_reader_with_headers_a_cdn_can_trust(
    nginx, server, campaign, article
) -> None:
    v = version_via(server.url)
    first = candidates_via(nginx.url, article, v)
    assert first.status_code == 200 and status(first) == "MISS"
    cache_control = first.headers["Cache-Control"]
    assert "public" in cache_control and "stale-while-revalidate=" in cache_control
    s_maxage = int(re.search(r"s-maxage=(\d+)", cache_control).group(1))
    assert s_maxage >= 60
    assert "Set-Cookie" not in first.headers
    # Vary: nothing from the app here (no country header, not several origins); nginx's gzip
    # adds Accept-Encoding, as it must
    assert candidates_via(server.url, article, v).headers.get("Vary") is None
    assert first.headers.get("Vary") in (None, "Accept-Encoding")
    etag = first.headers["ETag"]
    assert [c["campaign"] for c in first.json()["candidates"]] == ["year-end-2020"]
    # every later reader of the article is answered by nginx
    for _ in range(3):
        again = candidates_via(nginx.url, article, v)
        assert status(again) == "HIT" and again.content == first.content
    # a browser that has it already gets a 304, from nginx and from the app alike
    assert candidates_via(nginx.url, article, v, **{"If-None-Match": etag}).status_code == 304
    assert candidates_via(server.url, article, v, **{"If-None-Match": etag}).status_code == 304


def test_an_editors_change_bypasses_the_cached_answers_at_once(
    nginx, server, admin, campaign, article
) -> None:
    before = version_via(server.url)
    old = candidates_via(nginx.url, article, before)
    assert status(candidates_via(nginx.url, article, before)) == "HIT"
    heading = old.json()["candidates"][0]["variants"][0]["heading"]

    changed = {**CAMPAIGN["variants"][0], "heading": "A brand new heading"}
    r = admin("PATCH", "/api/v1/admin/campaigns/year-end-2020", json={"variants": [changed]})
    assert r.status_code == 200, r.text
    after = wait_for_version(server.url, before)
    fresh = candidates_via(nginx.url, article, after)  # the URL the widget now asks
    assert status(fresh) == "MISS"
    assert fresh.json()["candidates"][0]["variants"][0]["heading"] == "A brand new heading"
    assert heading != "A brand new heading"


def wait_for_version(base: str, old: str, timeout: float = 10.0) -> str:
    """The app rebuilds its snapshot within seconds of a change (a version row, read at most
    every 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = version_via(base)
        if now != old:
            return now
        time.sleep(0.2)
    raise AssertionError("the campaigns' version did not move")
