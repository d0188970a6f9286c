"""The chart of accounts. Debits are positive, credits negative; every entry sums to zero in
each currency it touches.

Gifts (income, refunds, disputes) are in the donor's currency; everything Stripe holds or
moves (its balance, fees, payouts) is in the account's settlement currency, as Stripe's
balance transactions are. `clearing:exchange` bridges the two inside each entry, so a gift
in USD settled in EUR is one entry balanced in both; what a conversion gained or lost against
the payment's own rate (a refund converted later) lands in `expenses:exchange_differences`.
"""

STRIPE_BALANCE = "assets:stripe_balance"
PAYOUTS_IN_TRANSIT = "assets:payouts_in_transit"
BANK = "assets:bank"
EXCHANGE_CLEARING = "clearing:exchange"
GIFTS_ONE_OFF = "income:gifts:one_off"
GIFTS_RECURRING = "income:gifts:recurring"
COVERED_FEES = "income:covered_fees"
STRIPE_FEES = "expenses:stripe_fees"
EXCHANGE_DIFFERENCES = "expenses:exchange_differences"
REFUNDS = "contra:refunds"
DISPUTES = "contra:disputes"
# Where reconcile books a difference Stripe's balance shows and no rule explains.
RECONCILIATION = "equity:reconciliation"
# Money on the Stripe balance that is not about contributions (another product's charges on
# the same account, reserves, top-ups…): reconcile books it here so the balance stays whole.
OTHER_STRIPE_ACTIVITY = "suspense:other_stripe_activity"

ALL = (
    STRIPE_BALANCE,
    PAYOUTS_IN_TRANSIT,
    BANK,
    EXCHANGE_CLEARING,
    GIFTS_ONE_OFF,
    GIFTS_RECURRING,
    COVERED_FEES,
    STRIPE_FEES,
    EXCHANGE_DIFFERENCES,
    REFUNDS,
    DISPUTES,
    RECONCILIATION,
    OTHER_STRIPE_ACTIVITY,
)
# The donor-facing accounts: a payment's gift and covered fee, what was returned to the donor.
INCOME = (GIFTS_ONE_OFF, GIFTS_RECURRING, COVERED_FEES)
DONOR_ACCOUNTS = (*INCOME, REFUNDS, DISPUTES)

# Entry kinds (what caused an entry); reports group by them.
PAYMENT_ONE_OFF = "payment_one_off"
PAYMENT_RECURRING = "payment_recurring"
STRIPE_FEE = "stripe_fee"
REFUND = "refund"
REFUND_REVERSAL = "refund_reversal"
DISPUTE = "dispute"
DISPUTE_REVERSAL = "dispute_reversal"
PAYOUT = "payout"  # out of the Stripe balance, on its way to the bank
PAYOUT_PAID = "payout_paid"  # arrived at the bank
PAYOUT_PAID_REVERSAL = "payout_paid_reversal"  # reported paid, then failed after all
PAYOUT_REVERSAL = "payout_reversal"  # failed or canceled: back in the Stripe balance
CORRECTION = "correction"  # reconcile's correction of a balance transaction's difference
OTHER_ACTIVITY = "other_stripe_activity"  # a balance transaction no contribution rule claims
# Stripe's own charges to the account (Billing, currency conversion, tax) are fees.
STRIPE_FEE_TYPES = ("stripe_fee", "stripe_fx_fee", "tax_fee")
PAYMENT_KINDS = (PAYMENT_ONE_OFF, PAYMENT_RECURRING)
PAYOUT_KINDS = (PAYOUT, PAYOUT_PAID, PAYOUT_PAID_REVERSAL, PAYOUT_REVERSAL)
