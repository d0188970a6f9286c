"""Card-testing defence on the checkout API: rate limits (per address, per email, per
contribution, global), the minimum amount and the optional human check, all before Stripe."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import request
from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from donations.app import create_app
from donations.checkout.models import Contribution
from donations.stripe import gateway_from_settings
from tests.conftest import free_port

GOOD = {"amount": 2500, "currency": "usd", "frequency": "one_off", "email": "a@example.org"}
TOO_SMALL = {**GOOD, "amount": 99}  # below the usd minimum: 422, never reaches Stripe
NO_STRIPE = "http://127.0.0.1:9"  # nothing listens: any Stripe call would answer 502
GENEROUS = "100000/minute"


def count(database: Any) -> int:
    with database.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Contribution)) or 0)


def client_with(settings: Any, database: Any, *, stripe_down: bool = True, **limits: Any) -> Any:
    """An app of its own with tight limits (the suite's shared app has generous ones)."""
    values = {
        "checkout_limit_per_ip": GENEROUS,
        "checkout_limit_per_email": GENEROUS,
        "checkout_limit_per_contribution": GENEROUS,
        "checkout_limit_global": GENEROUS,
        "redis_url": None,
        **limits,
    }
    if stripe_down:
        values["stripe_api_base"] = NO_STRIPE
    tight = settings.with_overrides(**values)
    app = create_app(tight, database=database, gateway=gateway_from_settings(tight))
    return app.test_client()


def post(client: Any, body: dict[str, Any], ip: str = "198.51.100.1", path: str = "") -> Any:
    return client.post(f"/api/v1/contributions{path}", json=body, environ_base={"REMOTE_ADDR": ip})


def assert_429(r: Any) -> None:
    assert r.status_code == 429
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json["status"] == 429
    assert int(r.headers["Retry-After"]) >= 1


# --- limits --------------------------------------------------------------------------------------
def test_per_address_limit_answers_429_problem_with_retry_after(settings, database):
    client = client_with(settings, database, checkout_limit_per_ip="3/minute")
    for _ in range(3):
        assert post(client, TOO_SMALL).status_code == 422
    r = post(client, TOO_SMALL)
    assert_429(r)
    assert "X-RateLimit-Limit" in r.headers
    # Another address has its own budget.
    assert post(client, TOO_SMALL, ip="198.51.100.2").status_code == 422


def test_confirm_and_subscribe_share_the_address_budget(settings, database):
    client = client_with(settings, database, checkout_limit_per_ip="2/minute")
    cid = "ctb_" + "0" * 24
    pm = {"payment_method": "pm_card_visa"}
    assert post(client, pm, path=f"/{cid}/confirm").status_code == 404
    assert post(client, {}, path=f"/{cid}/subscribe").status_code == 404
    assert_429(post(client, TOO_SMALL))
    assert_429(post(client, pm, path=f"/{cid}/confirm"))
    # Reading a contribution (the thank-you page polls) is not limited.
    assert client.get(f"/api/v1/contributions/{cid}").status_code == 404


def test_per_email_limit_counts_the_normalized_address_from_any_ip(settings, database):
    client = client_with(settings, database, checkout_limit_per_email="2/hour")
    assert (
        post(client, {**TOO_SMALL, "email": "Reader@Example.org"}, ip="1.1.1.1").status_code == 422
    )
    assert (
        post(client, {**TOO_SMALL, "email": " reader@example.org"}, ip="2.2.2.2").status_code == 422
    )
    assert_429(post(client, {**TOO_SMALL, "email": "READER@example.org"}, ip="3.3.3.3"))
    assert (
        post(client, {**TOO_SMALL, "email": "other@example.org"}, ip="3.3.3.3").status_code == 422
    )


def test_the_email_key_is_a_hash_so_redis_never_holds_the_address(settings, database):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    import redis

    client = client_with(settings, database, redis_url=url, checkout_limit_per_email="50/hour")
    post(client, {**TOO_SMALL, "email": "secret-donor@example.org"})
    r = redis.Redis.from_url(url)
    keys = [k.decode() for k in r.scan_iter(match="*donations-checkout*")]
    assert keys, "the limiter counts in Redis"
    assert not any("example.org" in k or "secret-donor" in k for k in keys)
    assert not any(b"secret-donor" in (r.dump(k) or b"") for k in keys)
    r.close()


def test_confirm_is_limited_per_contribution_whatever_the_address(settings, database):
    client = client_with(settings, database, checkout_limit_per_contribution="2/hour")
    cid = "ctb_" + "1" * 24
    pm = {"payment_method": "pm_card_visa"}
    for ip in ("10.0.0.1", "10.0.0.2"):
        assert post(client, pm, ip=ip, path=f"/{cid}/confirm").status_code == 404
    assert_429(post(client, pm, ip="10.0.0.3", path=f"/{cid}/confirm"))
    other = "ctb_" + "2" * 24
    assert post(client, pm, ip="10.0.0.3", path=f"/{other}/confirm").status_code == 404


def test_the_global_ceiling_counts_valid_requests_from_every_address(settings, database):
    client = client_with(settings, database, checkout_limit_global="3/minute")
    for i in range(3):  # valid, so they count (Stripe is down here: 502)
        assert post(client, GOOD, ip=f"203.0.113.{i}").status_code == 502
    assert_429(post(client, GOOD, ip="203.0.113.99"))
    assert_429(post(client, TOO_SMALL, ip="203.0.113.98"))  # refused before validation


def test_invalid_requests_never_use_up_the_global_ceiling(settings, database):
    """320 invalid requests (422) from many addresses used to leave a fresh address's valid
    gift a 429: only requests that pass validation count."""
    client = client_with(settings, database, checkout_limit_global="5/minute")
    cid = "ctb_" + "3" * 24
    for i in range(320):
        ip = f"198.18.{i // 250}.{i % 250}"
        match i % 4:
            case 0:
                assert post(client, TOO_SMALL, ip=ip).status_code == 422
            case 1:
                assert post(client, {**GOOD, "frequency": "weekly"}, ip=ip).status_code == 422
            case 2:  # a well-formed id nobody has
                r = post(client, {"payment_method": "pm_card_visa"}, ip=ip, path=f"/{cid}/confirm")
                assert r.status_code == 404
            case _:
                r = client.post(
                    "/api/v1/contributions",
                    data="{",
                    content_type="application/json",
                    environ_base={"REMOTE_ADDR": ip},
                )
                assert r.status_code == 400
    r = post(client, GOOD, ip="192.0.2.200")
    assert r.status_code == 502, r.json  # it reached (an unreachable) Stripe: not 429
    assert count(database) == 0


def test_only_refusals_carry_retry_after(settings, database):
    """Retry-After means "come back later": on 429 and 503 only, not on a 201 or a 422."""
    client = client_with(settings, database, stripe_down=False, checkout_limit_per_ip="3/hour")
    created = post(client, GOOD)
    assert created.status_code == 201, created.json
    invalid = post(client, TOO_SMALL)
    assert invalid.status_code == 422
    for r in (created, invalid):
        assert "Retry-After" not in r.headers
        assert "X-RateLimit-Limit" in r.headers  # the limit's own headers stay
    post(client, TOO_SMALL)
    assert_429(post(client, TOO_SMALL))


def test_a_redis_outage_does_not_take_checkout_down(settings, database):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client = client_with(settings, database, redis_url=dead, checkout_limit_per_ip="3/minute")
    answers = [post(client, TOO_SMALL).status_code for _ in range(6)]
    assert 500 not in answers and 503 not in answers
    assert answers[0] == 422
    # Counting went on in process memory: the limit still holds.
    assert answers[-1] == 429


# --- the client's real address behind proxies ----------------------------------------------------


def test_trusted_proxies_give_the_real_client_address(settings, database):
    proxied = settings.with_overrides(
        trusted_proxies=1, redis_url=None, checkout_limit_per_ip="2/minute"
    )
    app = create_app(proxied, database=database)
    app.add_url_rule("/_ip", "ip_echo", lambda: request.remote_addr or "")
    client = app.test_client()
    hop = {"REMOTE_ADDR": "10.0.0.9"}  # the proxy
    r = client.get("/_ip", headers={"X-Forwarded-For": "192.0.2.7"}, environ_base=hop)
    assert r.text == "192.0.2.7"
    # Only the trusted hop is believed: a client-supplied first entry is ignored.
    r = client.get("/_ip", headers={"X-Forwarded-For": "6.6.6.6, 192.0.2.8"}, environ_base=hop)
    assert r.text == "192.0.2.8"
    # So limits count per reader, not per proxy.
    for _ in range(2):
        assert (
            client.post(
                "/api/v1/contributions",
                json=TOO_SMALL,
                headers={"X-Forwarded-For": "192.0.2.7"},
                environ_base=hop,
            ).status_code
            == 422
        )
    r = client.post(
        "/api/v1/contributions",
        json=TOO_SMALL,
        headers={"X-Forwarded-For": "192.0.2.7"},
        environ_base=hop,
    )
    assert r.status_code == 429
    r = client.post(
        "/api/v1/contributions",
        json=TOO_SMALL,
        headers={"X-Forwarded-For": "192.0.2.99"},
        environ_base=hop,
    )
    assert r.status_code == 422


def test_without_trusted_proxies_forwarded_headers_are_ignored(settings, database):
    app = create_app(settings.with_overrides(redis_url=None), database=database)
    app.add_url_rule("/_ip", "ip_echo", lambda: request.remote_addr or "")
    r = app.test_client().get(
        "/_ip", headers={"X-Forwarded-For": "192.0.2.7"}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert r.text == "10.0.0.9"


# --- the minimum amount --------------------------------------------------------------------------
def test_the_minimum_amount_is_refused_before_any_stripe_call(settings, database):
    client = client_with(settings, database)  # Stripe unreachable: a call would answer 502
    r = post(client, TOO_SMALL)
    assert r.status_code == 422
    assert "amount" in r.json["errors"]
    assert count(database) == 0
    # And the same request at the minimum does reach Stripe (here: unreachable → 502).
    minimum = settings.currencies["usd"].minimum
    assert post(client, {**GOOD, "amount": minimum}).status_code == 502


# --- the optional human check --------------------------------------------------------------------
class FakeVerifier:
    """A siteverify endpoint on loopback: token "human" passes, "bot" fails, "slow" hangs."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/siteverify"
        self._server = make_server("127.0.0.1", self.port, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        form = dict(req.form)
        self.calls.append(form)
        if form.get("response") == "slow":
            time.sleep(2)
        ok = form.get("secret") == "captcha-secret" and form.get("response") == "human"
        body = {"success": ok} if ok else {"success": False, "error-codes": ["invalid-input"]}
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def __enter__(self) -> FakeVerifier:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()


@pytest.fixture
def verifier() -> Iterator[FakeVerifier]:
    with FakeVerifier() as fake:
        yield fake


def captcha_client(settings: Any, database: Any, url: str, *, stripe_down: bool = False) -> Any:
    return client_with(
        settings,
        database,
        stripe_down=stripe_down,
        captcha_provider="turnstile",
        captcha_site_key="site-key",
        captcha_secret_key="captcha-secret",
        captcha_verify_url=url,
        captcha_timeout=0.5,
    )


def test_human_check_passes_then_stripe_is_called(settings, database, verifier):
    client = captcha_client(settings, database, verifier.url)
    r = post(client, {**GOOD, "captcha_token": "human"}, ip="192.0.2.50")
    assert r.status_code == 201, r.json
    assert count(database) == 1
    assert verifier.calls[-1] == {
        "secret": "captcha-secret",
        "response": "human",
        "remoteip": "192.0.2.50",
    }


@pytest.mark.parametrize("token", [None, "", "bot"])
def test_a_failed_human_check_is_422_naming_the_field_before_stripe(
    settings, database, verifier, token
):
    client = captcha_client(settings, database, verifier.url, stripe_down=True)
    body = {**GOOD} if token is None else {**GOOD, "captcha_token": token}
    r = post(client, body)
    assert r.status_code == 422
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "captcha_token" in r.json["errors"]
    assert count(database) == 0


def test_an_unreachable_or_slow_verifier_is_503_with_retry_after(settings, database, verifier):
    for url, token in ((verifier.url, "slow"), (f"http://127.0.0.1:{free_port()}/x", "human")):
        client = captcha_client(settings, database, url, stripe_down=True)
        started = time.monotonic()
        r = post(client, {**GOOD, "captcha_token": token})
        assert r.status_code == 503
        assert r.headers["Content-Type"] == "application/problem+json"
        assert int(r.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 1.9  # the short timeout, not the verifier's 2 s
        assert count(database) == 0


def test_the_contribute_page_renders_the_widget_and_its_csp_allows_it(settings, database):
    client = captcha_client(settings, database, "http://127.0.0.1:9/x")
    r = client.get("/contribute")
    html = r.text
    assert 'class="cf-turnstile"' in html and 'data-sitekey="site-key"' in html
    assert "https://challenges.cloudflare.com/turnstile/v0/api.js" in html
    assert '"captcha": "turnstile"' in html
    csp = r.headers["Content-Security-Policy"]
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    frame_src = next(d for d in csp.split("; ") if d.startswith("frame-src"))
    assert "https://challenges.cloudflare.com" in script_src
    assert "https://challenges.cloudflare.com" in frame_src
    assert "captcha-secret" not in html


def test_the_openapi_document_describes_captcha_token(app):
    spec = app.test_client().get("/openapi.json").json
    schemas = spec["components"]["schemas"]
    create = next(v for k, v in schemas.items() if k.startswith("ContributionCreate"))
    assert "captcha_token" in create["properties"]
    assert "captcha_token" not in create.get("required", [])
