"""Driving the service against the endive stand-in: give as a donor would, let Stripe act,
deliver its events, and hold the books to what Stripe's balance says."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import stripe
from sqlalchemy import func, select

from donations.checkout.models import Contribution
from donations.ledger import accounts as a
from donations.ledger import journal
from donations.ledger.models import JournalEntry, JournalLine
from tests.conftest import STRIPE_SECRET, Api, book_webhooks


class Endive:
    """The service (over HTTP) with Stripe played by the stand-in."""

    def __init__(self, api: Api, standin: Any, database: Any) -> None:
        self.api = api
        self.standin = standin
        self.database = database
        # the donor's browser and the Stripe dashboard
        self.stripe = stripe.StripeClient(
            STRIPE_SECRET, base_addresses={"api": standin.base}, max_network_retries=0
        )

    # giving ----------------------------------------------------------------------------------
    def start(self, amount: int = 5000, currency: str = "usd", frequency: str = "one_off",
              cover_fees: bool = False, **extra: Any) -> dict[str, Any]:  # fmt: skip
        body = {
            "amount": amount,
            "currency": currency,
            "frequency": frequency,
            "email": extra.pop("email", "donor@example.org"),
            "cover_fees": cover_fees,
            **extra,
        }
        r = self.api.post("/api/v1/contributions", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def give(self, amount: int = 5000, currency: str = "usd", *, frequency: str = "one_off",
             cover_fees: bool = False, card: str = "pm_card_visa", expect: int | None = None,
             **extra: Any) -> str:  # fmt: skip
        """A contribution made through the API as the contribute page makes it; its id."""
        started = self.start(amount, currency, frequency, cover_fees, **extra)
        cid = started["contribution"]["id"]
        if frequency == "one_off":
            r = self.api.post(f"/api/v1/contributions/{cid}/confirm", json={"payment_method": card})
            assert r.status_code == (expect or 200), r.text
            return cid
        seti = self.row(cid).stripe_setup_intent_id
        self.stripe.v1.setup_intents.confirm(seti, params={"payment_method": card})
        r = self.api.post(f"/api/v1/contributions/{cid}/subscribe", json={})
        assert r.status_code == (expect or 201), r.text
        return cid

    def deliver(self, **kw: Any) -> list[int]:
        """Stripe's events, delivered (as `StripeStandin.deliver` is told), then booked."""
        codes = self.standin.deliver(**kw)
        assert all(code == 200 for code in codes), codes
        book_webhooks()
        return codes

    # reading the books -----------------------------------------------------------------------
    def row(self, cid: str) -> Contribution:
        with self.database.sessions() as s:
            found = s.get(Contribution, cid)
            assert found is not None
            return found

    def renewals(self, cid: str) -> list[Contribution]:
        with self.database.sessions() as s:
            return list(
                s.scalars(
                    select(Contribution)
                    .where(Contribution.parent_id == cid)
                    .order_by(Contribution.created_at)
                )
            )

    def charge_of(self, cid: str) -> dict[str, Any]:
        pi = self.standin.get(self.row(cid).stripe_payment_intent_id)
        return self.standin.get(pi["latest_charge"])

    def keys(self, cid: str | None = None) -> list[str]:
        with self.database.sessions() as s:
            q = select(JournalEntry.key).order_by(JournalEntry.id)
            if cid is not None:
                q = q.where(JournalEntry.contribution_id == cid)
            return list(s.scalars(q))

    def lines(self, key: str) -> dict[tuple[str, str], int]:
        with self.database.sessions() as s:
            rows = s.execute(
                select(JournalLine.account, JournalLine.currency, JournalLine.amount)
                .join(JournalEntry)
                .where(JournalEntry.key == key)
            ).all()
        return {(acc, cur): amount for acc, cur, amount in rows}

    def total(self, account: str, currency: str, cid: str | None = None) -> int:
        with self.database.sessions() as s:
            return journal.account_total(s, account, currency, contribution_id=cid)

    def assert_books_match_stripe(self) -> None:
        """The invariant: every balance transaction's net is what the books moved the Stripe
        balance by for it, and per currency the books' Stripe balance is Stripe's balance."""
        txns = self.standin.balance_transactions()
        with self.database.sessions() as s:
            for txn in txns:
                booked = journal.balance_transaction_net(s, txn["id"])
                assert booked == txn["net"], (txn["type"], txn["id"], booked, txn["net"])
            ids = [t["id"] for t in txns] or ["-"]
            rows = s.execute(
                select(JournalLine.currency, func.sum(JournalLine.amount))
                .join(JournalEntry)
                .where(
                    JournalLine.account == a.STRIPE_BALANCE,
                    JournalEntry.balance_transaction_id.in_(ids),
                )
                .group_by(JournalLine.currency)
            ).all()
            # every line on the Stripe balance names the balance transaction it books
            unlinked = s.scalar(
                select(func.count())
                .select_from(JournalLine)
                .join(JournalEntry)
                .where(
                    JournalLine.account == a.STRIPE_BALANCE,
                    JournalEntry.balance_transaction_id.is_(None),
                )
            )
            _, balanced = journal.trial_balance(s)
        books = {cur: int(total) for cur, total in rows if total}
        stripe_side = {cur: net for cur, net in self.standin.balance().items() if net}
        assert books == stripe_side
        assert unlinked == 0
        assert balanced

    def per_currency(self, account: str) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        with self.database.sessions() as s:
            for cur, total in s.execute(
                select(JournalLine.currency, func.sum(JournalLine.amount))
                .where(JournalLine.account == account)
                .group_by(JournalLine.currency)
            ).all():
                out[cur] = int(total)
        return dict(out)
