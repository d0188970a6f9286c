"""The chart of accounts. Debits are positive, credits negative; every entry sums to zero."""

STRIPE_BALANCE = "assets:stripe_balance"
BANK = "assets:bank"
GIFTS_ONE_OFF = "income:gifts:one_off"
GIFTS_RECURRING = "income:gifts:recurring"
COVERED_FEES = "income:covered_fees"
STRIPE_FEES = "expenses:stripe_fees"
REFUNDS = "contra:refunds"
DISPUTES = "contra:disputes"

ALL = (
    STRIPE_BALANCE,
    BANK,
    GIFTS_ONE_OFF,
    GIFTS_RECURRING,
    COVERED_FEES,
    STRIPE_FEES,
    REFUNDS,
    DISPUTES,
)

# Entry kinds (what caused an entry); reports group by them.
PAYMENT_ONE_OFF = "payment_one_off"
PAYMENT_RECURRING = "payment_recurring"
STRIPE_FEE = "stripe_fee"
REFUND = "refund"
REFUND_REVERSAL = "refund_reversal"
DISPUTE = "dispute"
DISPUTE_REVERSAL = "dispute_reversal"
PAYOUT = "payout"
PAYOUT_REVERSAL = "payout_reversal"
PAYMENT_KINDS = (PAYMENT_ONE_OFF, PAYMENT_RECURRING)
