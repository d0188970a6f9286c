"""Admin sign-in, sign-out, API tokens and the audit log: pages under /admin and JSON under
/api/v1/admin. Every route is wrapped in require_role."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from donations.admin import audit
from donations.admin import tokens as token_store
from donations.admin.auth import (
    LOGIN_CSRF_COOKIE,
    LOGIN_FORM,
    SESSION_COOKIE,
    clear_session_cookie,
    current_principal,
    end_session,
    require_role,
    safe_next,
    secure_cookies,
    set_session_cookie,
    start_session,
)
from donations.admin.auth import check_password as verify_login
from donations.admin.models import EDITOR, ROLES, VIEWER
from donations.errors import problem
from donations.services import services

pages = Blueprint("admin", __name__, url_prefix="/admin")
api = ApiBlueprint(
    "admin_api", __name__, url_prefix="/api/v1/admin", description="Admin tokens and audit log."
)

# Pages other features add to the navigation: (endpoint, label).
NAV: list[tuple[str, str]] = []


@pages.app_template_filter("iso")
def iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


@pages.app_template_filter("readable_json")
def readable_json(value: Any) -> str:
    """A record as people read it: indented, its text as written (no \\u2019 or \\u003c
    escapes; Jinja escapes the HTML when it is shown)."""
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str)


@pages.context_processor
def _principal() -> dict[str, Any]:
    return {"principal": g.get("principal"), "admin_nav": NAV}


@pages.after_request
def _no_store(response: Response) -> Response:
    """Admin pages show donors' data: never cached, never framed."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


# --- signing in and out --------------------------------------------------------------------------
@pages.route("/login", methods=["GET", "POST"])
def login() -> Any:
    s = services()
    next_url = safe_next(request.args.get("next"))
    token, fresh = LOGIN_FORM.token()
    status, error, email = 200, None, ""
    if request.method == "POST":
        email = (request.form.get("email") or "").strip()[:320]
        password = request.form.get("password") or ""
        address = request.remote_addr or "unknown"
        if not LOGIN_FORM.ok():
            status, error = 403, "The form expired. Please try again."
        elif not email or not password:
            status, error = 422, "Enter your email and password."
        else:
            verdict = s.login_limiter.check(email.lower(), address)
            if not verdict.allowed:
                minutes = max(1, round(verdict.retry_after / 60))
                response = Response(
                    render_template(
                        "admin/login.html",
                        csrf_token=token,
                        next=next_url,
                        email=email,
                        error=f"Too many attempts. Try again in about {minutes} minute(s).",
                    ),
                    status=429,
                    mimetype="text/html",
                )
                response.headers["Retry-After"] = str(verdict.retry_after)
                return response
            with s.db.transaction() as session:
                user = verify_login(session, email, password)
                cookie = start_session(session, user) if user is not None else None
            if cookie is None:
                s.login_limiter.failed(email.lower(), address)
                status, error = 401, "That email and password do not match an account."
            else:
                s.login_limiter.succeeded(email.lower(), address)
                response = redirect(next_url, code=303)
                set_session_cookie(response, cookie)
                response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin/login")
                return response
    response = Response(
        render_template(
            "admin/login.html", csrf_token=token, next=next_url, error=error, email=email
        ),
        status=status,
        mimetype="text/html",
    )
    if fresh:
        LOGIN_FORM.set_cookie(response, token, secure=secure_cookies())
    return response


@pages.post("/logout")
@require_role(VIEWER)
def logout() -> Response:
    with services().db.transaction() as session:
        end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(url_for("admin.login"), code=303)
    clear_session_cookie(response)
    return response


# --- API tokens (pages) ---------------------------------------------------------------------------
@pages.route("/tokens", methods=["GET", "POST"], endpoint="tokens")
@require_role(EDITOR)
def tokens_page() -> Any:
    new_token = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        role = request.form.get("role") or VIEWER
        if not 1 <= len(name) <= 100 or role not in ROLES:
            flash("Give the token a name (up to 100 characters) and a role.", "error")
            return redirect(url_for("admin.tokens"), code=303)
        with services().db.transaction() as session:
            row, value = token_store.create_audited(session, name, role)
        new_token = {"name": row.name, "value": value}
    with services().db.sessions() as session:
        rows = token_store.list_tokens(session)
    return render_template("admin/tokens.html", tokens=rows, roles=ROLES, new_token=new_token)


@pages.post("/tokens/<int:token_id>/revoke", endpoint="revoke_token")
@require_role(EDITOR)
def revoke_token_page(token_id: int) -> Response:
    with services().db.transaction() as session:
        if token_store.revoke_audited(session, token_id) is None:
            abort(404)
    flash("Token revoked.", "ok")
    return redirect(url_for("admin.tokens"), code=303)


# --- audit log (page) -----------------------------------------------------------------------------
@pages.get("/audit", endpoint="audit")
@require_role(EDITOR)
def audit_page() -> str:
    before = request.args.get("before", type=int)
    with services().db.sessions() as session:
        entries = audit.recent(session, limit=100, before_id=before)
    next_before = entries[-1].id if len(entries) == 100 else None
    return render_template("admin/audit.html", entries=entries, next_before=next_before)


# --- JSON API ------------------------------------------------------------------------------------
class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    role = fields.String()
    created_at = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    last_used_at = fields.String(allow_none=True)
    revoked_at = fields.String(allow_none=True)


class TokenList(Schema):
    tokens = fields.List(fields.Nested(TokenSchema))


class NewTokenSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(load_default=VIEWER, validate=validate.OneOf(ROLES))


class CreatedTokenSchema(Schema):
    token = fields.Nested(TokenSchema)
    secret = fields.String(metadata={"description": "The bearer token; shown this once only"})


# Ids are 32-bit integer columns: a larger one is no id (and PostgreSQL refuses to compare it).
MAX_ID = 2**31 - 1


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = fields.DateTime(
        format="%Y-%m-%dT%H:%M:%SZ",
        metadata={
            "description": "RFC 3339 UTC",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
        },
    )
    actor = fields.String()
    action = fields.String()
    target_type = fields.String()
    target_id = fields.String()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    request_id = fields.String(allow_none=True)


class AuditQuery(Schema):
    before = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID), metadata={"description": "Entry id"}
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    target_type = fields.String(validate=validate.Length(max=40))
    target_id = fields.String(validate=validate.Length(max=100))


class AuditPage(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema))
    next_before = fields.Integer(allow_none=True)


class WhoAmI(Schema):
    kind = fields.String()
    name = fields.String()
    role = fields.String()
    csrf_token = fields.String(allow_none=True)


@api.route("/me")
class Me(MethodView):
    decorators = [require_role(VIEWER)]

    @api.response(200, WhoAmI)
    @api.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self) -> Any:
        """Who is calling, with which role (and, for a browser session, its CSRF token)."""
        return current_principal()


@api.route("/tokens")
class Tokens(MethodView):
    decorators = [require_role(EDITOR)]

    @api.response(200, TokenList)
    @api.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self) -> Any:
        """Every API token with its role and last use (never the token itself)."""
        with services().db.sessions() as session:
            return {
                "tokens": [token_store.token_record(t) for t in token_store.list_tokens(session)]
            }

    @api.arguments(NewTokenSchema)
    @api.response(201, CreatedTokenSchema)
    @api.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Create a token; its secret is in this response only."""
        with services().db.transaction() as session:
            row, value = token_store.create_audited(session, body["name"], body["role"])
            return {"token": token_store.token_record(row), "secret": value}


@api.route("/tokens/<int:token_id>")
class TokenResource(MethodView):
    decorators = [require_role(EDITOR)]

    @api.response(204)
    @api.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def delete(self, token_id: int) -> Any:
        """Revoke a token (it stays listed, revoked)."""
        if token_id > MAX_ID:  # PostgreSQL would refuse to compare it (a 500)
            return problem(404, "Not Found", f"No token {token_id}.")
        with services().db.transaction() as session:
            if token_store.revoke_audited(session, token_id) is None:
                return problem(404, "Not Found", f"No token {token_id}.")
        return None


@api.route("/audit")
class Audit(MethodView):
    decorators = [require_role(EDITOR)]

    @api.arguments(AuditQuery, location="query")
    @api.response(200, AuditPage)
    @api.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self, args: dict[str, Any]) -> Any:
        """The audit log, newest first; page with `before` = the last entry's id."""
        with services().db.sessions() as session:
            entries = audit.recent(
                session,
                limit=args["limit"],
                before_id=args.get("before"),
                target_type=args.get("target_type"),
                target_id=args.get("target_id"),
            )
        next_before = entries[-1].id if len(entries) == args["limit"] else None
        return {"entries": entries, "next_before": next_before}
