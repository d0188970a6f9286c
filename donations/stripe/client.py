"""The SDK client from configuration, and which dialect speaks through it.

The API version is set explicitly to the one the SDK pins (`stripe._api_version`): the
shapes the adapter parses are that version's. Upgrading the SDK is a deliberate change
(tests/unit/test_stripe_adapter.py fails until API_VERSION is updated with it).
"""

from __future__ import annotations

from typing import Any

import stripe

from donations.stripe.gateway import StripeGateway

API_VERSION = "2026-10-28.endive"
EMULATORS = ("localstripe",)


def make_client(settings: Any) -> stripe.StripeClient:
    """One StripeClient: the configured key and base, the pinned version, no global state."""
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    emulated = settings.stripe_emulator is not None
    return stripe.StripeClient(
        settings.stripe_secret_key,
        stripe_version=API_VERSION,
        base_addresses=base,  # type: ignore[arg-type]
        # localstripe ignores Idempotency-Key, so a retry would create a second object there;
        # against Stripe (or a stand-in speaking its API) the SDK's idempotent retries are safe.
        max_network_retries=0 if emulated else 2,
        http_client=stripe.RequestsClient(timeout=20),
    )


def gateway_from_settings(settings: Any) -> StripeGateway:
    """The gateway for the configured dialect: Stripe's API unless STRIPE_EMULATOR says
    which emulator answers (its quirks are switched on only then)."""
    cls: type[StripeGateway] = StripeGateway
    if settings.stripe_emulator == "localstripe":
        from donations.stripe.localstripe import LocalstripeGateway

        cls = LocalstripeGateway
    return cls(
        make_client(settings),
        publishable_key=settings.stripe_publishable_key,
        webhook_secrets=settings.stripe_webhook_secrets,
        webhook_tolerance=settings.webhook_tolerance,
    )
