"""Abuse and security: checkout rate limits, the optional human check, response headers.

See docs/security.md for the settings and what each defence is for.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter

from donations.settings import Settings

log = logging.getLogger(__name__)

# --- rate limits on the checkout API (Flask-Limiter) -------------------------------------------
# The endpoints that reach Stripe; each is limited per client address (one shared budget), and
# all of them together by a global ceiling.
CREATE = "contributions.Contributions"
CONFIRM = "contributions.ConfirmPayment"
SUBSCRIBE = "contributions.Subscribe"
LIMITER_KEY = "donations.limiter"


def client_address() -> str:
    """The client's address: ProxyFix (TRUSTED_PROXIES) has already put the real one here."""
    return request.remote_addr or "unknown"


def email_key() -> str:
    """The normalized email of a contribution request as an HMAC, so the rate limiter's
    storage (Redis) never holds donors' addresses in clear; "" when there is none."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or "@" not in email:
        return ""
    normalized = email.strip().lower()[:320]
    secret = current_app.extensions["donations"].settings.secret_key.encode()
    return hmac.new(secret, normalized.encode(), hashlib.sha256).hexdigest()[:32]


def _contribution_key() -> str:
    return str((request.view_args or {}).get("contribution_id", ""))


# What the global ceiling counts: requests that passed validation, i.e. every answer but the
# client errors that refuse a request before it does anything (400, 404, 413, 415, 422, and
# 429 from another limit). A 402 (a card was tried and declined) and a 409 (a real
# contribution in the wrong state) count, as do 2xx and 5xx. So anyone's invalid requests
# cannot use up every reader's budget.
COUNTED_CLIENT_ERRORS = frozenset({402, 409})


def passed_validation(response: Response) -> bool:
    status = response.status_code
    return not 400 <= status < 500 or status in COUNTED_CLIENT_ERRORS


RETRY_AFTER_STATUSES = frozenset({429, 503})


def install_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """A limiter of this app's own (tests build several apps) over the checkout endpoints.

    Storage: Redis when REDIS_URL is set (every worker shares the counts), else in-process.
    A Redis outage must not take checkout down: errors are swallowed and counting falls back to
    in-process memory until Redis answers again.

    Per address, per email and per contribution every request counts (an attacker's invalid
    requests use up the attacker's own budget); the global ceiling counts only requests that
    passed validation.
    """

    # Registered before the limiter's own hook, so it runs after it (Flask runs after_request
    # hooks in reverse): Flask-Limiter writes Retry-After on every limited answer (a 201 said
    # "Retry-After: 3600"), but it only means something on 429 and 503.
    @app.after_request
    def _retry_after_only_when_refused(response: Response) -> Response:
        if response.status_code not in RETRY_AFTER_STATUSES:
            response.headers.pop("Retry-After", None)
        return response

    # A dead Redis must cost a checkout at most half a second before the fallback takes over.
    redis_options: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    limiter = Limiter(
        key_func=client_address,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        storage_options=redis_options if settings.redis_url else {},
        strategy="moving-window",
        headers_enabled=True,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="donations-checkout",
        retry_after="delta-seconds",
    )
    post = ["POST"]
    per_ip = limiter.shared_limit(settings.checkout_limit_per_ip, "checkout-ip", methods=post)
    overall = limiter.shared_limit(
        settings.checkout_limit_global,
        "checkout-all",
        key_func=lambda: "all",
        methods=post,
        # Tested before the view, counted after it, and only for requests that were valid.
        deduct_when=passed_validation,
    )
    per_email = limiter.limit(
        settings.checkout_limit_per_email,
        key_func=email_key,
        exempt_when=lambda: not email_key(),
        methods=post,
        scope="checkout-email",
    )
    per_contribution = limiter.limit(
        settings.checkout_limit_per_contribution,
        key_func=_contribution_key,
        methods=post,
        scope="checkout-contribution",
    )
    decorations: dict[str, list[Callable[[Any], Any]]] = {
        CREATE: [per_email, per_ip, overall],
        CONFIRM: [per_contribution, per_ip, overall],
        SUBSCRIBE: [per_ip, overall],
    }
    for endpoint, decorators in decorations.items():
        view = app.view_functions[endpoint]
        for decorate in decorators:
            view = decorate(view)
        app.view_functions[endpoint] = view
    app.extensions[LIMITER_KEY] = limiter
    return limiter


# --- the optional human check (Cloudflare Turnstile or reCAPTCHA) ------------------------------
CAPTCHA_SCRIPTS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/api.js",
    "recaptcha": "https://www.google.com/recaptcha/api.js",
}
CAPTCHA_FRAMES = {
    "turnstile": ("https://challenges.cloudflare.com",),
    "recaptcha": ("https://www.google.com", "https://www.recaptcha.net"),
}


class HumanCheckFailed(Exception):
    """The token was missing, expired, reused or not a human's (→ 422 naming the field)."""


class HumanCheckUnavailable(Exception):
    """The provider could not be asked (→ 503 with Retry-After; nothing was created)."""


def verify_human(settings: Settings, token: str | None, remote_ip: str | None) -> None:
    """Ask the provider's siteverify whether `token` is a human's. Called before any Stripe
    call; raises HumanCheckFailed or HumanCheckUnavailable. The token and secret are never
    logged."""
    if not token:
        raise HumanCheckFailed("Complete the human check.")
    form = {"secret": settings.captcha_secret_key or "", "response": token}
    if remote_ip:
        form["remoteip"] = remote_ip
    try:
        answer = requests.post(settings.captcha_url, data=form, timeout=settings.captcha_timeout)
        answer.raise_for_status()
        result = answer.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning(
            "human check: %s could not be asked (%s)", settings.captcha_provider, type(exc).__name__
        )
        raise HumanCheckUnavailable("The human check is unavailable; please retry.") from exc
    if not (isinstance(result, dict) and result.get("success") is True):
        codes = result.get("error-codes") if isinstance(result, dict) else None
        log.info("human check refused a contribution (%s)", codes)
        raise HumanCheckFailed("The human check failed; please try again.")


# --- response headers ---------------------------------------------------------------------------
def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _sources(*items: str | None) -> str:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return " ".join(seen)


def content_security_policy(
    settings: Settings, *, embed: bool = False, style_nonce: str | None = None
) -> str:
    """The policy of our HTML pages: our own scripts and styles only, plus Stripe.js (and the
    human check's provider when it is on). /embed/appeal may be framed by the newsrooms."""
    stripe_js = _origin(settings.stripe_js_url)
    stripe_api = _origin(settings.stripe_api_base) or "https://api.stripe.com"
    stripe_frames = (
        (stripe_js,)
        if settings.uses_stripe_emulator
        else ("https://js.stripe.com", "https://hooks.stripe.com")
    )
    captcha_script = _origin(CAPTCHA_SCRIPTS.get(settings.captcha_provider or ""))
    captcha_frames = CAPTCHA_FRAMES.get(settings.captcha_provider or "", ())
    ancestors = _sources("'self'", *settings.allowed_origins) if embed else "'none'"
    scripts = _sources("'self'", stripe_js, captcha_script)
    frames = _sources("'self'", *stripe_frames, *captcha_frames)
    connect = _sources("'self'", stripe_api, stripe_js, captcha_script)
    # The newsroom's logo (NEWSROOM_LOGO_URL) may live on its own site.
    images = _sources("'self'", "data:", _origin(settings.newsroom_logo_url))
    directives = [
        "default-src 'self'",
        f"script-src {scripts}",
        f"frame-src {frames}",
        f"connect-src {connect}",
        f"img-src {images}",
        f"style-src 'self' 'nonce-{style_nonce}'" if style_nonce else "style-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {ancestors}",
    ]
    return "; ".join(directives)


DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


def _https(settings: Settings) -> bool:
    return request.scheme == "https" or settings.public_base_url.startswith("https://")


def csp_nonce() -> str:
    """This response's nonce (templates: `nonce="{{ csp_nonce() }}"` on widget.js, whose
    shadow-root stylesheet carries it); the page's style-src then allows that nonce only."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def install_headers(app: Flask, settings: Settings) -> None:
    page_policy = content_security_policy(settings)
    embed_policy = content_security_policy(settings, embed=True)
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if _https(settings):
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if response.mimetype == "text/html":
            if request.path.startswith("/docs"):
                # Swagger UI's page (flask-swagger-ui) configures itself in an inline script.
                headers["Content-Security-Policy"] = DOCS_POLICY
            elif request.path.startswith("/embed/"):
                headers["Content-Security-Policy"] = embed_policy
                if headers.get("X-Frame-Options") == "DENY":
                    del headers["X-Frame-Options"]
            elif "csp_nonce" in g:
                headers["Content-Security-Policy"] = content_security_policy(
                    settings, style_nonce=g.csp_nonce
                )
            else:
                headers["Content-Security-Policy"] = page_policy
            if not request.path.startswith("/embed/"):
                headers.setdefault("X-Frame-Options", "DENY")
        return response
