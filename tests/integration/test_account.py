"""Donors' accounts over real HTTP against localstripe: magic links (identical answers for
known and unknown emails, single use, expiry, tampering, throttling), the account page,
receipts and statements, and self-service for recurring gifts reflected in the books."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import pytest
from sqlalchemy import func, select, update

from donations.checkout.models import Contribution, Donor, Subscription
from donations.db import new_id, utcnow
from donations.donors import links
from donations.donors.models import DonorLink, DonorSession
from donations.ledger import accounts as a
from donations.ledger import journal, postings
from donations.mail.models import OutboxEmail
from tests.conftest import Api, booked_outcome, make_event, post_event, wait_for

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KNOWN = "monthly-donor@example.org"
UNKNOWN = "nobody-here@example.org"


@pytest.fixture(autouse=True)
def _fresh_limits(app: Any) -> Iterator[None]:
    app.extensions["donations"].sign_in_limiter.reset()
    yield
    drain_link_requests(app)


def drain_link_requests(app: Any) -> None:
    """Wait for the sign-in links asked for so far (written after each answer)."""
    from donations.donors.views import LINK_REQUESTS

    queue = app.extensions.get(LINK_REQUESTS)
    assert queue is None or queue.drain(timeout=30)


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def form_token(api: Api) -> str:
    r = api.get("/account")
    assert r.status_code == 200
    return csrf_of(r.text)


def ask_for_link(api: Api, address: str, **headers: str) -> Any:
    token = form_token(api)
    return api.post(
        "/account/sign-in",
        data={"email": address, "csrf_token": token},
        headers=headers,
        allow_redirects=False,
    )


def links_for(database: Any, donor_email: str) -> list[str]:
    """The sign-in URLs queued for a donor: from the outbox payload, or (once the sender has
    delivered and cleared it) from the message it wrote to the local mail folder."""
    with database.sessions() as s:
        donor = s.scalar(select(Donor).where(Donor.email == donor_email))
        if donor is None:
            return []
        rows = s.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.donor_id == donor.id, OutboxEmail.kind == "sign_in_link")
            .order_by(OutboxEmail.id)
        ).all()
    urls = [row.payload["url"] for row in rows if row.payload and row.payload.get("url")]
    if len(urls) < len(rows):  # the sender delivered some: read them back from its folder
        with database.sessions() as s:
            ours = set(s.scalars(select(DonorLink.id).where(DonorLink.donor_id == donor.id)))
        urls = sorted(
            set(urls) | {url for url in _mailed_links(donor_email) if _link_id(url) in ours}
        )
    return urls


def _link_id(url: str) -> str | None:
    token = url.rsplit("/", 1)[1]
    parsed = links.read_token(MAIL_FOLDERS[1], token)
    return links.digest(parsed.nonce) if parsed else None


def _mailed_links(donor_email: str) -> list[str]:
    found = []
    for path in MAIL_FOLDERS[:1]:
        for eml in sorted(path.glob("*.eml")) if path.exists() else []:
            msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
            if donor_email not in str(msg["To"]):
                continue
            body = msg.get_body(preferencelist=("plain",))
            text = body.get_content() if body else ""
            found += re.findall(r"https?://\S+/account/sign-in/[A-Za-z0-9._-]+", text)
    return found


MAIL_FOLDERS: list[Any] = []


@pytest.fixture(autouse=True)
def _mail_folder(settings: Any) -> None:
    MAIL_FOLDERS[:] = [settings.mail_folder, settings.secret_key]


def the_link(database: Any, donor_email: str) -> str:
    return wait_for(lambda: links_for(database, donor_email))[-1]


def path_of(url: str) -> str:
    return "/account/" + url.split("/account/", 1)[1]


def follow(api: Api, url: str) -> Any:
    """What a donor does: open the link, press Continue."""
    page = api.get(path_of(url))
    if page.status_code != 200:
        return page
    return api.post(path_of(url), data={"csrf_token": csrf_of(page.text)}, allow_redirects=False)


def sign_in(api: Api, database: Any, donor_email: str) -> str:
    """Sign in by link; answers the session's CSRF token (from the account page)."""
    assert ask_for_link(api, donor_email).status_code == 200
    r = follow(api, the_link(database, donor_email))
    assert r.status_code == 303 and r.headers["Location"].endswith("/account"), r.text
    page = api.get("/account")
    assert "Your contributions" in page.text
    return csrf_of(page.text)


def confirm_setup(stripe_client: Any, client_secret: str, pm: str = "pm_card_visa") -> Any:
    return stripe_client.v1.setup_intents.confirm(
        client_secret.split("_secret_")[0], params={"payment_method": pm}
    )


def contribute(api: Api, database: Any, stripe_client: Any, address: str, **body: Any) -> Any:
    """A paid contribution over the public API (monthly by default)."""
    payload = {
        "amount": 1000,
        "currency": "usd",
        "frequency": "monthly",
        "email": address,
        "cover_fees": False,
        **body,
    }
    started = api.post("/api/v1/contributions", json=payload).json()
    cid = started["contribution"]["id"]
    if payload["frequency"] == "one_off":
        r = api.post(
            f"/api/v1/contributions/{cid}/confirm", json={"payment_method": "pm_card_visa"}
        )
    else:
        confirm_setup(stripe_client, started["stripe"]["client_secret"])
        r = api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
    assert r.status_code in (200, 201), r.text

    def paid() -> Contribution | None:
        with database.sessions() as s:
            c = s.get(Contribution, cid)
            return c if c.status == "succeeded" else None

    return wait_for(paid)


def subscription(database: Any, sub_id: str) -> Subscription:
    with database.sessions() as s:
        return s.get(Subscription, sub_id)


QUEUED: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def _record_queued_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep what self-service queues: the sender clears a payload once it has sent it."""
    from donations.donors import service

    real = service.enqueue
    QUEUED.clear()

    def recording(session: Any, **kw: Any) -> bool:
        QUEUED.append(kw)
        return real(session, **kw)

    monkeypatch.setattr(service, "enqueue", recording)


def changes(database: Any, sub: Subscription) -> list[dict[str, Any]]:
    """The subscription_changed payloads queued for this subscription (each also a row)."""
    with database.sessions() as s:
        rows = s.scalar(
            select(func.count())
            .select_from(OutboxEmail)
            .where(
                OutboxEmail.kind == "subscription_changed",
                OutboxEmail.contribution_id == sub.contribution_id,
            )
        )
    queued = [
        kw["payload"]
        for kw in QUEUED
        if kw["kind"] == "subscription_changed" and kw["contribution_id"] == sub.contribution_id
    ]
    assert rows == len(queued)
    return queued


def balanced(database: Any) -> bool:
    with database.sessions() as s:
        return journal.trial_balance(s)[1]


@pytest.fixture
def monthly(api, database, stripe_client) -> Contribution:
    return contribute(api, database, stripe_client, KNOWN)


def comparable(r: Any) -> tuple[int, str, dict[str, str]]:
    ignored = {"set-cookie", "x-request-id", "date", "content-length"}
    headers = {k.lower(): v for k, v in r.headers.items() if k.lower() not in ignored}
    return r.status_code, r.text, headers


# --- asking for a link ----------------------------------------------------------------------------
def test_asking_for_a_link_answers_the_same_for_known_and_unknown_emails(
    monthly, api, database, settings
):
    known = ask_for_link(api, KNOWN)
    unknown = ask_for_link(api, UNKNOWN)
    assert known.status_code == 200
    assert comparable(known) == comparable(unknown)
    assert "Check your inbox" in known.text
    assert len(the_link(database, KNOWN).split("/account/sign-in/")) == 2
    with database.sessions() as s:
        rows = s.scalars(select(OutboxEmail).where(OutboxEmail.kind == "sign_in_link")).all()
        assert [r.donor_id for r in rows] == [monthly.donor_id]
        assert s.scalar(select(func.count()).select_from(DonorLink)) == 1
        link = s.scalars(select(DonorLink)).one()
        assert link.expires_at - link.created_at == timedelta(minutes=30)
    assert the_link(database, KNOWN).startswith(f"{settings.public_base_url}/account/sign-in/")


def test_an_erased_donor_gets_no_link(monthly, api, database, app):
    with database.transaction() as s:
        s.execute(update(Donor).values(erased_at=utcnow()))
    r = ask_for_link(api, KNOWN)
    assert r.status_code == 200 and "Check your inbox" in r.text
    drain_link_requests(app)
    with database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DonorLink)) == 0


def test_asking_without_the_form_token_is_refused_and_sends_nothing(monthly, api, database, app):
    api.get("/account")
    r = api.post("/account/sign-in", data={"email": KNOWN}, allow_redirects=False)
    assert r.status_code == 403
    drain_link_requests(app)
    with database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DonorLink)) == 0


def test_throttling_per_email_answers_the_same_for_known_and_unknown(monthly, api, database, app):
    answers = {}
    for address in (KNOWN, UNKNOWN):
        codes = [
            ask_for_link(api, address, **{"X-Forwarded-For": "x"}).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        answers[address] = ask_for_link(api, address)
    assert comparable(answers[KNOWN]) == comparable(answers[UNKNOWN])
    assert answers[KNOWN].status_code == 429
    assert int(answers[KNOWN].headers["Retry-After"]) > 0
    assert "Check your inbox" in answers[KNOWN].text
    drain_link_requests(app)
    assert len(links_for(database, KNOWN)) == 3  # none sent past the limit


def test_throttling_per_address_covers_every_email(monthly, api, database, app):
    for i in range(20):
        assert ask_for_link(api, f"someone-{i}@example.org").status_code == 200
    known, unknown = ask_for_link(api, KNOWN), ask_for_link(api, UNKNOWN)
    assert known.status_code == unknown.status_code == 429
    assert comparable(known) == comparable(unknown)
    drain_link_requests(app)
    assert links_for(database, KNOWN) == []


# --- following a link -----------------------------------------------------------------------------
def test_a_link_signs_in_once_and_then_is_refused(monthly, api, database, live_server):
    ask_for_link(api, KNOWN)
    url = the_link(database, KNOWN)
    # a mail scanner's GET does not use it up
    for _ in range(2):
        assert Api(live_server.url).get(path_of(url)).status_code == 200
    r = follow(api, url)
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    assert "donations_donor=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert KNOWN in api.get("/account").text
    with database.sessions() as s:
        assert s.scalars(select(DonorLink)).one().used_at is not None
        assert s.scalar(select(func.count()).select_from(DonorSession)) == 1

    other = Api(live_server.url)
    reused = follow(other, url)
    assert reused.status_code == 410
    assert "expired or was already used" in reused.text
    # a POST straight to a used link, with a valid form token, is refused too
    token = form_token(other)
    again = other.post(path_of(url), data={"csrf_token": token}, allow_redirects=False)
    assert again.status_code == 410
    assert "donations_donor" not in again.headers.get("Set-Cookie", "")


def test_an_expired_link_is_refused(monthly, api, database):
    ask_for_link(api, KNOWN)
    url = the_link(database, KNOWN)
    with database.transaction() as s:
        s.execute(update(DonorLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = follow(api, url)
    assert r.status_code == 410 and "expired or was already used" in r.text


@pytest.mark.parametrize("how", ["tampered", "other_donor", "unknown_nonce", "other_salt", "junk"])
def test_a_forged_or_tampered_link_is_refused(monthly, api, database, settings, how):
    from itsdangerous import URLSafeTimedSerializer

    ask_for_link(api, KNOWN)
    url = the_link(database, KNOWN)
    token = url.rsplit("/", 1)[1]
    data = links._serializer(settings.secret_key).loads(token)
    match how:
        case "tampered":
            forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        case "other_donor":
            forged = links._serializer(settings.secret_key).dumps({**data, "d": "don_other"})
        case "unknown_nonce":
            forged = links._serializer(settings.secret_key).dumps({**data, "n": "x" * 43})
        case "other_salt":
            forged = URLSafeTimedSerializer(settings.secret_key, salt="donations.supporter").dumps(
                data
            )
        case _:
            forged = "not-a-token"
    r = follow(api, url.replace(token, forged))
    assert r.status_code == 410 and "expired or was already used" in r.text
    # the real link still works afterwards
    assert follow(api, url).status_code == 303


def test_a_link_signed_longer_ago_than_it_lives_is_refused(monthly, api, database, settings):
    """Even with its row still unused and unexpired, the signature's age alone refuses it."""
    import time

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 31 * 60

    nonce = "n" * 43
    with database.transaction() as s:
        s.add(
            DonorLink(
                id=links.digest(nonce),
                donor_id=monthly.donor_id,
                expires_at=utcnow() + timedelta(minutes=30),
            )
        )
    old = URLSafeTimedSerializer(settings.secret_key, salt=links.SALT, signer=Earlier)
    token = old.dumps({"n": nonce, "d": monthly.donor_id})
    r = follow(api, f"{api.base}/account/sign-in/{token}")
    assert r.status_code == 410
    fresh = links._serializer(settings.secret_key).dumps({"n": nonce, "d": monthly.donor_id})
    assert follow(api, f"{api.base}/account/sign-in/{fresh}").status_code == 303


def test_signing_in_again_rotates_the_donor_session(monthly, api, database, live_server):
    sign_in(api, database, KNOWN)
    old = api.http.cookies["donations_donor"]
    first = the_link(database, KNOWN)
    assert ask_for_link(Api(live_server.url), KNOWN).status_code == 200
    second = wait_for(lambda: [u for u in links_for(database, KNOWN) if u != first])[0]
    assert follow(api, second).status_code == 303  # the signed-in browser uses a new link
    new = api.http.cookies["donations_donor"]
    assert new != old
    with database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DonorSession)) == 1
    stale = Api(live_server.url)
    stale.http.cookies.set("donations_donor", old, path="/account")
    r = stale.get("/account", allow_redirects=False)
    assert "Email me a sign-in link" in r.text
    assert KNOWN in api.get("/account").text


def test_signing_out_ends_the_session(monthly, api, database):
    csrf = sign_in(api, database, KNOWN)
    assert api.post("/account/sign-out", data={}, allow_redirects=False).status_code == 403
    r = api.post("/account/sign-out", data={"csrf_token": csrf}, allow_redirects=False)
    assert r.status_code == 303
    assert "Email me a sign-in link" in api.get("/account").text
    with database.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DonorSession)) == 0


# --- the account page, receipts, statements ----------------------------------------------------
def test_the_account_page_lists_the_donors_contributions_and_no_one_elses(
    monthly, api, database, stripe_client, live_server
):
    other = contribute(
        api, database, stripe_client, "someone-else@example.org", frequency="one_off", amount=777
    )
    sign_in(api, database, KNOWN)
    page = api.get("/account").text
    assert monthly.id in page and other.id not in page
    assert "$10.00" in page and "monthly" in page
    assert f"/account/receipts/{monthly.id}" in page
    assert 'id="account-config"' in page and '"supporter_token": "' in page
    receipt = api.get(f"/account/receipts/{monthly.id}")
    assert receipt.status_code == 200 and "$10.00" in receipt.text and monthly.id in receipt.text
    assert api.get(f"/account/receipts/{other.id}").status_code == 404
    assert api.get("/account/receipts/ctb_" + "0" * 24).status_code == 404
    # signed out: no receipts, no statements, only the sign-in form
    anon = Api(live_server.url)
    r = anon.get(f"/account/receipts/{monthly.id}", allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/account")
    assert anon.get("/account/statement", allow_redirects=False).status_code == 303


def test_the_account_page_issues_a_recurring_supporter_token(monthly, api, database, settings):
    from donations import supporters

    sign_in(api, database, KNOWN)
    token = re.search(r'"supporter_token": "([^"]+)"', api.get("/account").text).group(1)
    assert supporters.verify(settings.secret_key, token).kind == "recurring"
    # short-lived: a month, renewed at each visit of the account page
    later = datetime.now(UTC) + timedelta(days=29)
    assert supporters.verify(settings.secret_key, token, now=later) is not None
    assert supporters.verify(settings.secret_key, token, now=later + timedelta(days=2)) is None


def seed_history(database: Any, donor_email: str, year: int = 2024) -> tuple[str, dict[str, int]]:
    """Payments, a renewal and a refund in two currencies in one year, plus noise outside."""
    with database.transaction() as s:
        donor = Donor(id=new_id("don"), email=donor_email)
        s.add(donor)
        s.flush()

        def paid(amount: int, currency: str, day: datetime, kind: str = a.PAYMENT_ONE_OFF) -> str:
            c = Contribution(
                id=new_id("ctb"),
                status="succeeded",
                frequency="one_off" if kind == a.PAYMENT_ONE_OFF else "monthly",
                currency=currency,
                amount=amount,
                total=amount,
                donor_id=donor.id,
                succeeded_at=day,
            )
            s.add(c)
            s.flush()
            journal.post(
                s,
                key=f"payment:ch_{c.id}",
                kind=kind,
                currency=currency,
                occurred_at=day,
                stripe_object_id=f"ch_{c.id}",
                contribution_id=c.id,
                lines=postings.payment(
                    amount,
                    amount,
                    0,
                    currency=currency,
                    settled=amount,
                    settlement_currency=currency,
                    recurring=kind != a.PAYMENT_ONE_OFF,
                ),
            )
            return c.id

        eur = paid(2500, "eur", datetime(year, 3, 1, 12))
        paid(1234, "usd", datetime(year, 1, 1, 0, 0, 1))
        paid(999, "usd", datetime(year, 12, 31, 23, 59), a.PAYMENT_RECURRING)
        paid(5000, "usd", datetime(year - 1, 12, 31, 23, 59))  # outside the range
        paid(700, "usd", datetime(year + 1, 1, 1, 0, 0))  # outside the range
        journal.post(
            s,
            key=f"refund:re_{eur}",
            kind=a.REFUND,
            currency="eur",
            occurred_at=datetime(year, 4, 2, 9),
            stripe_object_id=f"re_{eur}",
            contribution_id=eur,
            lines=postings.returned(
                a.REFUNDS,
                1000,
                currency="eur",
                settled=1000,
                at_rate=1000,
                settlement_currency="eur",
            ),
        )
    return donor.id, {"eur": 1500, "usd": 2233}


def test_the_statement_totals_each_currency_exactly_with_refunds_as_negative_lines(
    api, database, live_server
):
    _, expected = seed_history(database, "history@example.org")
    contribute_none = Api(live_server.url)
    assert contribute_none.get("/account/statement").status_code == 200  # the sign-in form
    sign_in(api, database, "history@example.org")
    r = api.get("/account/statement?from=2024-01-01&to=2024-12-31")
    assert r.status_code == 200 and "@media print" not in r.text  # styles are in site.css
    totals = dict(re.findall(r'data-total-currency="(\w+)" data-total="(-?\d+)"', r.text))
    assert {k: int(v) for k, v in totals.items()} == expected
    amounts = [int(x) for x in re.findall(r'data-amount="(-?\d+)"', r.text)]
    assert sorted(amounts) == sorted([1234, 2500, -1000, 999])
    assert "€" in r.text and "$22.33" in r.text
    # a range with nothing in it, and bad ranges
    assert "No payments" in api.get("/account/statement?from=2020-01-01&to=2020-12-31").text
    assert api.get("/account/statement?from=2024-12-31&to=2024-01-01").status_code == 422
    assert api.get("/account/statement?from=nonsense&to=2024-01-01").status_code == 422


def test_the_statement_defaults_to_last_year_when_the_donor_gave_then(api, database):
    last_year = utcnow().year - 1
    _, expected = seed_history(database, "history@example.org", year=last_year)
    sign_in(api, database, "history@example.org")
    text = api.get("/account/statement").text
    assert f'data-from="{last_year}-01-01" data-to="{last_year}-12-31"' in text
    assert f"January 1, {last_year} to December 31, {last_year}" in text
    totals = dict(re.findall(r'data-total-currency="(\w+)" data-total="(-?\d+)"', text))
    assert {k: int(v) for k, v in totals.items()} == expected


def test_the_statement_defaults_to_this_year_without_gifts_last_year(api, database):
    this_year = utcnow().year
    seed_history(database, "history@example.org", year=this_year - 3)
    sign_in(api, database, "history@example.org")
    text = api.get("/account/statement").text
    assert f'data-from="{this_year}-01-01" data-to="{this_year}-12-31"' in text


def test_another_donors_statement_is_not_shown(api, database, monthly):
    seed_history(database, "history@example.org")
    sign_in(api, database, KNOWN)
    text = api.get("/account/statement?from=2024-01-01&to=2024-12-31").text
    assert "No payments" in text


# --- self-service ---------------------------------------------------------------------------
def sub_of(monthly: Contribution, database: Any) -> Subscription:
    with database.sessions() as s:
        return s.scalar(select(Subscription).where(Subscription.contribution_id == monthly.id))


def test_cancelling_at_the_period_end_keeps_it_active_until_then(
    monthly, api, database, stripe_client
):
    csrf = sign_in(api, database, KNOWN)
    sub = sub_of(monthly, database)
    page = api.get(f"/account/subscriptions/{sub.id}/cancel").text
    assert 'id="offer-lower"' in page and 'id="offer-annual"' in page and "$5.00" in page
    r = api.post(
        f"/account/subscriptions/{sub.id}/cancel",
        data={"csrf_token": csrf, "when": "period_end"},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert "will end on" in api.get("/account").text
    row = subscription(database, sub.id)
    assert (row.status, row.cancel_at_period_end) == ("active", True)
    assert stripe_client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True
    assert [c["change"] for c in changes(database, sub)] == ["cancel_at_period_end"]
    # Stripe's later customer.subscription.updated finds the row as it says
    event = make_event("customer.subscription.updated", {"id": sub.id, "object": "subscription"})
    assert post_event(api, event).status_code == 200
    assert subscription(database, sub.id).cancel_at_period_end is True
    assert balanced(database)


def test_cancelling_now_ends_it_and_the_deletion_webhook_changes_nothing(
    monthly, api, database, stripe_client
):
    csrf = sign_in(api, database, KNOWN)
    sub = sub_of(monthly, database)
    r = api.post(
        f"/account/subscriptions/{sub.id}/cancel",
        data={"csrf_token": csrf, "when": "now"},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert "is canceled" in api.get("/account").text
    row = subscription(database, sub.id)
    assert row.status == "canceled" and row.canceled_at is not None
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert [c["change"] for c in changes(database, sub)] == ["canceled"]
    # localstripe delivers customer.subscription.deleted itself; a signed replay too
    for type_ in ("customer.subscription.deleted", "customer.subscription.updated"):
        assert post_event(api, make_event(type_, {"id": sub.id, "object": "subscription"})).ok
    row2 = subscription(database, sub.id)
    assert (row2.status, row2.canceled_at) == ("canceled", row.canceled_at)
    with database.sessions() as s:
        assert s.get(Contribution, monthly.id).status == "succeeded"
    assert balanced(database)
    # nothing left to change
    again = api.post(
        f"/account/subscriptions/{sub.id}/amount",
        data={"csrf_token": csrf, "amount": "5"},
        allow_redirects=False,
    )
    assert again.status_code == 303
    assert "has ended" in api.get("/account").text


def test_changing_the_amount_bills_the_new_amount_at_the_next_renewal(
    monthly, api, database, stripe_client
):
    csrf = sign_in(api, database, KNOWN)
    sub = sub_of(monthly, database)
    for bad in ("0.50", "abc", "10", "1000000000"):  # below the minimum, junk, unchanged, too much
        r = api.post(
            f"/account/subscriptions/{sub.id}/amount",
            data={"csrf_token": csrf, "amount": bad},
            allow_redirects=False,
        )
        assert r.status_code == 303
        assert 'data-flash="error"' in api.get("/account").text, bad
    assert subscription(database, sub.id).amount == 1000
    r = api.post(
        f"/account/subscriptions/{sub.id}/amount",
        data={"csrf_token": csrf, "amount": "7.50"},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert "now $7.50 monthly" in api.get("/account").text
    row = subscription(database, sub.id)
    assert (row.amount, row.interval, row.status) == (750, "month", "active")
    stripe_sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert stripe_sub["items"].data[0].plan.amount == 750
    assert changes(database, sub)[-1] == {
        "change": "amount",
        "amount": 750,
        "currency": "usd",
        "interval": "month",
        "effective": row.current_period_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    post_event(
        api, make_event("customer.subscription.updated", {"id": sub.id, "object": "subscription"})
    )
    assert subscription(database, sub.id).amount == 750
    # the next renewal is charged, and booked, at the new amount
    invoice = stripe_client.v1.invoices.create(
        params={"customer": stripe_sub.customer, "subscription": sub.id}
    )
    stripe_client.v1.invoices.pay(invoice.id)
    paid = make_event("invoice.paid", {"id": invoice.id, "object": "invoice"})
    booked = post_event(api, paid)
    assert booked.status_code == 200, booked.text
    outcome = booked_outcome(database, paid["id"])
    assert "booked payment" in outcome or "already" in outcome, outcome
    with database.sessions() as s:
        renewal = s.scalar(select(Contribution).where(Contribution.stripe_invoice_id == invoice.id))
        assert renewal is not None and renewal.parent_id == monthly.id
        assert (renewal.amount, renewal.fee_covered, renewal.total) == (750, 0, 750)
        assert (
            journal.account_total(s, a.GIFTS_RECURRING, "usd", contribution_id=renewal.id) == -750
        )
    assert balanced(database)


def test_switching_to_annual_starts_a_yearly_period_charged_today(
    monthly, api, database, stripe_client
):
    csrf = sign_in(api, database, KNOWN)
    sub = sub_of(monthly, database)
    r = api.post(
        f"/account/subscriptions/{sub.id}/interval",
        data={"csrf_token": csrf, "interval": "year", "amount": "100"},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert "now $100.00 annual" in api.get("/account").text
    row = subscription(database, sub.id)
    assert (row.amount, row.interval) == (10000, "year")
    assert row.current_period_end > utcnow() + timedelta(days=300)
    stripe_sub = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert stripe_sub["items"].data[0].plan.interval == "year"
    assert changes(database, sub)[-1]["change"] == "interval"
    # Stripe invoiced the new period at once: its payment is booked as a renewal
    invoices = stripe_client.v1.invoices.list(params={"customer": stripe_sub.customer}).data
    assert len(invoices) == 2
    new_invoice = next(i for i in invoices if i.id != monthly.stripe_invoice_id)

    def booked() -> Contribution | None:
        with database.sessions() as s:
            return s.scalar(
                select(Contribution).where(Contribution.stripe_invoice_id == new_invoice.id)
            )

    post_event(
        api, make_event("invoice.payment_succeeded", {"id": new_invoice.id, "object": "invoice"})
    )
    renewal = wait_for(booked)
    with database.sessions() as s:
        assert (
            journal.account_total(s, a.STRIPE_BALANCE, "usd", contribution_id=renewal.id)
            == new_invoice.amount_paid
        )
        assert renewal.frequency == "annual"  # the renewal says what the donor now gives
        assert renewal.total == new_invoice.amount_paid
    post_event(
        api, make_event("customer.subscription.updated", {"id": sub.id, "object": "subscription"})
    )
    assert (subscription(database, sub.id).interval, subscription(database, sub.id).amount) == (
        "year",
        10000,
    )
    assert balanced(database)


def test_updating_the_card_makes_the_new_card_the_default(monthly, api, database, stripe_client):
    csrf = sign_in(api, database, KNOWN)
    sub = sub_of(monthly, database)
    page = api.get(f"/account/subscriptions/{sub.id}/card")
    assert page.status_code == 200 and "ending 4242" in page.text
    assert api.post(f"/account/subscriptions/{sub.id}/card/setup-intent").status_code == 403
    r = api.post(
        f"/account/subscriptions/{sub.id}/card/setup-intent", headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    seti = confirm_setup(stripe_client, r.json()["client_secret"])  # what confirmCardSetup does
    r = api.post(
        f"/account/subscriptions/{sub.id}/card",
        data={"csrf_token": csrf, "setup_intent": seti.id},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert "Your card is updated" in api.get("/account").text
    customer = stripe_client.v1.customers.retrieve(
        stripe_client.v1.subscriptions.retrieve(sub.id).customer
    )
    assert customer.invoice_settings.default_payment_method == seti.payment_method
    assert changes(database, sub)[-1]["change"] == "card_updated"
    # someone else's SetupIntent is not accepted
    foreign = stripe_client.v1.setup_intents.create(params={"payment_method_types": ["card"]})
    r = api.post(
        f"/account/subscriptions/{sub.id}/card",
        data={"csrf_token": csrf, "setup_intent": foreign.id},
        allow_redirects=False,
    )
    assert r.status_code == 404


def test_another_donors_subscription_cannot_be_touched(monthly, api, database, stripe_client):
    other = contribute(api, database, stripe_client, "other-monthly@example.org")
    other_sub = sub_of(other, database)
    csrf = sign_in(api, database, KNOWN)
    for path, data in (
        ("cancel", {"when": "now"}),
        ("amount", {"amount": "5"}),
        ("interval", {"interval": "year", "amount": "50"}),
        ("card", {"setup_intent": "seti_x"}),
    ):
        r = api.post(
            f"/account/subscriptions/{other_sub.id}/{path}",
            data={"csrf_token": csrf, **data},
            allow_redirects=False,
        )
        assert r.status_code == 404, path
    assert api.get(f"/account/subscriptions/{other_sub.id}/cancel").status_code == 404
    assert subscription(database, other_sub.id).status == "active"


def test_every_donor_post_needs_the_csrf_token(monthly, api, database, live_server):
    csrf = sign_in(api, database, KNOWN)
    sub = sub_of(monthly, database)
    posts = {
        "/account/sign-out": {},
        f"/account/subscriptions/{sub.id}/cancel": {"when": "now"},
        f"/account/subscriptions/{sub.id}/amount": {"amount": "5"},
        f"/account/subscriptions/{sub.id}/interval": {"interval": "year", "amount": "50"},
        f"/account/subscriptions/{sub.id}/card": {"setup_intent": "seti_x"},
        f"/account/subscriptions/{sub.id}/card/setup-intent": {},
    }
    for path, data in posts.items():
        for token in (None, "wrong" + csrf[5:]):
            body = data if token is None else {**data, "csrf_token": token}
            r = api.post(path, data=body, allow_redirects=False)
            assert r.status_code == 403, (path, token)
    assert subscription(database, sub.id).status == "active"
    # signed out, every POST is a 401
    anon = Api(live_server.url)
    for path, data in posts.items():
        assert anon.post(path, data={**data, "csrf_token": csrf}).status_code == 401, path


# --- the account in the donor's language -------------------------------------------------------
def test_give_annually_instead_shows_money_and_a_number_to_type_not_a_float(monthly, api, database):
    sign_in(api, database, KNOWN)
    page = api.get("/account").text
    switch = page.split("data-switch-interval", 1)[1].split("</form>", 1)[0]
    # $10.00 a month: the annual offer is 12 × 10 = $120.00, typed back as "120".
    assert 'value="120"' in switch and 'value="120.0"' not in switch
    assert "Suggested: $120.00 a year." in switch
    cancel = api.get(f"/account/subscriptions/{sub_of(monthly, database).id}/cancel").text
    assert "Give $120.00 once a year instead" in cancel and 'value="120.0"' not in cancel


def test_the_account_speaks_russian_with_russian_money_dates_and_plurals(monthly, api, database):
    sign_in(api, database, KNOWN)
    page = api.get("/account?lang=ru").text
    assert '<html lang="ru">' in page
    assert "Ваши пожертвования" in page and "Регулярные пожертвования" in page
    assert "10,00\xa0$" in page  # Babel's Russian: the amount, a no-break space, the sign
    assert "ежемесячное" in page
    assert "1 пожертвование" in page  # the plural's "one" form
    assert 'value="120"' in page and "Предлагаем: 120,00\xa0$ в год." in page
    next_payment = re.search(r"Следующий платёж — (\d{1,2} \w+ \d{4})\s?г\.", page)
    assert next_payment, "a Russian long date"
    # The language sticks for the visit: the next page, without a query, is Russian too.
    statement = api.get("/account/statement").text
    assert "Выписка о пожертвованиях" in statement
    receipt = api.get(f"/account/receipts/{monthly.id}").text
    assert "Квитанция" in receipt and "Всего списано" in receipt and "10,00\xa0$" in receipt
    assert "<dt>Плательщик</dt>" in receipt  # who gave ("From" of a receipt, not of a date)
    # A change the donor makes is answered, and emailed, in the page's language.
    csrf = csrf_of(page)
    sub = sub_of(monthly, database)
    r = api.post(
        f"/account/subscriptions/{sub.id}/amount",
        data={"csrf_token": csrf, "amount": "7,50"},
        allow_redirects=False,
    )
    assert r.status_code == 303
    assert "Теперь ваше пожертвование — 7,50\xa0$ в месяц" in api.get("/account").text
    with database.sessions() as s:
        row = s.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.kind == "subscription_changed")
            .order_by(OutboxEmail.id.desc())
        ).first()
        assert row is not None and row.lang == "ru"


def test_a_sign_in_link_is_written_in_the_language_of_the_page_that_asked(monthly, api, database):
    """The donor gave in Russian; asking from an English page (the browser's language here)
    gets an English email, and without any language of ours asked for, the last gift's."""

    def link_langs() -> list[str | None]:
        with database.sessions() as s:
            rows = s.scalars(
                select(OutboxEmail)
                .where(OutboxEmail.kind == "sign_in_link")
                .order_by(OutboxEmail.id)
            ).all()
            return [r.lang for r in rows]

    with database.transaction() as s:
        s.execute(update(Contribution).values(lang="ru"))
    ask_for_link(api, KNOWN, **{"Accept-Language": "en-GB,en;q=0.9"})
    assert wait_for(lambda: link_langs()) == ["en"]
    ask_for_link(api, KNOWN, **{"Accept-Language": "ja"})  # no language of ours asked for
    assert wait_for(lambda: link_langs()[1:]) == ["ru"]
    ask_for_link(api, KNOWN, **{"Accept-Language": "ru"})
    assert wait_for(lambda: link_langs()[2:]) == ["ru"]
