"""Posting rules: which accounts move, in which currency and by how much, for each thing
that happens at Stripe.

Pure functions over integers of minor units; `journal.post` checks that what they return
balances in every currency. A line is (account, currency, amount), debit > 0.

Money the donor gave or got back is in the donor's currency (the charge's); money in Stripe's
balance is in the settlement currency, exactly as the balance transaction says (`amount`,
`fee`, `net`). `clearing:exchange` carries each amount across: a payment clears at the rate
Stripe used for it, and what later flows (refunds, disputes) clear at that same rate, so any
gain or loss from converting them at another rate is booked to `expenses:exchange_differences`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal

from donations.ledger import accounts as a

Line = tuple[str, str, int]
Lines = list[Line]


def merged(lines: Lines) -> Lines:
    """Lines with the same account and currency summed; zero lines dropped (the clearing
    lines of a payment settled in its own currency cancel out)."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    order: list[tuple[str, str]] = []
    for account, currency, amount in lines:
        if (account, currency) not in totals:
            order.append((account, currency))
        totals[(account, currency)] += amount
    return [(acc, cur, totals[(acc, cur)]) for acc, cur in order if totals[(acc, cur)] != 0]


def split_charge(charged: int, expected_total: int, gift: int, fee_covered: int) -> tuple[int, int]:
    """(gift, covered fee) inside an amount Stripe actually charged.

    When Stripe charged exactly what the contribution asked for, the split is the stored one;
    otherwise (the amount was changed at Stripe) all of it counts as gift.
    """
    if charged == expected_total:
        return gift, fee_covered
    return charged, 0


def at_payment_rate(part: int, charged: int, settled: int) -> int:
    """`part` of a charge (donor's currency) in the settlement currency at the rate Stripe
    used for the payment itself: settled × part / charged, rounded half to even."""
    if charged <= 0 or part == charged:
        return settled if part == charged else 0
    value = Decimal(settled) * Decimal(part) / Decimal(charged)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def payment(
    charged: int,
    gift: int,
    fee_covered: int,
    *,
    currency: str,
    settled: int,
    settlement_currency: str,
    recurring: bool,
) -> Lines:
    """Money in: the Stripe balance grows by the charge as settled (before fees); income is
    the gift plus the covered fee, in the donor's currency."""
    if gift + fee_covered != charged:
        raise ValueError("gift + covered fee must equal the charged amount")
    income = a.GIFTS_RECURRING if recurring else a.GIFTS_ONE_OFF
    return merged(
        [
            (a.STRIPE_BALANCE, settlement_currency, settled),
            (a.EXCHANGE_CLEARING, settlement_currency, -settled),
            (a.EXCHANGE_CLEARING, currency, charged),
            (income, currency, -gift),
            (a.COVERED_FEES, currency, -fee_covered),
        ]
    )


def stripe_fee(fee: int, currency: str) -> Lines:
    """Stripe's fee on a balance transaction (negative when Stripe gives a fee back)."""
    return merged([(a.STRIPE_FEES, currency, fee), (a.STRIPE_BALANCE, currency, -fee)])


def returned(
    contra: str,
    amount: int,
    *,
    currency: str,
    settled: int,
    at_rate: int,
    settlement_currency: str,
) -> Lines:
    """Money given back to the donor (a refund, a dispute's withdrawal): `amount` in their
    currency; `settled` is what left the Stripe balance (positive), `at_rate` the same amount
    at the payment's rate; the difference is an exchange loss (or gain)."""
    return merged(
        [
            (contra, currency, amount),
            (a.EXCHANGE_CLEARING, currency, -amount),
            (a.EXCHANGE_CLEARING, settlement_currency, at_rate),
            (a.EXCHANGE_DIFFERENCES, settlement_currency, settled - at_rate),
            (a.STRIPE_BALANCE, settlement_currency, -settled),
        ]
    )


def returned_back(
    contra: str,
    amount: int,
    *,
    currency: str,
    settled: int,
    at_rate: int,
    settlement_currency: str,
) -> Lines:
    """The reverse: a refund that failed, a dispute won: `settled` came back (positive)."""
    return merged(
        [
            (a.STRIPE_BALANCE, settlement_currency, settled),
            (a.EXCHANGE_DIFFERENCES, settlement_currency, at_rate - settled),
            (a.EXCHANGE_CLEARING, settlement_currency, -at_rate),
            (a.EXCHANGE_CLEARING, currency, amount),
            (contra, currency, -amount),
        ]
    )


def payout(amount: int, currency: str) -> Lines:
    """A payout leaves the Stripe balance; it is in transit until the bank has it."""
    return merged([(a.PAYOUTS_IN_TRANSIT, currency, amount), (a.STRIPE_BALANCE, currency, -amount)])


def payout_paid(amount: int, currency: str) -> Lines:
    return merged([(a.BANK, currency, amount), (a.PAYOUTS_IN_TRANSIT, currency, -amount)])


def payout_paid_reversal(amount: int, currency: str) -> Lines:
    """A payout reported paid that the bank returned after all."""
    return merged([(a.PAYOUTS_IN_TRANSIT, currency, amount), (a.BANK, currency, -amount)])


def payout_returned(amount: int, currency: str) -> Lines:
    """A failed or canceled payout: the money is back in the Stripe balance."""
    return merged([(a.STRIPE_BALANCE, currency, amount), (a.PAYOUTS_IN_TRANSIT, currency, -amount)])


def correction(difference: int, currency: str) -> Lines:
    """Reconcile's correction: the Stripe balance moved by `difference` more than booked."""
    return merged(
        [(a.STRIPE_BALANCE, currency, difference), (a.RECONCILIATION, currency, -difference)]
    )


def other_activity(net: int, currency: str, *, fee_type: bool) -> Lines:
    """A balance transaction no contribution rule claims: Stripe's own fees to the account
    are an expense; anything else waits in suspense for the newsroom to account for."""
    counterpart = a.STRIPE_FEES if fee_type else a.OTHER_STRIPE_ACTIVITY
    return merged([(a.STRIPE_BALANCE, currency, net), (counterpart, currency, -net)])
