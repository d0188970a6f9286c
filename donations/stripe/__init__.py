"""The Stripe adapter: the only package that talks to Stripe.

- `client`: the SDK client from configuration, at the pinned API version, and the dialect;
- `gateway`: typed requests (the SDK's own TypedDicts) and gathering for the books;
- `localstripe`: the emulator's dialect (2017 shapes and parameters);
- `facts`: the project's own small types, parsed from either dialect;
- `errors`: the project's exceptions for Stripe's.
"""

from donations.stripe.client import API_VERSION, gateway_from_settings
from donations.stripe.errors import (
    GatewayError,
    NotFoundAtStripe,
    PaymentDeclined,
    SignatureError,
    StripeRejected,
    StripeUnavailable,
)
from donations.stripe.gateway import StripeGateway

__all__ = [
    "API_VERSION",
    "GatewayError",
    "NotFoundAtStripe",
    "PaymentDeclined",
    "SignatureError",
    "StripeGateway",
    "StripeRejected",
    "StripeUnavailable",
    "gateway_from_settings",
]
