"""A receipt for every payment the books record: queued in the booking's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from donations.checkout.models import Contribution
from donations.mail.outbox import enqueue
from donations.stripe.facts import Charge


def queue_receipt(
    session: Session, contribution: Contribution, charge: Charge, gift: int, covered: int
) -> None:
    """One receipt per booked payment (the dedupe key stops a replayed or concurrent event);
    a renewal's says so. Sent after commit."""
    if contribution.donor_id is None:
        return
    enqueue(
        session,
        kind="renewal_receipt" if contribution.parent_id else "receipt",
        dedupe_key=f"receipt:{contribution.id}",
        donor_id=contribution.donor_id,
        contribution_id=contribution.id,
        lang=contribution.lang,
        payload={
            "charged": charge.amount,
            "gift": gift,
            "covered": covered,
            "currency": charge.currency,
            "paid_at": charge.created.isoformat(),
        },
    )
