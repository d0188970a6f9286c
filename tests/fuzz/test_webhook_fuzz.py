"""POST /webhooks/stripe with *correctly signed* but arbitrary events: never a 5xx.

Schemathesis (test_openapi_fuzz.py) cannot sign bodies, so there every call stops at the
signature (400). Here the signature verifies and the payload varies: every handled event type
and some unknown ones, with objects whose fields are missing, mistyped or point at nothing in
localstripe. The answer must be 200 or a 400 problem; 503 (Stripe unreachable) is allowed
only with Retry-After, since Stripe then retries.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donations.webhooks.inbox import HANDLED_TYPES
from tests.conftest import sign

pytestmark = [pytest.mark.fuzz, pytest.mark.stripe]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=12),
    st.sampled_from(["ch_x", "pi_x", "in_x", "sub_x", "re_x", "dp_x", "po_x", "usd", "eur"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
KEYS = [
    "id",
    "object",
    "amount",
    "amount_refunded",
    "currency",
    "status",
    "charge",
    "payment_intent",
    "invoice",
    "customer",
    "subscription",
    "metadata",
    "created",
    "balance_transaction",
    "reason",
    "items",
    "plan",
    "current_period_end",
    "arrival_date",
]
objects = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
events = st.fixed_dictionaries(
    {
        "id": st.text(max_size=10).map(lambda s: "evt_" + s),
        "type": st.sampled_from(sorted(HANDLED_TYPES)) | st.text(max_size=10),
        "data": st.fixed_dictionaries({"object": objects}),
    },
    optional={"created": st.integers(min_value=-1, max_value=2**40), "livemode": st.booleans()},
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(event=events)
def test_signed_events_never_5xx(api: Any, event: dict[str, Any]) -> None:
    # A fresh id each time: a replayed example must not be answered as a duplicate.
    event = {**event, "id": f"{event['id']}_{uuid.uuid4().hex}"}
    payload = json.dumps(event)
    response = api.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
    )
    assert response.status_code in (200, 400, 503), (response.status_code, response.text)
    if response.status_code == 503:
        assert response.headers.get("Retry-After")
    if response.status_code != 200:
        assert response.headers["Content-Type"] == "application/problem+json"
