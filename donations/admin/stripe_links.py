"""Links from the admin to Stripe's dashboard, in test mode (live keys are refused in every
environment, so every object this service made is a test-mode one). One place for the URLs."""

from __future__ import annotations

DASHBOARD = "https://dashboard.stripe.com/test"

# Id prefix → the dashboard's page for that kind of object. A charge opens on its payment's
# page too. Others (SetupIntents, balance transactions) have no page of their own to link.
PAGES = {
    "pi_": "payments",
    "ch_": "payments",
    "py_": "payments",
    "sub_": "subscriptions",
    "in_": "invoices",
    "cus_": "customers",
}


def stripe_dashboard_url(object_id: str | None) -> str | None:
    """The dashboard page of a Stripe object, by its id, or None when it has none."""
    if not object_id:
        return None
    for prefix, page in PAGES.items():
        if object_id.startswith(prefix) and object_id[len(prefix) :].isalnum():
            return f"{DASHBOARD}/{page}/{object_id}"
    return None
