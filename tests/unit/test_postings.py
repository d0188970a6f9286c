"""The posting rules: balanced in every currency, each line on the side the books expect."""

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from donations.ledger import accounts as a
from donations.ledger import postings

amounts = st.integers(min_value=0, max_value=10**12)
positive = st.integers(min_value=1, max_value=10**10)
currencies = st.sampled_from(["usd", "eur", "gbp", "jpy"])


def balanced(lines):
    per_currency = defaultdict(int)
    for _, currency, amount in lines:
        per_currency[currency] += amount
    return all(total == 0 for total in per_currency.values())


def on(lines, account, currency):
    return sum(amount for acc, cur, amount in lines if (acc, cur) == (account, currency))


@given(
    gift=positive,
    covered=amounts,
    recurring=st.booleans(),
    currency=currencies,
    settlement=currencies,
    settled=positive,
)
def test_every_payment_entry_balances_in_each_currency(
    gift, covered, recurring, currency, settlement, settled
):
    charged = gift + covered
    if settlement == currency:
        settled = charged
    lines = postings.payment(
        charged,
        gift,
        covered,
        currency=currency,
        settled=settled,
        settlement_currency=settlement,
        recurring=recurring,
    )
    assert balanced(lines)
    # the balance grows by what settled, in the settlement currency (a debit)
    assert on(lines, a.STRIPE_BALANCE, settlement) == settled > 0
    # income is credited in the donor's currency
    income = a.GIFTS_RECURRING if recurring else a.GIFTS_ONE_OFF
    assert on(lines, income, currency) == -gift < 0
    assert on(lines, a.COVERED_FEES, currency) == -covered


def test_a_payment_settled_in_its_own_currency_needs_no_clearing():
    lines = postings.payment(
        1030, 1000, 30, currency="usd", settled=1030, settlement_currency="usd", recurring=False
    )
    assert lines == [
        (a.STRIPE_BALANCE, "usd", 1030),
        (a.GIFTS_ONE_OFF, "usd", -1000),
        (a.COVERED_FEES, "usd", -30),
    ]


def test_a_usd_gift_settled_in_eur_crosses_through_the_clearing_account():
    lines = postings.payment(
        10000, 10000, 0, currency="usd", settled=9200, settlement_currency="eur", recurring=True
    )
    assert sorted(lines) == sorted(
        [
            (a.STRIPE_BALANCE, "eur", 9200),
            (a.EXCHANGE_CLEARING, "eur", -9200),
            (a.EXCHANGE_CLEARING, "usd", 10000),
            (a.GIFTS_RECURRING, "usd", -10000),
        ]
    )


@given(fee=st.integers(min_value=-(10**9), max_value=10**9), currency=currencies)
def test_a_fee_is_an_expense_taken_from_the_balance(fee, currency):
    lines = postings.stripe_fee(fee, currency)
    assert balanced(lines)
    assert on(lines, a.STRIPE_FEES, currency) == fee
    assert on(lines, a.STRIPE_BALANCE, currency) == -fee


@given(
    amount=positive,
    settled=positive,
    at_rate=positive,
    contra=st.sampled_from([a.REFUNDS, a.DISPUTES]),
    currency=currencies,
    settlement=currencies,
)
def test_money_returned_and_returned_back_balance_and_mirror_each_other(
    amount, settled, at_rate, contra, currency, settlement
):
    if settlement == currency:
        settled = at_rate = amount
    out = postings.returned(
        contra,
        amount,
        currency=currency,
        settled=settled,
        at_rate=at_rate,
        settlement_currency=settlement,
    )
    back = postings.returned_back(
        contra,
        amount,
        currency=currency,
        settled=settled,
        at_rate=at_rate,
        settlement_currency=settlement,
    )
    assert balanced(out) and balanced(back)
    assert on(out, contra, currency) == amount  # a debit to the contra-income account
    assert on(out, a.STRIPE_BALANCE, settlement) == -settled  # the money leaves the balance
    assert on(back, contra, currency) == -amount
    assert on(back, a.STRIPE_BALANCE, settlement) == settled
    assert postings.merged(out + back) == []


def test_a_refund_converted_at_a_worse_rate_books_the_loss():
    # paid 100.00 USD → 92.00 EUR; refunded in full when 100.00 USD cost 95.00 EUR
    at_rate = postings.at_payment_rate(10000, 10000, 9200)
    lines = postings.returned(
        a.REFUNDS,
        10000,
        currency="usd",
        settled=9500,
        at_rate=at_rate,
        settlement_currency="eur",
    )
    assert on(lines, a.EXCHANGE_DIFFERENCES, "eur") == 300  # a loss is a debit
    assert on(lines, a.EXCHANGE_CLEARING, "eur") == 9200
    assert on(lines, a.EXCHANGE_CLEARING, "usd") == -10000
    assert on(lines, a.STRIPE_BALANCE, "eur") == -9500


@pytest.mark.parametrize(
    ("part", "charged", "settled", "expected"),
    [(10000, 10000, 9200, 9200), (2500, 10000, 9201, 2300), (1, 3, 2, 1), (0, 10, 9, 0)],
)
def test_part_of_a_charge_at_its_payment_rate_rounds_half_to_even(part, charged, settled, expected):
    assert postings.at_payment_rate(part, charged, settled) == expected


@given(amount=positive, currency=currencies)
def test_a_payout_goes_through_transit_to_the_bank_or_back(amount, currency):
    out, paid = postings.payout(amount, currency), postings.payout_paid(amount, currency)
    assert balanced(out) and balanced(paid)
    assert on(out, a.STRIPE_BALANCE, currency) == -amount
    assert on(out, a.PAYOUTS_IN_TRANSIT, currency) == amount
    assert on(paid, a.BANK, currency) == amount
    assert sorted(postings.merged(out + paid)) == [
        (a.BANK, currency, amount),
        (a.STRIPE_BALANCE, currency, -amount),
    ]
    bounced = out + paid + postings.payout_paid_reversal(amount, currency)
    bounced += postings.payout_returned(amount, currency)
    assert postings.merged(bounced) == []


@given(charged=amounts, total=amounts, gift=amounts, covered=amounts)
def test_a_charge_is_always_split_into_parts_that_add_up(charged, total, gift, covered):
    if total == charged and gift + covered != total:
        return  # a stored contribution always has gift + covered == total
    g, c = postings.split_charge(charged, total, gift, covered)
    assert g + c == charged


def test_a_payment_whose_parts_do_not_add_up_is_refused():
    with pytest.raises(ValueError):
        postings.payment(
            1000, 900, 50, currency="usd", settled=1000, settlement_currency="usd", recurring=False
        )


def test_zero_lines_are_left_out():
    assert postings.stripe_fee(0, "usd") == []
    assert postings.correction(0, "usd") == []


def test_the_journal_refuses_an_entry_that_does_not_balance_in_some_currency():
    from datetime import datetime

    from donations.ledger import journal

    with pytest.raises(journal.UnbalancedEntry, match="eur"):
        journal.post(
            None,  # never reached: the check comes before any I/O
            key="payment:ch_x",
            kind=a.PAYMENT_ONE_OFF,
            currency="usd",
            occurred_at=datetime(2026, 1, 1),
            stripe_object_id="ch_x",
            lines=[(a.STRIPE_BALANCE, "eur", 92), (a.GIFTS_ONE_OFF, "usd", -100)],
        )
