"""The adapter's own exceptions: what callers catch instead of the SDK's."""

from __future__ import annotations

import logging

import stripe

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Stripe could not do what was asked."""

    status = 502
    title = "Payment provider error"


class PaymentDeclined(GatewayError):
    """The card was declined (or failed authentication): the donor can try another card."""

    status = 402
    title = "Payment declined"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StripeUnavailable(GatewayError):
    """Stripe could not be reached, or answered with a server error."""

    status = 502
    title = "Payment provider unavailable"


class StripeRejected(GatewayError):
    """Stripe refused the request (a configuration or programming error on our side)."""

    status = 502
    title = "Payment provider refused the request"


class NotFoundAtStripe(GatewayError):
    status = 404
    title = "Not found at the payment provider"


class SignatureError(Exception):
    """A webhook's Stripe-Signature does not verify with any configured secret."""


def translate(exc: stripe.StripeError) -> GatewayError:
    """The project's exception for one of the SDK's (logged without secrets or bodies)."""
    log.warning(
        "stripe call failed: %s (%s, http %s)",
        type(exc).__name__,
        getattr(exc, "code", None),
        getattr(exc, "http_status", None),
    )
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(exc.user_message or "Your card was declined.", exc.code)
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnavailable("Stripe could not be reached; please try again in a moment.")
    status = exc.http_status or 0
    if status == 402:
        return PaymentDeclined(exc.user_message or "Your card was declined.", exc.code)
    if status == 404 or getattr(exc, "code", None) == "resource_missing":
        return NotFoundAtStripe(exc.user_message or "No such object at Stripe.")
    if status >= 500 or status == 0 or isinstance(exc, stripe.RateLimitError):
        return StripeUnavailable("Stripe is not answering properly; please try again.")
    if isinstance(exc, stripe.AuthenticationError):
        return StripeRejected("The service's Stripe credentials were refused.")
    return StripeRejected("Stripe refused the request.")
