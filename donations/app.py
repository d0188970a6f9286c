"""The application factory: no side effects at import time; everything from Settings."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from flask import Flask, Response, g, request
from flask_cors import CORS
from flask_smorest import Api
from flask_swagger_ui import get_swaggerui_blueprint
from werkzeug.middleware.proxy_fix import ProxyFix

from donations import brand, edge, errors, i18n, openapi_docs
from donations.admin.ratelimit import LoginLimiter
from donations.app_constants import REQUEST_ID
from donations.appeals.candidates import CandidateAnswers
from donations.appeals.events import EventCounter
from donations.appeals.fastpath import CANDIDATES_PATH as FAST_CANDIDATES_PATH
from donations.appeals.fastpath import PATH as FAST_APPEAL_PATH
from donations.appeals.fastpath import VERSION_PATH as FAST_VERSION_PATH
from donations.appeals.fastpath import FastAppeal
from donations.appeals.snapshot import SnapshotStore
from donations.db import Database
from donations.donors.ratelimit import SignInLimiter
from donations.mail.sender import MailSender
from donations.observability import FAST_PATH_ENDPOINT, Instrumented
from donations.observability import install as install_observability
from donations.paths import STATIC, TEMPLATES
from donations.security import install_headers, install_rate_limits
from donations.services import Services
from donations.settings import Settings
from donations.stripe import StripeGateway, gateway_from_settings
from donations.webhooks.booker import WebhookBooker
from donations.webhooks.fastpath import FastWebhook

READER_API = r"/api/v1/(appeal|events|contributions.*)"


def create_app(
    settings: Settings | None = None,
    *,
    gateway: StripeGateway | None = None,
    database: Database | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    settings.validate()
    app = Flask(
        "donations",
        template_folder=str(TEMPLATES),
        static_folder=str(STATIC),
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
        API_TITLE="donations",
        API_VERSION="1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Reader revenue for independent newsrooms: appeals, Stripe "
                "checkout, a double-entry ledger and reports. Errors are "
                "application/problem+json (RFC 9457)."
            },
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An admin API token (`donations create-admin-token`, "
                        "or /admin/tokens); its role decides what it may do.",
                    },
                    "adminSession": {
                        "type": "apiKey",
                        "in": "cookie",
                        "name": "donations_admin",
                        "description": "A staff session from /admin/login. Every "
                        "state-changing request must also send the session's CSRF token in "
                        "the X-CSRF-Token header (GET /api/v1/admin/me returns it).",
                    },
                }
            },
        },
    )
    db = database or Database(settings.database_url)
    stripe_gateway = gateway or gateway_from_settings(settings)
    mail = MailSender(db, settings)
    app.extensions["donations"] = Services(
        settings=settings,
        db=db,
        gateway=stripe_gateway,
        appeals=SnapshotStore(db),
        candidates=CandidateAnswers(),
        events=EventCounter(db, settings.redis_url),
        login_limiter=LoginLimiter(settings.redis_url),
        sign_in_limiter=SignInLimiter(settings.redis_url),
        mail=mail,
        booker=WebhookBooker(db, stripe_gateway, mail=mail),
    )

    # The reader's language (Flask-Babel, catalogs in donations/translations) and money in
    # every template (`money`: each currency as the page's or the admin's locale writes it,
    # never summed across currencies); the newsroom's brand in every template (`brand`).
    i18n.install(app, settings)
    brand.install(app, settings)
    api = Api(app)
    from donations.admin import dashboard  # noqa: F401  (adds its pages to admin.pages)
    from donations.admin.campaign_api import api as campaign_admin_api
    from donations.admin.contributions import api as contributions_admin_api
    from donations.admin.donors import api as donors_admin_api
    from donations.admin.views import api as admin_api
    from donations.admin.views import pages as admin_pages
    from donations.admin.webhooks import api as webhooks_admin_api
    from donations.appeals.pages import bp as appeal_pages
    from donations.appeals.views import admin as campaigns_api
    from donations.appeals.views import reader as appeals_api
    from donations.checkout.views import api as contributions_api
    from donations.checkout.views import pages as checkout_pages
    from donations.donors.views import bp as account_pages
    from donations.observability import bp as operations_api
    from donations.reports.views import bp as reports_api
    from donations.webhooks.views import bp as webhooks

    api.register_blueprint(contributions_api)
    api.register_blueprint(reports_api)
    api.register_blueprint(appeals_api)
    api.register_blueprint(campaigns_api)
    api.register_blueprint(admin_api)
    api.register_blueprint(campaign_admin_api)
    api.register_blueprint(donors_admin_api)
    api.register_blueprint(webhooks_admin_api)
    api.register_blueprint(contributions_admin_api)
    api.register_blueprint(operations_api)
    openapi_docs.complete_spec(api)
    CORS(
        app,
        resources={
            r"/api/v1/(appeal|events|contributions.*)": {"origins": list(settings.allowed_origins)}
        },
        max_age=3600,
    )
    app.register_blueprint(checkout_pages)
    app.register_blueprint(appeal_pages)
    app.register_blueprint(webhooks)
    app.register_blueprint(admin_pages)
    app.register_blueprint(account_pages)
    app.register_blueprint(
        get_swaggerui_blueprint("/docs", "/openapi.json", config={"app_name": "donations API"}),
        url_prefix="/docs",
    )
    _register_operations(app)
    errors.register(app)
    _request_ids(app)
    edge.install(app)  # every text a client sends: one rule, before any view
    _require_json(app)
    install_observability(app, app.extensions["donations"])
    install_rate_limits(app, settings)
    install_headers(app, settings)
    # A chunked body over the limit is a 413 too (werkzeug alone would cut it at the limit).
    bounded = edge.BoundedBody(app.wsgi_app, settings.max_content_length)
    app.wsgi_app = bounded  # type: ignore[method-assign]
    wsgi = FastAppeal(app, app.extensions["donations"])
    # Stripe's deliveries are acknowledged by one insert, without Flask's per-request work.
    wsgi = FastWebhook(wsgi, bounded, app.extensions["donations"])  # type: ignore[assignment]
    # The fast path skips Flask's hooks: a query string with control characters goes through
    # Flask, whose edge hook refuses it as for any other route.
    wsgi = edge.ControlQueriesToFlask(wsgi, bounded)  # type: ignore[assignment]
    if settings.trusted_proxies:
        # The real client address and scheme from the proxies' X-Forwarded-For/-Proto: every
        # limiter (checkout, admin login, donor sign-in) reads request.remote_addr.
        n = settings.trusted_proxies
        wsgi = ProxyFix(wsgi, x_for=n, x_proto=n)  # type: ignore[assignment]
    app.wsgi_app = wsgi  # type: ignore[method-assign]
    # Outermost: times every request, the appeal fast path included.
    fast_paths = {
        FAST_APPEAL_PATH: FAST_PATH_ENDPOINT,
        FAST_CANDIDATES_PATH: "appeals_fastpath",
        FAST_VERSION_PATH: "appeals_version_fastpath",
    }
    app.wsgi_app = Instrumented(app.wsgi_app, fast_paths)  # type: ignore[method-assign]
    return app


def _register_operations(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    redis_client: list[Any] = []

    @app.get("/readyz")
    def readyz() -> tuple[dict[str, str], int]:
        """The database must answer (503 otherwise). Redis, when REDIS_URL is set, is reported
        but only degrades: events and limits fall back to process memory without it (200)."""
        from sqlalchemy import text

        s = app.extensions["donations"]
        try:
            with s.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready"
            logging.getLogger(__name__).warning("readiness check: database unreachable")
            return {"status": "unavailable", "database": "unreachable"}, 503
        body = {"status": "ok", "database": "ok"}
        if s.settings.redis_url:
            try:
                if not redis_client:
                    import redis

                    redis_client.append(
                        redis.Redis.from_url(
                            s.settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
                        )
                    )
                redis_client[0].ping()
                body["redis"] = "ok"
            except Exception:
                logging.getLogger(__name__).warning("readiness check: redis unreachable")
                body.update(status="degraded", redis="unreachable")
        return body, 200


def _request_ids(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else secrets.token_hex(16)

    @app.after_request
    def _echo(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id") or secrets.token_hex(16)
        return response


JSON_BODY_PATHS = re.compile(r"^/api/v1/")


def _require_json(app: Flask) -> None:
    """415 for a body that is not JSON on the JSON API (events also take text/plain)."""

    @app.before_request
    def _content_type() -> Response | None:
        if request.method not in ("POST", "PUT", "PATCH"):
            return None
        if request.routing_exception is not None:
            return None  # no such route or method: Flask answers 404, or 405 with Allow
        if not JSON_BODY_PATHS.match(request.path):
            return None
        allowed = {"application/json"}
        if request.path == "/api/v1/events":
            allowed.add("text/plain")
        if request.mimetype not in allowed:
            return errors.problem(
                415, "Unsupported Media Type", f"Send {' or '.join(sorted(allowed))}."
            )
        return None
