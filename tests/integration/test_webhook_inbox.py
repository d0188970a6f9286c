"""The webhook inbox for staff: what waits and what died, and who may put it back."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests

from donations.admin.models import AuditEntry
from donations.admin.tokens import create_token
from donations.webhooks.models import StripeEvent

# The contract, written here (not read from the views): who may do what.
ROLES = {
    ("GET", "/admin/webhooks"): {"viewer", "editor"},
    ("GET", "/api/v1/admin/webhooks"): {"viewer", "editor"},
    ("POST", "/api/v1/admin/webhooks/retry"): {"editor"},
}


@pytest.fixture
def dead_event(database):
    with database.transaction() as s:
        s.add(
            StripeEvent(
                id="evt_dead_1",
                type="payment_intent.succeeded",
                created=datetime(2026, 11, 30),
                status="dead",
                payload='{"id": "evt_dead_1", "type": "payment_intent.succeeded",'
                ' "data": {"object": {"id": "pi_gone"}}}',
                attempts=20,
                last_error="stripe: Stripe could not be reached",
            )
        )
    return "evt_dead_1"


def bearer(database, role):
    with database.transaction() as s:
        token = create_token(s, f"{role}-inbox", role)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.mark.parametrize(("method", "path"), sorted(ROLES))
@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_the_inbox_routes_follow_the_role_table(api, database, dead_event, role, method, path):
    http = bearer(database, role)
    kw = {"json": {"events": ["evt_not_dead"]}} if method == "POST" else {}
    r = http.request(method, api.base + path, timeout=10, allow_redirects=False, **kw)
    allowed = role in ROLES[(method, path)]
    assert (r.status_code == 403) is not allowed, (role, method, path, r.status_code)
    assert r.status_code < 500
    if allowed and method == "GET":
        assert r.status_code == 200 and "evt_dead_1" in r.text


def test_staff_see_the_dead_event_with_its_error_and_an_editor_retries_it_audited(
    api, database, dead_event
):
    viewer, editor = bearer(database, "viewer"), bearer(database, "editor")
    listed = viewer.get(f"{api.base}/api/v1/admin/webhooks?status=dead", timeout=10).json()
    assert listed["dead"] == 1
    (event,) = listed["events"]
    assert event["id"] == dead_event and event["last_error"].startswith("stripe:")
    r = editor.post(
        f"{api.base}/api/v1/admin/webhooks/retry", json={"events": [dead_event]}, timeout=10
    )
    assert r.status_code == 200 and r.json() == {"queued": 1}
    with database.sessions() as s:
        row = s.get(StripeEvent, dead_event)
        # back in the queue; Stripe (localstripe) knows no pi_gone: booked as ignored
        assert row.status in ("pending", "booked") and row.attempts == 0
        entry = s.query(AuditEntry).filter_by(action="webhooks.retry").one()
        assert entry.actor.startswith("token:") and entry.after == {"queued": 1}
