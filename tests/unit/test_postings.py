import pytest
from hypothesis import given
from hypothesis import strategies as st

from donations.ledger import accounts as a
from donations.ledger import postings

amounts = st.integers(min_value=0, max_value=10**12)


def balances(lines):
    return sum(amount for _, amount in lines) == 0


@given(gift=amounts, covered=amounts, recurring=st.booleans())
def test_every_payment_entry_balances(gift, covered, recurring):
    lines = postings.payment(gift + covered, gift, covered, recurring=recurring)
    assert balances(lines)
    assert dict(lines).get(a.STRIPE_BALANCE, 0) == gift + covered


@given(amount=st.integers(min_value=-(10**12), max_value=10**12))
def test_every_other_posting_rule_balances(amount):
    for rule in (
        postings.stripe_fee,
        postings.refund,
        postings.refund_reversal,
        postings.dispute,
        postings.dispute_reversal,
        postings.payout,
        postings.payout_reversal,
    ):
        assert balances(rule(amount))


@given(charged=amounts, total=amounts, gift=amounts, covered=amounts)
def test_a_charge_is_always_split_into_parts_that_add_up(charged, total, gift, covered):
    if total == charged and gift + covered != total:
        return  # a stored contribution always has gift + covered == total
    g, c = postings.split_charge(charged, total, gift, covered)
    assert g + c == charged


def test_recurring_gifts_go_to_their_own_income_account():
    assert (a.GIFTS_RECURRING, -1000) in postings.payment(1030, 1000, 30, recurring=True)
    assert (a.GIFTS_ONE_OFF, -1000) in postings.payment(1030, 1000, 30, recurring=False)


def test_a_payment_whose_parts_do_not_add_up_is_refused():
    with pytest.raises(ValueError):
        postings.payment(1000, 900, 50, recurring=False)


def test_zero_lines_are_left_out():
    assert postings.payment(1000, 1000, 0, recurring=False) == [
        (a.STRIPE_BALANCE, 1000),
        (a.GIFTS_ONE_OFF, -1000),
    ]
    assert postings.stripe_fee(0) == []


def test_the_journal_refuses_an_entry_that_does_not_balance():
    from datetime import datetime

    from donations.ledger import journal

    with pytest.raises(journal.UnbalancedEntry):
        journal.post(
            None,  # never reached: the check comes before any I/O
            key="payment:ch_x",
            kind=a.PAYMENT_ONE_OFF,
            currency="usd",
            occurred_at=datetime(2026, 1, 1),
            stripe_object_id="ch_x",
            lines=[(a.STRIPE_BALANCE, 100), (a.GIFTS_ONE_OFF, -99)],
        )
