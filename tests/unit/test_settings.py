import pytest

from donations.db import make_engine
from donations.settings import ConfigurationError, Settings

PRODUCTION = {
    "DONATIONS_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "STRIPE_SECRET_KEY": "sk_test_real_account",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_real_account",
    "STRIPE_WEBHOOK_SECRET": "whsec_a,whsec_b",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "SMTP_HOST": "smtp.newsroom.example",
}


def test_development_defaults_need_no_environment_at_all():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite:///")
    # Stripe itself (in test mode) unless told otherwise: the demo and the test suite point
    # at localstripe and say so with STRIPE_EMULATOR.
    assert settings.stripe_api_base is None and settings.stripe_emulator is None
    assert settings.stripe_js_url == "https://js.stripe.com/v3/"


def test_the_emulator_dialect_is_chosen_by_stripe_emulator_not_by_the_address():
    base = "http://127.0.0.1:8420"
    alone = Settings.from_env({"STRIPE_API_BASE": base})
    assert alone.stripe_api_base == base and alone.stripe_emulator is None
    assert alone.stripe_js_url == "https://js.stripe.com/v3/"
    emulated = Settings.from_env({"STRIPE_API_BASE": base, "STRIPE_EMULATOR": "localstripe"})
    assert emulated.stripe_emulator == "localstripe" and emulated.uses_stripe_emulator
    assert emulated.stripe_js_url == base + "/js.stripe.com/v3/"
    with pytest.raises(ConfigurationError, match="STRIPE_EMULATOR"):
        Settings.from_env({"STRIPE_API_BASE": base, "STRIPE_EMULATOR": "stripe-mock"})
    with pytest.raises(ConfigurationError, match="STRIPE_API_BASE"):
        Settings.from_env({"STRIPE_EMULATOR": "localstripe"})


def test_production_reads_every_contract_variable():
    settings = Settings.from_env({**PRODUCTION, "ALLOWED_ORIGINS": "https://a.org, https://b.org/"})
    assert settings.stripe_webhook_secrets == ("whsec_a", "whsec_b")
    assert settings.allowed_origins == ("https://a.org", "https://b.org")
    assert settings.stripe_api_base is None  # Stripe itself
    assert settings.stripe_js_url == "https://js.stripe.com/v3/"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_SECRET_KEY": "sk_live_123"}, "live"),
        ({"STRIPE_PUBLISHABLE_KEY": "pk_live_123"}, "live"),
        ({"SMTP_HOST": ""}, "SMTP_HOST"),
        ({"SMTP_PORT": "twenty-five"}, "SMTP_PORT"),
    ],
)
def test_production_refuses_unsafe_settings(change, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        Settings.from_env({**PRODUCTION, **change})


def test_live_keys_are_refused_in_every_environment():
    with pytest.raises(ConfigurationError, match="live"):
        Settings.from_env({"STRIPE_SECRET_KEY": "sk_live_abc"})


def test_currency_rules_can_be_configured_per_currency():
    settings = Settings.from_env(
        {"DONATIONS_CURRENCIES": '{"usd": {"minimum": 500, "fee_rate": "0.05", "fee_fixed": 0}}'}
    )
    assert settings.currencies["usd"].minimum == 500
    assert settings.currencies["usd"].charge_for(950, cover_fees=True) == (1000, 50)
    with pytest.raises(ConfigurationError):
        Settings.from_env({"DONATIONS_CURRENCIES": '{"usd": {"minimum": -1}}'})


def test_an_unknown_environment_name_is_refused():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"DONATIONS_ENV": "staging"})


def test_mail_goes_to_a_local_outbox_folder_unless_smtp_is_configured(tmp_path):
    local = Settings.from_env({"DONATIONS_INSTANCE_PATH": str(tmp_path)})
    assert local.smtp_host is None and local.mail_folder == tmp_path / "outbox"
    smtp = Settings.from_env(
        {"SMTP_HOST": "mail.example", "SMTP_PORT": "587", "SMTP_STARTTLS": "true"}
    )
    assert (smtp.smtp_host, smtp.smtp_port, smtp.smtp_starttls) == ("mail.example", 587, True)
    receipts = Settings.from_env(
        {"RECEIPT_TAX_NOTE": "No goods or services were provided.", "MAIL_REPLY_TO": "a@b.org"}
    )
    assert receipts.receipt_tax_note == "No goods or services were provided."
    assert receipts.mail_reply_to == "a@b.org"


def test_postgres_urls_in_herokus_spelling_are_read_as_postgresql():
    settings = Settings.from_env({"DATABASE_URL": "postgres://u:p@db.example:5432/donations"})
    assert settings.database_url == "postgresql://u:p@db.example:5432/donations"
    assert make_engine(settings.database_url).dialect.name == "postgresql"
    assert make_engine("postgres://u:p@db.example/d").dialect.driver == "psycopg"


def test_email_comes_from_the_newsroom_unless_mail_from_says_otherwise():
    assert Settings.from_env({}).mail_from == "Independent Newsroom <donations@localhost>"
    named = Settings.from_env({"NEWSROOM_NAME": 'Новая, "Газета"'})
    assert named.mail_from == '"Новая, \\"Газета\\"" <donations@localhost>'
    chosen = Settings.from_env({"NEWSROOM_NAME": "X", "MAIL_FROM": "News <news@example.org>"})
    assert chosen.mail_from == "News <news@example.org>"


def test_webhook_booking_is_web_or_worker_and_anything_else_is_named():
    assert Settings.from_env({}).webhook_booking == "web"
    assert Settings.from_env({"WEBHOOK_BOOKING": " Worker "}).webhook_booking == "worker"
    with pytest.raises(ConfigurationError, match="WEBHOOK_BOOKING must be web or worker"):
        Settings.from_env({"WEBHOOK_BOOKING": "both"})
