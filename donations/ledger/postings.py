"""Posting rules: which accounts move, and by how much, for each thing that happens at Stripe.

Pure functions over integers; `journal.post` checks that what they return balances.
"""

from __future__ import annotations

from donations.ledger import accounts as a

Lines = list[tuple[str, int]]


def _nonzero(lines: Lines) -> Lines:
    return [(account, amount) for account, amount in lines if amount != 0]


def split_charge(charged: int, expected_total: int, gift: int, fee_covered: int) -> tuple[int, int]:
    """(gift, covered fee) inside an amount Stripe actually charged.

    When Stripe charged exactly what the contribution asked for, the split is the stored one;
    otherwise (the amount was changed at Stripe) all of it counts as gift.
    """
    if charged == expected_total:
        return gift, fee_covered
    return charged, 0


def payment(charged: int, gift: int, fee_covered: int, *, recurring: bool) -> Lines:
    """Money in: the balance grows by the charge; income is the gift plus the covered fee."""
    if gift + fee_covered != charged:
        raise ValueError("gift + covered fee must equal the charged amount")
    income = a.GIFTS_RECURRING if recurring else a.GIFTS_ONE_OFF
    return _nonzero([(a.STRIPE_BALANCE, charged), (income, -gift), (a.COVERED_FEES, -fee_covered)])


def stripe_fee(fee: int) -> Lines:
    """Stripe's processing fee (negative when Stripe gives a fee back)."""
    return _nonzero([(a.STRIPE_FEES, fee), (a.STRIPE_BALANCE, -fee)])


def refund(amount: int) -> Lines:
    return _nonzero([(a.REFUNDS, amount), (a.STRIPE_BALANCE, -amount)])


def refund_reversal(amount: int) -> Lines:
    """A refund that failed after it was booked puts the money back."""
    return _nonzero([(a.STRIPE_BALANCE, amount), (a.REFUNDS, -amount)])


def dispute(amount: int) -> Lines:
    return _nonzero([(a.DISPUTES, amount), (a.STRIPE_BALANCE, -amount)])


def dispute_reversal(amount: int) -> Lines:
    """A dispute won: the disputed amount is reinstated."""
    return _nonzero([(a.STRIPE_BALANCE, amount), (a.DISPUTES, -amount)])


def payout(amount: int) -> Lines:
    return _nonzero([(a.BANK, amount), (a.STRIPE_BALANCE, -amount)])


def payout_reversal(amount: int) -> Lines:
    return _nonzero([(a.STRIPE_BALANCE, amount), (a.BANK, -amount)])
