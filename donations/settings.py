"""Settings from the environment (twelve-factor), with embedded defaults for development.

The variable names are part of the public contract (API.md, "Configuration and commands").
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from email.headerregistry import Address
from pathlib import Path
from urllib.parse import urlsplit

from donations.appeals.engine import default_country_currencies
from donations.db import normalize_url
from donations.money import CurrencyRule, default_currency_rules

ENVIRONMENTS = ("development", "test", "production")
DEV_SECRET_KEY = "dev-secret-key-do-not-use-in-production"  # noqa: S105 - a known dev default
DEV_STRIPE_SECRET_KEY = "sk_test_donations_dev"  # noqa: S105
DEV_STRIPE_PUBLISHABLE_KEY = "pk_test_donations_dev"
DEV_WEBHOOK_SECRET = "whsec_donations_dev"  # noqa: S105
STRIPE_JS = "https://js.stripe.com/v3/"
# Emulators whose dialect the Stripe adapter speaks (donations/stripe/localstripe.py).
STRIPE_EMULATORS = ("localstripe",)
CAPTCHA_VERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
}


class ConfigurationError(RuntimeError):
    """The settings cannot be used; the message says which one and why."""


def default_instance_path() -> Path:
    """Folder for the development SQLite file and the local outbox (never inside site-packages)."""
    explicit = os.environ.get("DONATIONS_INSTANCE_PATH")
    if explicit:
        return Path(explicit)
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / "instance"
    return Path.home() / ".local" / "share" / "donations"


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = ""
    redis_url: str | None = None
    secret_key: str = DEV_SECRET_KEY
    stripe_secret_key: str = DEV_STRIPE_SECRET_KEY
    stripe_publishable_key: str = DEV_STRIPE_PUBLISHABLE_KEY
    stripe_webhook_secrets: tuple[str, ...] = (DEV_WEBHOOK_SECRET,)
    # Unset: Stripe itself. Any other address is spoken to in Stripe's API at the SDK's pinned
    # version (a stand-in, stripe-mock, a recording proxy) unless `stripe_emulator` says
    # which emulator answers there.
    stripe_api_base: str | None = None
    stripe_emulator: str | None = None
    stripe_js_url: str = STRIPE_JS
    public_base_url: str = "http://127.0.0.1:8000"
    allowed_origins: tuple[str, ...] = ()
    currencies: Mapping[str, CurrencyRule] = field(default_factory=default_currency_rules)
    # A trusted CDN header carrying the reader's country (e.g. CF-IPCountry); unset = none.
    country_header: str | None = None
    country_currencies: Mapping[str, str] = field(default_factory=default_country_currencies)
    # Seconds of clock skew accepted on Stripe-Signature timestamps (Stripe's default).
    webhook_tolerance: int = 300
    max_content_length: int = 64 * 1024
    instance_path: Path = field(default_factory=default_instance_path)
    # Email (receipts, sign-in links). No SMTP_HOST: messages are written to `outbox_path`
    # (default: the instance folder's outbox/) and the log says where; production needs SMTP.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Reader revenue <donations@localhost>"
    outbox_path: Path | None = None
    # Who the receipts are from (their name and postal address, as tax receipts need).
    newsroom_name: str = "Independent Newsroom"
    newsroom_address: str = ""
    # A receipt's tax wording (e.g. "No goods or services were provided in exchange…");
    # unset: receipts say they are not tax advice.
    receipt_tax_note: str | None = None
    mail_reply_to: str | None = None
    # The newsroom's brand on every reader page, email, error page and the admin header
    # (donations/brand.py). The logo: an absolute http(s) URL or a path on this service
    # (unset: a neutral mark served here); the accent a CSS hex colour; the support address
    # shown to donors (unset: MAIL_REPLY_TO, else MAIL_FROM's address); the newsroom's home
    # page, where the thank-you page sends a reader who came from no known article.
    newsroom_logo_url: str | None = None
    newsroom_accent_color: str = "#0b4a8b"
    newsroom_support_email: str | None = None
    newsroom_url: str | None = None
    # Log lines: "json" or "text"; unset: json in production, text otherwise (docs/operations.md).
    log_format: str | None = None
    # Who books the Stripe events the web processes store: "web" (a thread in every web
    # process, woken by each delivery; `donations webhooks worker` may run too) or "worker"
    # (only `donations webhooks worker`: booking's Stripe round trips and CPU stay off the
    # processes that answer readers and Stripe).
    webhook_booking: str = "web"
    # Set: GET /metrics needs `Authorization: Bearer <token>`; unset: private networks only.
    metrics_token: str | None = None
    # Card-testing defence on the checkout API (docs/security.md). `limits` strings; several
    # separated by ";". Per client address (shared by create/confirm/subscribe), per donor
    # email (creation only; keyed by an HMAC of the address), per contribution (confirm
    # only: many cards tried on one intent) and a global ceiling over all three.
    checkout_limit_per_ip: str = "10/minute;50/hour"
    checkout_limit_per_email: str = "5/hour"
    checkout_limit_per_contribution: str = "10/hour"
    checkout_limit_global: str = "300/minute"
    # Appeal events one client address may have counted (donations/appeals/throttle.py): all
    # events, and clicks and dismissals among them.
    events_limit_per_address: str = "60/minute"
    events_limit_per_address_actions: str = "10/minute"
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted (hops).
    trusted_proxies: int = 0
    # Optional human check on contribution creation: "turnstile" | "recaptcha" | None (off).
    captcha_provider: str | None = None
    captcha_site_key: str | None = None
    captcha_secret_key: str | None = None
    captcha_verify_url: str | None = None  # unset: the provider's siteverify URL
    captcha_timeout: float = 5.0

    @property
    def captcha_url(self) -> str:
        """Where tokens are verified (the provider's own siteverify unless overridden)."""
        return self.captcha_verify_url or CAPTCHA_VERIFY_URLS.get(self.captcha_provider or "", "")

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.env == "production" else "text")

    @property
    def mail_folder(self) -> Path:
        return self.outbox_path or self.instance_path / "outbox"

    @property
    def uses_stripe_emulator(self) -> bool:
        """True when an emulator answers Stripe calls (STRIPE_EMULATOR): its quirks apply."""
        return self.stripe_emulator is not None

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from the environment; validate; fail fast on unsafe production use."""
        env = dict(os.environ if environ is None else environ)
        name = env.get("DONATIONS_ENV", "development").strip() or "development"
        if name not in ENVIRONMENTS:
            raise ConfigurationError(f"DONATIONS_ENV must be one of {', '.join(ENVIRONMENTS)}")
        production = name == "production"
        instance = (
            Path(env["DONATIONS_INSTANCE_PATH"])
            if env.get("DONATIONS_INSTANCE_PATH")
            else default_instance_path()
        )

        def get(key: str, default: str | None) -> str | None:
            value = env.get(key)
            return value.strip() if value and value.strip() else default

        api_base = get("STRIPE_API_BASE", None)
        emulator = get("STRIPE_EMULATOR", None)
        if emulator is not None and emulator not in STRIPE_EMULATORS:
            raise ConfigurationError(
                f"STRIPE_EMULATOR must be one of {', '.join(STRIPE_EMULATORS)} (or unset)"
            )
        if emulator is not None and api_base is None:
            raise ConfigurationError("STRIPE_EMULATOR needs STRIPE_API_BASE: where it listens")
        # localstripe serves a Stripe.js stand-in of its own; anything else uses Stripe's.
        js_default = (
            api_base.rstrip("/") + "/js.stripe.com/v3/" if emulator and api_base else STRIPE_JS
        )
        secrets_raw = get("STRIPE_WEBHOOK_SECRET", None if production else DEV_WEBHOOK_SECRET)
        settings = cls(
            env=name,
            # postgres:// (Heroku's spelling) is read as postgresql://.
            database_url=normalize_url(get("DATABASE_URL", None) or "")
            or f"sqlite:///{instance / 'donations.sqlite3'}",
            redis_url=get("REDIS_URL", None),
            secret_key=get("SECRET_KEY", DEV_SECRET_KEY) or DEV_SECRET_KEY,
            stripe_secret_key=get(
                "STRIPE_SECRET_KEY", None if production else DEV_STRIPE_SECRET_KEY
            )
            or "",
            stripe_publishable_key=get(
                "STRIPE_PUBLISHABLE_KEY", None if production else DEV_STRIPE_PUBLISHABLE_KEY
            )
            or "",
            stripe_webhook_secrets=tuple(
                s.strip() for s in (secrets_raw or "").split(",") if s.strip()
            ),
            stripe_api_base=api_base,
            stripe_emulator=emulator,
            stripe_js_url=get("STRIPE_JS_URL", js_default) or js_default,
            public_base_url=(get("PUBLIC_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/"),
            allowed_origins=tuple(
                o.strip().rstrip("/")
                for o in (get("ALLOWED_ORIGINS", "") or "").split(",")
                if o.strip()
            ),
            currencies=_currencies_from_env(get("DONATIONS_CURRENCIES", None)),
            country_header=get("DONATIONS_COUNTRY_HEADER", None),
            country_currencies=_country_map_from_env(get("DONATIONS_COUNTRY_CURRENCIES", None)),
            instance_path=instance,
            smtp_host=get("SMTP_HOST", None),
            smtp_port=_int_from_env("SMTP_PORT", get("SMTP_PORT", None), 25),
            smtp_username=get("SMTP_USERNAME", None),
            smtp_password=get("SMTP_PASSWORD", None),
            smtp_starttls=(get("SMTP_STARTTLS", "") or "").lower() in ("1", "true", "yes"),
            # The newsroom's name as the sender's, unless MAIL_FROM says otherwise.
            mail_from=get("MAIL_FROM", None)
            or str(
                Address(
                    get("NEWSROOM_NAME", None) or cls.newsroom_name, addr_spec="donations@localhost"
                )
            ),
            outbox_path=Path(p) if (p := get("DONATIONS_OUTBOX_PATH", None)) else None,
            newsroom_name=get("NEWSROOM_NAME", None) or "Independent Newsroom",
            newsroom_address=get("NEWSROOM_ADDRESS", None) or "",
            receipt_tax_note=get("RECEIPT_TAX_NOTE", None),
            mail_reply_to=get("MAIL_REPLY_TO", None),
            newsroom_logo_url=get("NEWSROOM_LOGO_URL", None),
            newsroom_accent_color=get("NEWSROOM_ACCENT_COLOR", None) or cls.newsroom_accent_color,
            newsroom_support_email=get("NEWSROOM_SUPPORT_EMAIL", None),
            newsroom_url=get("NEWSROOM_URL", None),
            log_format=_log_format(get("LOG_FORMAT", None)),
            webhook_booking=_webhook_booking(get("WEBHOOK_BOOKING", None)),
            metrics_token=get("METRICS_TOKEN", None),
            checkout_limit_per_ip=get("CHECKOUT_LIMIT_PER_IP", None) or cls.checkout_limit_per_ip,
            checkout_limit_per_email=get("CHECKOUT_LIMIT_PER_EMAIL", None)
            or cls.checkout_limit_per_email,
            checkout_limit_per_contribution=get("CHECKOUT_LIMIT_PER_CONTRIBUTION", None)
            or cls.checkout_limit_per_contribution,
            checkout_limit_global=get("CHECKOUT_LIMIT_GLOBAL", None) or cls.checkout_limit_global,
            events_limit_per_address=get("EVENTS_LIMIT_PER_ADDRESS", None)
            or cls.events_limit_per_address,
            events_limit_per_address_actions=get("EVENTS_LIMIT_PER_ADDRESS_ACTIONS", None)
            or cls.events_limit_per_address_actions,
            trusted_proxies=_int_from_env("TRUSTED_PROXIES", get("TRUSTED_PROXIES", None), 0),
            captcha_provider=(get("CAPTCHA_PROVIDER", "") or "").lower() or None,
            captcha_site_key=get("CAPTCHA_SITE_KEY", None),
            captcha_secret_key=get("CAPTCHA_SECRET_KEY", None),
            captcha_verify_url=get("CAPTCHA_VERIFY_URL", None),
        )
        settings.validate()
        return settings

    def _validate_abuse_settings(self) -> None:
        _check_limits(self)

    def validate(self) -> None:
        """Refuse live Stripe keys always, and unsafe defaults in production."""
        for label, key in (
            ("STRIPE_SECRET_KEY", self.stripe_secret_key),
            ("STRIPE_PUBLISHABLE_KEY", self.stripe_publishable_key),
        ):
            if "_live_" in key:
                raise ConfigurationError(
                    f"{label} is a live-mode key; this service only runs in Stripe test mode"
                )
        if self.stripe_secret_key and not self.stripe_secret_key.startswith(
            ("sk_test_", "rk_test_")
        ):
            raise ConfigurationError("STRIPE_SECRET_KEY must be a test-mode key (sk_test_…)")
        self._validate_abuse_settings()
        _check_brand(self)
        if self.env != "production":
            return
        problems = []
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if not self.stripe_webhook_secrets:
            problems.append("STRIPE_WEBHOOK_SECRET must be set")
        if not self.stripe_secret_key or self.stripe_secret_key == DEV_STRIPE_SECRET_KEY:
            problems.append("STRIPE_SECRET_KEY must be set")
        if not self.stripe_publishable_key.startswith("pk_test_"):
            problems.append("STRIPE_PUBLISHABLE_KEY must be a test-mode key (pk_test_…)")
        if not self.smtp_host:
            problems.append("SMTP_HOST must be set (receipts and sign-in links are emailed)")
        if problems:
            raise ConfigurationError("; ".join(problems))


def _check_limits(self: Settings) -> None:
    from limits import parse_many

    for name, value in (
        ("CHECKOUT_LIMIT_PER_IP", self.checkout_limit_per_ip),
        ("CHECKOUT_LIMIT_PER_EMAIL", self.checkout_limit_per_email),
        ("CHECKOUT_LIMIT_PER_CONTRIBUTION", self.checkout_limit_per_contribution),
        ("CHECKOUT_LIMIT_GLOBAL", self.checkout_limit_global),
        ("EVENTS_LIMIT_PER_ADDRESS", self.events_limit_per_address),
        ("EVENTS_LIMIT_PER_ADDRESS_ACTIONS", self.events_limit_per_address_actions),
    ):
        try:
            parse_many(value)
        except ValueError as exc:
            raise ConfigurationError(f"{name} is not a rate limit like '10/minute': {exc}") from exc
    if self.trusted_proxies < 0:
        raise ConfigurationError("TRUSTED_PROXIES must be 0 or more")
    if self.captcha_provider is None:
        return
    if self.captcha_provider not in CAPTCHA_VERIFY_URLS:
        raise ConfigurationError(
            f"CAPTCHA_PROVIDER must be one of {', '.join(CAPTCHA_VERIFY_URLS)} (or unset)"
        )
    if not (self.captcha_site_key and self.captcha_secret_key):
        raise ConfigurationError(
            "CAPTCHA_SITE_KEY and CAPTCHA_SECRET_KEY must be set when CAPTCHA_PROVIDER is"
        )


ACCENT_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
EMAIL_ADDRESS = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_brand(self: Settings) -> None:
    """The brand settings end up in pages, a stylesheet and emails: only well-formed values."""
    if not ACCENT_COLOR.match(self.newsroom_accent_color):
        raise ConfigurationError(
            "NEWSROOM_ACCENT_COLOR must be a CSS hex colour like #0b4a8b "
            f"(got {self.newsroom_accent_color!r})"
        )
    if self.newsroom_support_email is not None and not EMAIL_ADDRESS.match(
        self.newsroom_support_email
    ):
        raise ConfigurationError(
            "NEWSROOM_SUPPORT_EMAIL must be an email address like help@newsroom.example"
        )
    logo = self.newsroom_logo_url
    if logo is not None and not (
        _is_web_url(logo) or (logo.startswith("/") and not logo.startswith("//"))
    ):
        raise ConfigurationError(
            "NEWSROOM_LOGO_URL must be an http(s) URL or a path on this service "
            "like /static/logo.svg"
        )
    if self.newsroom_url is not None and not _is_web_url(self.newsroom_url):
        raise ConfigurationError(
            "NEWSROOM_URL must be an http(s) URL like https://newsroom.example/"
        )


def _log_format(raw: str | None) -> str | None:
    if raw is not None and raw.lower() not in ("json", "text"):
        raise ConfigurationError("LOG_FORMAT must be json or text")
    return raw.lower() if raw else None


def _webhook_booking(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return "web"
    if raw.strip().lower() not in ("web", "worker"):
        raise ConfigurationError("WEBHOOK_BOOKING must be web or worker")
    return raw.strip().lower()


def _int_from_env(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a whole number") from exc


def _country_map_from_env(raw: str | None) -> dict[str, str]:
    """DONATIONS_COUNTRY_CURRENCIES: JSON {"CH": "chf", …} added to the default map."""
    mapping = default_country_currencies()
    if not raw:
        return mapping
    try:
        data = json.loads(raw)
        mapping.update({str(k).upper(): str(v).lower() for k, v in data.items()})
    except (ValueError, AttributeError) as exc:
        raise ConfigurationError(f"DONATIONS_COUNTRY_CURRENCIES is not valid: {exc}") from exc
    return mapping


def _currencies_from_env(raw: str | None) -> dict[str, CurrencyRule]:
    """DONATIONS_CURRENCIES: JSON {"usd": {"minimum": 100, "maximum": …, "fee_rate": "0.029",
    "fee_fixed": 30}, …} replacing the defaults for the currencies it names."""
    rules = default_currency_rules()
    if not raw:
        return rules
    try:
        data = json.loads(raw)
        for code, spec in data.items():
            base = rules.get(code.lower())
            rules[code.lower()] = CurrencyRule(
                code=code.lower(),
                minimum=int(spec.get("minimum", base.minimum if base else 100)),
                maximum=int(spec.get("maximum", base.maximum if base else 99_999_999)),
                fee_rate=Decimal(str(spec.get("fee_rate", base.fee_rate if base else "0.029"))),
                fee_fixed=int(spec.get("fee_fixed", base.fee_fixed if base else 30)),
            )
        for rule in rules.values():
            rule.check()
    except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
        raise ConfigurationError(f"DONATIONS_CURRENCIES is not valid: {exc}") from exc
    return rules
