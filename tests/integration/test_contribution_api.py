"""Bad input gets a clear problem+json error and changes nothing."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from donations import supporters
from donations.checkout.models import Contribution
from tests.conftest import Api, wait_for

GOOD = {"amount": 2500, "currency": "usd", "frequency": "one_off", "email": "a@example.org"}


def count(database):
    with database.sessions() as s:
        return s.scalar(select(func.count()).select_from(Contribution))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 99}, "amount"),  # below the usd minimum
        ({"amount": 1_000_001}, "amount"),  # above the maximum
        ({"amount": 25.5}, "amount"),  # never floats
        ({"amount": "2500"}, "amount"),
        ({"currency": "xyz"}, "currency"),
        ({"currency": "USD"}, "currency"),  # lowercase ISO 4217, as Stripe
        ({"frequency": "weekly"}, "frequency"),
        ({"email": "not-an-email"}, "email"),
        ({"cover_fees": "maybe"}, "cover_fees"),
        ({"attribution": {"placement": "sidebar"}}, "attribution"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_contributions_get_422_naming_the_field(api, database, change, field):
    r = api.post("/api/v1/contributions", json={**GOOD, **change})
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert field in r.json()["errors"]
    assert count(database) == 0


def test_malformed_json_and_wrong_content_type(api, database):
    r = api.post("/api/v1/contributions", data="{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.post(
        "/api/v1/contributions",
        data="amount=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    r = api.post(
        "/api/v1/contributions", data="x" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert count(database) == 0


def test_zero_decimal_currencies_use_whole_units(api, database):
    r = api.post("/api/v1/contributions", json={**GOOD, "currency": "jpy", "amount": 50})
    assert r.status_code == 422  # ¥50 is below the ¥100 minimum


def test_unknown_contributions_are_404(api):
    assert api.get("/api/v1/contributions/ctb_000000000000000000000000").status_code == 404
    assert api.get("/api/v1/contributions/nonsense").status_code == 404
    r = api.post("/api/v1/contributions/ctb_000000000000000000000000/subscribe", json={})
    assert r.status_code == 404


def test_every_response_carries_a_request_id(api):
    assert len(api.get("/healthz").headers["X-Request-ID"]) == 32
    echoed = api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    assert (
        api.get("/healthz", headers={"X-Request-ID": "bad id\x01"}).headers["X-Request-ID"]
        != "bad id"
    )


def test_stripe_unreachable_answers_502_and_leaves_no_contribution(app, database, settings):
    from donations.app import create_app
    from donations.stripe import gateway_from_settings

    down = settings.with_overrides(stripe_api_base="http://127.0.0.1:9")  # nothing listens
    client = create_app(down, database=database, gateway=gateway_from_settings(down)).test_client()
    r = client.post("/api/v1/contributions", json=GOOD)
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "reached" in r.json["detail"]
    assert count(database) == 0


def test_the_openapi_document_lists_every_endpoint(api):
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in (
        "/api/v1/contributions",
        "/api/v1/contributions/{contribution_id}",
        "/api/v1/contributions/{contribution_id}/subscribe",
        "/api/v1/admin/reports/summary",
        "/api/v1/admin/ledger/trial-balance",
    ):
        assert path in doc["paths"]
    docs = api.get("/docs/")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "cdn" not in docs.text.lower()


# --- the supporter token: only for whoever completed the payment ---------------------------------
def _contribution(client, cid, **headers):
    r = client.get(f"/api/v1/contributions/{cid}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _paid(api, cid):
    wait_for(lambda: _contribution(api, cid)["contribution"]["status"] == "succeeded")


def test_the_supporter_token_goes_only_to_whoever_completed_the_payment(
    api, database, settings, live_server
):
    started = api.post("/api/v1/contributions", json=GOOD).json()
    cid, secret = started["contribution"]["id"], started["stripe"]["client_secret"]
    assert _contribution(api, cid)["supporter_token"] is None  # not paid yet
    r = api.post(f"/api/v1/contributions/{cid}/confirm", json={"payment_method": "pm_card_visa"})
    assert r.status_code == 200, r.text
    _paid(api, cid)

    # The browser that started it (and got the client secret) gets the token…
    token = _contribution(api, cid)["supporter_token"]
    assert supporters.verify(settings.secret_key, token).kind == "one_off"
    # …anyone else who knows the id (it travels in thank-you URLs) does not,
    stranger = Api(live_server.url)
    body = _contribution(stranger, cid)
    assert body["contribution"]["status"] == "succeeded" and body["supporter_token"] is None
    # nor with a cookie of their own making, a wrong secret for the same intent, or junk;
    forged = Api(live_server.url)
    forged.http.cookies.set("donations_payer", "0" * 64, path=f"/api/v1/contributions/{cid}")
    assert _contribution(forged, cid)["supporter_token"] is None
    wrong = secret.rsplit("_", 1)[0] + "_" + "x" * 24
    for sent in (wrong, "pi_x_secret_y", "x" * 500):
        assert _contribution(stranger, cid, **{"X-Client-Secret": sent})["supporter_token"] is None
    # but a client that holds the intent's client secret and sends it does.
    sent = _contribution(stranger, cid, **{"X-Client-Secret": secret})["supporter_token"]
    assert supporters.verify(settings.secret_key, sent).kind == "one_off"


def test_a_recurring_supporter_token_needs_the_setup_intents_client_secret(
    api, database, settings, stripe_client, live_server
):
    body = {**GOOD, "frequency": "monthly", "email": "monthly@example.org"}
    started = api.post("/api/v1/contributions", json=body).json()
    cid, secret = started["contribution"]["id"], started["stripe"]["client_secret"]
    stripe_client.v1.setup_intents.confirm(
        secret.split("_secret_")[0], params={"payment_method": "pm_card_visa"}
    )
    assert api.post(f"/api/v1/contributions/{cid}/subscribe", json={}).status_code == 201
    _paid(api, cid)
    stranger = Api(live_server.url)
    assert _contribution(stranger, cid)["supporter_token"] is None
    token = _contribution(stranger, cid, **{"X-Client-Secret": secret})["supporter_token"]
    supporter = supporters.verify(settings.secret_key, token)
    assert supporter.kind == "recurring"
    # short-lived: thirty days, then the account page gives a fresh one
    later = datetime.now(UTC) + timedelta(days=31)
    assert supporters.verify(settings.secret_key, token, now=later) is None


def test_the_openapi_document_describes_the_supporter_token_and_how_to_get_it(api):
    doc = api.get("/openapi.json").json()
    get = doc["paths"]["/api/v1/contributions/{contribution_id}"]["get"]
    assert any(p["name"] == "X-Client-Secret" and p["in"] == "header" for p in get["parameters"])
    ref = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "contribution" in schema["properties"]
    assert "completed the payment" in schema["properties"]["supporter_token"]["description"]
