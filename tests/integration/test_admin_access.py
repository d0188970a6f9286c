"""Who may use the admin: sign-in, sessions, CSRF, throttling, roles, tokens and the audit log."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from donations.admin.auth import create_user
from donations.admin.models import AdminSession, AdminUser, AuditEntry
from donations.admin.tokens import create_token
from donations.cli import cli

PASSWORD = "correct horse battery staple"
ADMIN_PREFIXES = ("/admin", "/api/v1/admin")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
SAMPLE_ARGS = {
    "campaign_id": "no-such-campaign",
    "token_id": "999999",
    "contribution_id": "ctb_no_such_contribution",
}


def make_user(database, email: str, role: str) -> None:
    with database.transaction() as s:
        create_user(s, email, PASSWORD, role)


def token_for(database, role: str) -> str:
    with database.transaction() as s:
        return create_token(s, f"{role}-token", role)


def login_form(http: requests.Session, base: str) -> str:
    page = http.get(f"{base}/admin/login", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(base: str, email: str, password: str = PASSWORD) -> tuple[requests.Session, Any]:
    """A browser-like session that went through the login form; returns it and the answer."""
    http = requests.Session()
    csrf = login_form(http, base)
    r = http.post(
        f"{base}/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf},
        allow_redirects=False,
        timeout=10,
    )
    return http, r


def csrf_of(http: requests.Session, base: str) -> str:
    return http.get(f"{base}/api/v1/admin/me", timeout=10).json()["csrf_token"]


@pytest.fixture
def editor(api, database):
    make_user(database, "Editor@Example.org", "editor")
    http, r = sign_in(api.base, "editor@example.org")
    assert r.status_code == 303, r.text
    return http


@pytest.fixture
def viewer(api, database):
    make_user(database, "viewer@example.org", "viewer")
    http, r = sign_in(api.base, "viewer@example.org")
    assert r.status_code == 303, r.text
    return http


# --- signing in ----------------------------------------------------------------------------------
def test_create_admin_stores_an_argon2id_hash_and_the_user_can_sign_in(api, database, settings):
    result = CliRunner().invoke(
        cli,
        ["create-admin", "Ana@Example.org", "--role", "viewer", "--password-stdin"],
        input=PASSWORD + "\n",
        env={"DATABASE_URL": settings.database_url},
    )
    assert result.exit_code == 0, result.output
    with database.sessions() as s:
        user = s.scalar(select(AdminUser).where(AdminUser.email == "ana@example.org"))
    assert user.role == "viewer"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash

    http, r = sign_in(api.base, "ana@example.org")
    assert r.status_code == 303
    assert r.headers["Location"].endswith("/admin/")
    cookie = next(c for c in r.raw.headers.getlist("Set-Cookie") if "donations_admin=" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = http.get(f"{api.base}/api/v1/admin/me").json()
    assert me["kind"] == "user" and me["name"] == "ana@example.org" and me["role"] == "viewer"
    with database.sessions() as s:  # the cookie's secret is not what the database keeps
        stored = s.scalars(select(AdminSession.id)).all()
    assert len(stored) == 1 and http.cookies["donations_admin"] not in stored


def test_create_admin_refuses_a_short_password(settings):
    result = CliRunner().invoke(
        cli,
        ["create-admin", "b@example.org", "--password-stdin"],
        input="short\n",
        env={"DATABASE_URL": settings.database_url},
    )
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output


def test_a_wrong_password_or_unknown_account_is_refused_alike(api, database):
    make_user(database, "ed@example.org", "editor")
    _, wrong = sign_in(api.base, "ed@example.org", "not the password")
    _, unknown = sign_in(api.base, "nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match" in wrong.text and "do not match" in unknown.text
    assert "donations_admin" not in wrong.cookies


def test_the_login_form_needs_its_csrf_token(api, database):
    make_user(database, "ed@example.org", "editor")
    http = requests.Session()
    login_form(http, api.base)
    r = http.post(
        f"{api.base}/admin/login",
        data={"email": "ed@example.org", "password": PASSWORD, "csrf_token": "forged"},
        allow_redirects=False,
    )
    assert r.status_code == 403
    assert "donations_admin" not in r.cookies


def test_login_returns_to_a_local_page_only(api, database):
    make_user(database, "ed@example.org", "editor")
    for target, expected in (
        ("/admin/tokens", "/admin/tokens"),
        ("https://evil.example/", "/admin/"),
        ("//evil.example/", "/admin/"),
    ):
        http = requests.Session()
        csrf = login_form(http, api.base)
        r = http.post(
            f"{api.base}/admin/login",
            params={"next": target},
            data={"email": "ed@example.org", "password": PASSWORD, "csrf_token": csrf},
            allow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["Location"].endswith(expected), (target, r.headers["Location"])


def login_from(app, address: str, email: str, password: str = PASSWORD) -> Any:
    """Sign in through the login form from a client address of the test's choosing."""
    client = app.test_client()
    env = {"REMOTE_ADDR": address}
    page = client.get("/admin/login", environ_base=env)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf},
        environ_base=env,
    )


def test_wrong_passwords_from_five_addresses_do_not_lock_the_admin_out(app, database):
    make_user(database, "ed@example.org", "editor")
    for i in range(5):
        assert login_from(app, f"203.0.113.{i}", "ed@example.org", "guess").status_code == 401
    # The real admin, from an address that has not failed, signs in at once…
    assert login_from(app, "198.51.100.7", "ed@example.org").status_code == 303
    # …and so does anyone with the right password from an address that has not failed,
    # however many others keep guessing.
    for i in range(5, 40):
        login_from(app, f"203.0.113.{i}", "ed@example.org", "guess")
    assert login_from(app, "198.51.100.8", "ed@example.org").status_code == 303


def test_an_address_that_keeps_failing_waits_longer_each_time(app, database):
    make_user(database, "ed@example.org", "editor")
    make_user(database, "other@example.org", "editor")
    assert login_from(app, "192.0.2.1", "ed@example.org", "guess").status_code == 401
    assert login_from(app, "192.0.2.1", "ed@example.org", "guess").status_code == 401
    # a second failure: this address waits before its next try, even with the password
    r = login_from(app, "192.0.2.1", "ed@example.org")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) == 1
    # the account itself is not locked, and the address may try other accounts
    assert login_from(app, "198.51.100.7", "ed@example.org").status_code == 303
    assert login_from(app, "192.0.2.1", "other@example.org").status_code == 303


def test_an_address_guessing_across_many_accounts_is_stopped(app, database):
    make_user(database, "other@example.org", "editor")
    for i in range(30):
        assert login_from(app, "192.0.2.9", f"guess{i}@example.org", "guess").status_code == 401
    r = login_from(app, "192.0.2.9", "other@example.org")
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 15 * 60
    assert login_from(app, "192.0.2.10", "other@example.org").status_code == 303


def test_login_counts_in_redis_never_hold_an_email_in_clear(app, database):
    url = app.extensions["donations"].settings.redis_url
    if not url:
        pytest.skip("REDIS_URL is not set")
    import redis

    login_from(app, "192.0.2.3", "secret-admin@example.org", "guess")
    r = redis.Redis.from_url(url)
    keys = [k.decode() for k in r.scan_iter(match="*login*")]
    assert any(k.startswith("donations-login:") for k in keys), "counted in Redis"
    assert not any("example.org" in k or "secret-admin" in k for k in keys)
    r.close()


def test_signing_in_again_rotates_the_session(api, database):
    make_user(database, "ed@example.org", "editor")
    http, first = sign_in(api.base, "ed@example.org")
    assert first.status_code == 303
    old = http.cookies["donations_admin"]
    csrf = login_form(http, api.base)  # the same browser signs in again
    again = http.post(
        f"{api.base}/admin/login",
        data={"email": "ed@example.org", "password": PASSWORD, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert again.status_code == 303
    new = http.cookies["donations_admin"]
    assert new != old
    with database.sessions() as s:
        assert len(s.scalars(select(AdminSession)).all()) == 1  # the old one is gone
    stale = requests.Session()
    stale.cookies.set("donations_admin", old)
    assert stale.get(f"{api.base}/api/v1/admin/me").status_code == 401
    assert http.get(f"{api.base}/api/v1/admin/me").status_code == 200


def test_signing_out_ends_the_session_on_the_server(api, editor, database):
    base = api.base
    assert editor.post(f"{base}/admin/logout", allow_redirects=False).status_code == 403
    r = editor.post(
        f"{base}/admin/logout", data={"csrf_token": csrf_of(editor, base)}, allow_redirects=False
    )
    assert r.status_code == 303
    with database.sessions() as s:
        assert s.scalars(select(AdminSession)).all() == []
    r = editor.get(f"{base}/admin/", allow_redirects=False)
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]


def test_a_disabled_user_loses_their_session(api, editor, database):
    assert editor.get(f"{api.base}/api/v1/admin/me").status_code == 200
    with database.transaction() as s:
        user = s.scalar(select(AdminUser))
        user.disabled_at = user.created_at
    assert editor.get(f"{api.base}/api/v1/admin/me").status_code == 401


# --- every admin route --------------------------------------------------------------------------
def admin_routes(app) -> list[tuple[str, str, Any]]:
    """(method, concrete path, view function) for every route under the admin prefixes."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(ADMIN_PREFIXES) or rule.rule == "/admin/login":
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:\w+:)?{arg}>", SAMPLE_ARGS[arg], path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path, app.view_functions[rule.endpoint]))
    return sorted(out, key=lambda route: route[1] == "/admin/logout")  # signing out goes last


def needed_role(view, method: str) -> str:
    read, write = view.required_roles
    return write if method in UNSAFE else read


def call(http: requests.Session, base: str, method: str, path: str, **kw: Any):
    kw.setdefault("allow_redirects", False)
    if method in UNSAFE and "json" not in kw and "data" not in kw:
        kw["json"] = {}
    return http.request(method, base + path, timeout=30, **kw)


def test_every_admin_route_is_guarded(app):
    routes = admin_routes(app)
    assert len(routes) >= 15
    unguarded = [(m, p) for m, p, view in routes if not hasattr(view, "required_roles")]
    assert unguarded == []


def test_no_admin_route_answers_without_credentials(app, api):
    for method, path, _ in admin_routes(app):
        r = call(requests.Session(), api.base, method, path)
        if path.startswith("/admin") and method == "GET":
            assert r.status_code == 302, (method, path, r.status_code)
            assert "/admin/login" in r.headers["Location"]
        else:
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["Content-Type"] == "application/problem+json"


def test_a_viewer_reads_reports_but_changes_nothing(app, api, database, viewer):
    token = token_for(database, "viewer")
    by_token = requests.Session()
    by_token.headers["Authorization"] = f"Bearer {token}"
    csrf = csrf_of(viewer, api.base)
    assert viewer.get(f"{api.base}/api/v1/admin/reports/summary").status_code == 200
    assert by_token.get(f"{api.base}/api/v1/admin/reports/summary").status_code == 200
    checked = {"viewer": 0, "editor": 0}
    for method, path, view in admin_routes(app):
        role = needed_role(view, method)
        checked[role] += 1
        for http, extra in ((viewer, {"headers": {"X-CSRF-Token": csrf}}), (by_token, {})):
            r = call(http, api.base, method, path, **extra)
            if role == "editor":
                assert r.status_code == 403, (method, path, r.status_code)
            else:
                assert r.status_code not in (401, 403), (method, path, r.status_code)
                assert r.status_code < 500, (method, path, r.status_code)
    assert checked["viewer"] >= 5 and checked["editor"] >= 5


def test_a_session_must_send_its_csrf_token_on_every_change(app, api, editor):
    csrf = csrf_of(editor, api.base)
    for method, path, _ in admin_routes(app):
        if method not in UNSAFE:
            continue
        r = call(editor, api.base, method, path)
        assert r.status_code == 403, (method, path, r.status_code)
        assert "CSRF" in r.text
        r = call(editor, api.base, method, path, headers={"X-CSRF-Token": "wrong"})
        assert r.status_code == 403, (method, path, r.status_code)
        r = call(editor, api.base, method, path, headers={"X-CSRF-Token": csrf})
        assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, r.text)


def test_a_bearer_token_needs_no_csrf_token(api, database):
    token = token_for(database, "editor")
    r = api.post(
        "/api/v1/admin/tokens",
        json={"name": "ci", "role": "viewer"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201, r.text


# --- tokens and the audit log -------------------------------------------------------------------
def test_tokens_are_listed_with_their_last_use_and_can_be_revoked(api, database, editor):
    csrf = csrf_of(editor, api.base)
    r = editor.post(
        f"{api.base}/api/v1/admin/tokens",
        json={"name": "finance export", "role": "viewer"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    secret, token_id = created["secret"], created["token"]["id"]
    assert created["token"]["created_by"] == "user:editor@example.org"
    assert created["token"]["last_used_at"] is None

    used = api.get("/api/v1/admin/reports/summary", headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 200
    listed = editor.get(f"{api.base}/api/v1/admin/tokens").json()["tokens"]
    mine = next(t for t in listed if t["id"] == token_id)
    assert mine["last_used_at"] is not None and mine["revoked_at"] is None
    assert secret not in str(listed)

    r = editor.delete(f"{api.base}/api/v1/admin/tokens/{token_id}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    again = api.get("/api/v1/admin/reports/summary", headers={"Authorization": f"Bearer {secret}"})
    assert again.status_code == 401
    listed = editor.get(f"{api.base}/api/v1/admin/tokens").json()["tokens"]
    assert next(t for t in listed if t["id"] == token_id)["revoked_at"] is not None


def test_the_token_page_shows_a_new_token_once(api, editor):
    csrf = csrf_of(editor, api.base)
    r = editor.post(
        f"{api.base}/admin/tokens", data={"name": "ops", "role": "editor", "csrf_token": csrf}
    )
    assert r.status_code == 200
    secret = re.search(r'value="(dnt_[^"]+)"', r.text).group(1)
    page = editor.get(f"{api.base}/admin/tokens").text
    assert "ops" in page and secret not in page


def test_campaign_and_token_changes_are_audited_with_before_and_after(api, database, editor):
    from tests.integration.test_appeal_api import CAMPAIGN

    csrf = {"X-CSRF-Token": csrf_of(editor, api.base)}
    doc = {**CAMPAIGN, "id": "audited", "priority": 10}
    assert (
        editor.post(f"{api.base}/api/v1/admin/campaigns", json=doc, headers=csrf).status_code == 201
    )
    r = editor.patch(
        f"{api.base}/api/v1/admin/campaigns/audited", json={"priority": 99}, headers=csrf
    )
    assert r.status_code == 200, r.text
    r = editor.delete(f"{api.base}/api/v1/admin/campaigns/audited", headers=csrf)
    assert r.status_code == 204
    token = editor.post(f"{api.base}/api/v1/admin/tokens", json={"name": "t"}, headers=csrf).json()[
        "token"
    ]

    log = editor.get(f"{api.base}/api/v1/admin/audit").json()["entries"]
    actions = [(e["action"], e["target_id"]) for e in reversed(log)]
    assert actions == [
        ("campaign.create", "audited"),
        ("campaign.update", "audited"),
        ("campaign.delete", "audited"),
        ("token.create", str(token["id"])),
    ]
    assert {e["actor"] for e in log} == {"user:editor@example.org"}
    create, update, delete = reversed(log[1:])
    assert create["before"] is None and create["after"]["priority"] == doc["priority"]
    assert update["before"]["priority"] == doc["priority"] and update["after"]["priority"] == 99
    assert delete["before"]["priority"] == 99 and delete["after"] is None
    assert all(e["request_id"] for e in log)
    with database.sessions() as s:
        assert len(s.scalars(select(AuditEntry)).all()) == 4
    page = editor.get(f"{api.base}/admin/audit")
    assert page.status_code == 200 and "campaign.update" in page.text
    # The records read as written: no \uXXXX escapes (the body has <p> tags).
    assert "\\u20" not in page.text and "\\u003c" not in page.text
    heading = doc["variants"][0]["heading"]
    assert html.escape(heading, quote=True) in page.text or heading in page.text


def test_a_change_that_fails_validation_leaves_no_audit_entry(api, database, editor):
    csrf = {"X-CSRF-Token": csrf_of(editor, api.base)}
    r = editor.post(f"{api.base}/api/v1/admin/campaigns", json={"id": "x"}, headers=csrf)
    assert r.status_code == 422
    with database.sessions() as s:
        assert s.scalars(select(AuditEntry)).all() == []


def test_appeal_settings_changes_are_audited(api, database, editor):
    csrf = {"X-CSRF-Token": csrf_of(editor, api.base)}
    r = editor.patch(
        f"{api.base}/api/v1/admin/appeal-settings",
        json={"blackout_sections": ["Obituaries"], "gate_after_articles": 7},
        headers=csrf,
    )
    assert r.status_code == 200, r.text
    (entry,) = editor.get(f"{api.base}/api/v1/admin/audit").json()["entries"]
    assert entry["action"] == "settings.update"
    assert (
        entry["before"]["blackout_sections"] == [] and entry["before"]["gate_after_articles"] == 5
    )
    assert entry["after"]["blackout_sections"] == ["obituaries"]
    assert entry["after"]["gate_after_articles"] == 7


def test_a_browser_gets_an_error_page_and_an_api_client_a_problem(api, editor):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = editor.post(f"{api.base}/admin/logout", headers=browser, allow_redirects=False)
    assert page.status_code == 403
    assert page.headers["Content-Type"].startswith("text/html")
    assert "CSRF token" in page.text and "<h1>Forbidden</h1>" in page.text
    api_call = editor.post(f"{api.base}/api/v1/admin/tokens", json={}, headers=browser)
    assert api_call.status_code == 403
    assert api_call.headers["Content-Type"] == "application/problem+json"
