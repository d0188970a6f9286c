"""Security headers, CORS allow-list, body size limits and what the logs must never hold."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from donations.app import create_app
from donations.settings import DEV_STRIPE_SECRET_KEY
from tests.conftest import OLD_WEBHOOK_SECRET, STRIPE_SECRET, WEBHOOK_SECRET, wait_for
from tests.integration import test_account as account
from tests.integration import test_admin_access as admin

NEWSROOM = "https://news.example"
ELSEWHERE = "https://evil.example"
GOOD = {"amount": 2500, "currency": "usd", "frequency": "one_off", "email": "a@example.org"}


@pytest.fixture
def client(settings: Any, database: Any) -> Any:
    app = create_app(
        settings.with_overrides(allowed_origins=(NEWSROOM,), redis_url=None), database=database
    )
    return app.test_client()


def directives(csp: str) -> dict[str, str]:
    return {d.split(" ", 1)[0]: d for d in csp.split("; ")}


# --- headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/contribute", "/contribute/thank-you", "/demo/article", "/account", "/admin/login"]
)
def test_html_pages_carry_a_strict_csp(client, settings, path):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Referrer-Policy" in r.headers
    assert "Strict-Transport-Security" not in r.headers  # plain HTTP here
    csp = directives(r.headers["Content-Security-Policy"])
    assert csp["default-src"] == "default-src 'self'"
    assert csp["object-src"] == "object-src 'none'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["base-uri"] == "base-uri 'self'"
    assert csp["form-action"] == "form-action 'self'"
    assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in r.headers["Content-Security-Policy"]
    stripe_js = re.match(r"https?://[^/]+", settings.stripe_js_url).group(0)
    assert stripe_js in csp["script-src"]
    assert stripe_js in csp["frame-src"]
    assert r.headers["X-Frame-Options"] == "DENY"
    # No inline script or handler left for the CSP to block (JSON data blocks do not run).
    for tag in re.findall(r"<script\b[^>]*>", r.text):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+=", r.text)
    assert "<style" not in r.text and 'style="' not in r.text


def test_stricter_referrer_policies_of_pages_are_kept(client):
    assert client.get("/account").headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/contribute").headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_the_embed_may_be_framed_by_the_newsrooms_only(client):
    r = client.get("/embed/appeal?article=x")
    assert r.status_code == 200
    csp = directives(r.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == f"frame-ancestors 'self' {NEWSROOM}"
    assert "X-Frame-Options" not in r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_json_answers_get_nosniff_and_no_csp(client):
    for r in (
        client.get("/api/v1/appeal?article=x"),  # the fast path, before Flask
        client.get("/healthz"),
        client.post("/api/v1/contributions", json={}),
    ):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in r.headers


def test_the_widget_script_keeps_cors_star(client):
    with client.get("/widget.js", headers={"Origin": ELSEWHERE}) as r:
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_over_https(settings, database, client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    public = create_app(
        settings.with_overrides(public_base_url="https://give.example", redis_url=None),
        database=database,
    ).test_client()
    assert (
        public.get("/healthz").headers["Strict-Transport-Security"]
        == "max-age=31536000; includeSubDomains"
    )
    proxied = create_app(
        settings.with_overrides(trusted_proxies=1, redis_url=None), database=database
    ).test_client()
    r = proxied.get(
        "/healthz", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}
    )
    assert "Strict-Transport-Security" in r.headers
    # Without a trusted proxy the header is the client's word: no HSTS from it.
    r = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in r.headers


def test_swagger_ui_still_works_under_its_own_policy(client):
    r = client.get("/docs/")
    assert r.status_code == 200
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


# --- CORS ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/appeal?article=x"),
        ("OPTIONS", "/api/v1/events"),
        ("OPTIONS", "/api/v1/contributions"),
    ],
)
def test_cors_allows_listed_newsroom_origins_only(client, method, path):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    headers = preflight if method == "OPTIONS" else {}
    ok = client.open(path, method=method, headers={"Origin": NEWSROOM, **headers})
    assert ok.headers.get("Access-Control-Allow-Origin") == NEWSROOM
    no = client.open(path, method=method, headers={"Origin": ELSEWHERE, **headers})
    assert "Access-Control-Allow-Origin" not in no.headers


def test_cors_on_the_contribution_post_itself(client):
    ok = client.post("/api/v1/contributions", json={}, headers={"Origin": NEWSROOM})
    assert ok.headers.get("Access-Control-Allow-Origin") == NEWSROOM
    no = client.post("/api/v1/contributions", json={}, headers={"Origin": ELSEWHERE})
    assert "Access-Control-Allow-Origin" not in no.headers


# --- body size -------------------------------------------------------------------------------
def test_a_large_body_is_413_problem_json(client, settings):
    big = {**GOOD, "name": "x" * (settings.max_content_length + 1)}
    r = client.post("/api/v1/contributions", json=big)
    assert r.status_code == 413
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json["status"] == 413


# --- logs ------------------------------------------------------------------------------------
def test_no_secrets_tokens_passwords_emails_or_card_numbers_in_logs(
    caplog, api, database, settings, stripe_client, app
):
    """A checkout, its webhooks, an admin login and a donor sign-in, at the production log
    level: nothing in the records that must not be there."""
    app.extensions["donations"].sign_in_limiter.reset()
    account.MAIL_FOLDERS[:] = [settings.mail_folder, settings.secret_key]
    caplog.set_level(logging.INFO)
    donor = "log-check.donor@example.org"
    paid = account.contribute(api, database, stripe_client, donor, frequency="one_off")
    admin.make_user(database, "log-check.staff@example.org", "editor")
    _http, r = admin.sign_in(api.base, "log-check.staff@example.org")
    assert r.status_code in (302, 303)
    _http, r = admin.sign_in(api.base, "log-check.staff@example.org", "wrong-password-123")
    assert account.ask_for_link(api, donor).status_code == 200
    link = account.the_link(database, donor)
    assert account.follow(api, link).status_code == 303
    token = link.rsplit("/", 1)[1]
    wait_for(lambda: paid.id)  # the webhooks booked it (contribute() waited for "succeeded")

    forbidden = {
        "Stripe secret key": STRIPE_SECRET,
        "dev Stripe key": DEV_STRIPE_SECRET_KEY,
        "webhook secret": WEBHOOK_SECRET,
        "old webhook secret": OLD_WEBHOOK_SECRET,
        "app secret key": settings.secret_key,
        "admin password": admin.PASSWORD,
        "wrong password": "wrong-password-123",
        "donor email": donor,
        "staff email": "log-check.staff@example.org",
        "card number": "4242424242424242",
        "client secret": "_secret_",
    }
    records = [(rec.name, rec.getMessage()) for rec in caplog.records]
    assert records, "the flow logged something"
    for name, message in records:
        for what, value in forbidden.items():
            assert value.lower() not in message.lower(), f"{what} in a {name} log line: {message}"
        # The sign-in token is in the link's path (short-lived, single-use, and consumed by a
        # POST from the page the GET shows). The service's own access log masks it; only the
        # test server's (werkzeug, never used in production) writes raw paths.
        if name != "werkzeug":
            assert token not in message, f"sign-in token in a {name} log line"
    assert any(n == "donations.access" and "/account/sign-in/[redacted]" in m for n, m in records)
