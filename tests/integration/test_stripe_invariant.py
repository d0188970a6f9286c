"""A property: whatever happens at Stripe and however its events arrive (late, twice, out of
order, at once), once they have all arrived, for every currency `assets:stripe_balance` equals
the sum of the `net` of Stripe's balance transactions, each transaction to the cent."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api, book_webhooks, empty_tables
from tests.endive import Endive
from tests.standin import StripeError

OPS = st.one_of(
    st.tuples(
        st.just("give"),
        st.sampled_from(["usd", "eur", "gbp"]),
        st.integers(min_value=100, max_value=60_000),
        st.booleans(),  # cover fees
        st.sampled_from(["one_off", "one_off", "monthly", "annual"]),
    ),
    st.tuples(st.just("renew"), st.integers(min_value=0, max_value=9)),
    st.tuples(st.just("refund"), st.integers(min_value=0, max_value=9), st.floats(0.05, 1.0)),
    st.tuples(st.just("fail_refund"), st.integers(min_value=0, max_value=9)),
    st.tuples(st.just("dispute"), st.integers(min_value=0, max_value=9), st.booleans()),
    st.tuples(st.just("close"), st.integers(min_value=0, max_value=9), st.booleans()),
    st.tuples(st.just("rate"), st.sampled_from(["usd", "gbp"]), st.floats(0.7, 1.4)),
    st.tuples(
        st.just("payout"),
        st.integers(min_value=0, max_value=9),
        st.sampled_from(["paid", "failed", "canceled", "in_transit", "paid_then_failed"]),
    ),
    st.tuples(st.just("deliver"), st.integers(min_value=1, max_value=3), st.booleans()),
)


def pick(items, i):
    return items[i % len(items)] if items else None


def run(endive: Endive, ops, rng: random.Random) -> None:
    standin = endive.standin
    gifts: list[str] = []
    refunds: list[str] = []
    disputes: list[str] = []
    for op in ops:
        try:
            match op:
                case ("give", currency, amount, cover, frequency):
                    gifts.append(
                        endive.give(amount, currency, frequency=frequency, cover_fees=cover)
                    )
                case ("renew", i):
                    sub = pick([g for g in gifts if endive.row(g).stripe_subscription_id], i)
                    if sub:
                        standin.renew(endive.row(sub).stripe_subscription_id)
                case ("refund", i, share):
                    charges = [
                        c["id"]
                        for c in standin.list_all("charge")
                        if c["status"] == "succeeded" and c["amount_refunded"] < c["amount"]
                    ]
                    charge_id = pick(charges, i)
                    if charge_id:
                        charge = standin.get(charge_id)
                        left = charge["amount"] - charge["amount_refunded"]
                        refunds.append(standin.refund(charge_id, max(1, int(left * share)))["id"])
                case ("fail_refund", i):
                    refund = pick(refunds, i)
                    if refund and standin.get(refund)["status"] == "succeeded":
                        standin.fail_refund(refund)
                case ("dispute", i, inquiry):
                    charge_id = pick(
                        [
                            c["id"]
                            for c in standin.list_all("charge")
                            if c["status"] == "succeeded" and not c["disputed"]
                        ],
                        i,
                    )
                    if charge_id:
                        disputes.append(standin.dispute(charge_id, inquiry=inquiry)["id"])
                case ("close", i, won):
                    dispute = pick(disputes, i)
                    if dispute and standin.get(dispute)["status"] in (
                        "needs_response",
                        "warning_needs_response",
                    ):
                        standin.close_dispute(dispute, won=won)
                case ("rate", currency, rate):
                    if currency != standin.settlement_currency:
                        standin.set_rate(currency, round(rate, 4))
                case ("payout", i, ends):
                    available = standin.balance().get(standin.settlement_currency, 0)
                    amount = max(0, available * (i + 1) // 20)
                    if amount > 0:
                        payout = standin.create_payout(amount)
                        if ends in ("paid", "paid_then_failed"):
                            standin.pay_payout(payout["id"])
                        if ends in ("failed", "paid_then_failed"):
                            standin.fail_payout(payout["id"])
                        if ends == "canceled":
                            standin.cancel_payout(payout["id"])
                case ("deliver", duplicates, concurrent):
                    pending = standin.undelivered()
                    some = rng.sample(pending, k=len(pending) // 2) if pending else []
                    codes = standin.deliver(
                        some, duplicates=duplicates, shuffle=rng, concurrent=concurrent
                    )
                    assert set(codes) <= {200}, codes
                    book_webhooks()
        except StripeError:
            continue  # Stripe refused what was asked (e.g. refunding a disputed charge)
    codes = standin.deliver(duplicates=2, shuffle=rng)
    assert set(codes) <= {200}, codes
    book_webhooks()


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    settlement=st.sampled_from(["usd", "eur"]),
    ops=st.lists(OPS, min_size=3, max_size=24),
    seed=st.integers(0, 2**16),
)
def test_the_books_hold_stripes_balance_after_any_sequence_of_events(
    endive_server, standin, endive_database, settlement, ops, seed
):
    database = endive_database
    empty_tables(database)
    standin.reset()
    standin.settlement_currency = settlement
    endive = Endive(Api(endive_server.url), standin, database)
    run(endive, [("give", "usd", 2500, False, "one_off"), *ops], random.Random(seed))
    endive.assert_books_match_stripe()
