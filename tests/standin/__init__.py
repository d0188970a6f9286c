"""An in-process stand-in for Stripe's HTTP API at the SDK's pinned version (2026-10-28.endive).

standin = StripeStandin(settlement_currency="eur", webhook_url=url, webhook_secret=secret)
client = stripe.StripeClient("sk_test_x", base_addresses={"api": standin.start().base},
                             max_network_retries=0)
...  # the service pays, subscribes, refunds through `client`
standin.renew(sub_id); standin.dispute(charge_id); standin.deliver(); standin.stop()
"""

from .model import API_VERSION, StripeError
from .server import StripeStandin

__all__ = ["API_VERSION", "StripeError", "StripeStandin"]
