"""The contributions list for admins: keyset pages, and a CSV export streamed in batches; and
everything about one contribution for its admin page (`detail`)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from donations.checkout.models import Contribution, Donor, Subscription
from donations.ledger.models import JournalEntry
from donations.mail.models import OutboxEmail
from donations.reports.summary import day_bounds

FIELDS = (
    "id",
    "created_at",
    "status",
    "frequency",
    "currency",
    "amount",
    "fee_covered",
    "total",
    "refunded_amount",
    "article",
    "campaign",
    "variant",
    "placement",
    "email",
)
CSV_BATCH = 2000
# Text that a spreadsheet would run as a formula; attribution comes from readers' browsers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class InvalidCursor(ValueError):
    """A cursor this service did not hand out."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last row's (created_at, id); the next page starts below it."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, id_ = json.loads(raw)
            if not isinstance(created_at, str) or not isinstance(id_, str) or len(id_) > 40:
                raise ValueError("wrong shape")
            moment = datetime.fromisoformat(created_at)
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise InvalidCursor("Not a cursor from this list.") from exc
        if moment.tzinfo is not None:
            raise InvalidCursor("Not a cursor from this list.")
        return cls(moment, id_)


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    status: str | None = None
    campaign: str | None = None
    currency: str | None = None
    frequency: str | None = None
    article: str | None = None
    # The donor's email, or its beginning, in any case (erased donors have none to match).
    email: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Filters:
        """From the list's validated query arguments (`from`/`to` loaded as `from_`/`to`),
        as the report API and the admin page both take them."""
        return cls(
            start=args["from_"],
            end=args["to"],
            status=args["status"],
            campaign=args["campaign"],
            currency=args["currency"],
            frequency=args["frequency"],
            article=args["article"],
            email=args["email"],
        )


def _query(filters: Filters, after: Cursor | None, limit: int) -> Select:
    # Plain columns, not ORM objects: an export of a million rows builds no identity map.
    columns = [getattr(Contribution, name) for name in FIELDS if name != "email"]
    query = select(*columns, Donor.email, Donor.erased_at).outerjoin(
        Donor, Donor.id == Contribution.donor_id
    )
    if filters.start is not None:
        query = query.where(Contribution.created_at >= day_bounds(filters.start, filters.start)[0])
    if filters.end is not None:
        query = query.where(Contribution.created_at < day_bounds(filters.end, filters.end)[1])
    if filters.status is not None:
        query = query.where(Contribution.status == filters.status)
    if filters.campaign is not None:
        query = query.where(Contribution.campaign == filters.campaign)
    if filters.currency is not None:
        query = query.where(Contribution.currency == filters.currency)
    if filters.frequency is not None:
        query = query.where(Contribution.frequency == filters.frequency)
    if filters.article is not None:
        query = query.where(Contribution.article == filters.article)
    if filters.email:
        # Exact or prefix: "ann@example.org" and "ann@" both find Ann. Emails are stored in
        # lower case; lower() keeps older rows findable. `%` and `_` are matched literally.
        query = query.where(
            func.lower(Donor.email).startswith(filters.email.strip().lower(), autoescape=True),
            Donor.erased_at.is_(None),
        )
    if after is not None:
        query = query.where(
            or_(
                Contribution.created_at < after.created_at,
                and_(Contribution.created_at == after.created_at, Contribution.id < after.id),
            )
        )
    return query.order_by(Contribution.created_at.desc(), Contribution.id.desc()).limit(limit)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{moment.microsecond:06d}Z" if moment.microsecond else "Z"
    )


def _row(found: Any) -> dict[str, Any]:
    row = {name: getattr(found, name) for name in FIELDS if name != "email"}
    row["created_at"] = rfc3339(found.created_at)
    # An erased donor's contributions keep their amounts but show no address.
    row["email"] = None if found.erased_at is not None else found.email
    return row


def page(
    session: Session, filters: Filters, after: Cursor | None, limit: int
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Newest first: up to `limit` contributions below the cursor, and the next page's cursor
    (None on the last page)."""
    found = session.execute(_query(filters, after, limit + 1)).all()
    more = len(found) > limit
    found = found[:limit]
    rows = [_row(r) for r in found]
    last = found[-1] if more else None
    return rows, (Cursor(last.created_at, last.id) if last is not None else None)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def csv_chunks(
    sessions: Callable[[], Session], filters: Filters, batch: int = CSV_BATCH
) -> Iterator[str]:
    """Every matching contribution as CSV text, one chunk per batch of rows.

    Each batch is a keyset page read in a short session of its own, so memory stays flat
    and no transaction (on SQLite: no lock) is held while the client reads.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    yield buffer.getvalue()
    after: Cursor | None = None
    while True:
        buffer.seek(0)
        buffer.truncate()
        with sessions() as session:
            rows, after = page(session, filters, after, batch)
        for row in rows:
            writer.writerow([_cell(row[name]) for name in FIELDS])
        yield buffer.getvalue()
        if after is None:
            return


# --- one contribution ---------------------------------------------------------------------------
RENEWALS_SHOWN = 120  # ten years of a monthly gift


@dataclass(frozen=True)
class Receipt:
    """An email sent (or due) about a contribution: what kind, when, how many tries; never
    its address or body."""

    kind: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int


@dataclass(frozen=True)
class Detail:
    """Everything the admin shows about one contribution (rows read in one short session)."""

    contribution: Contribution
    donor: Donor | None
    entries: list[JournalEntry]  # with their lines, oldest first
    receipts: list[Receipt]
    subscription: Subscription | None
    parent: Contribution | None  # a renewal's first contribution
    renewals: list[Contribution]  # newest first, at most RENEWALS_SHOWN
    renewal_count: int


def detail(session: Session, contribution_id: str) -> Detail | None:
    """The contribution with this id and what hangs off it, or None."""
    if not contribution_id or len(contribution_id) > 40:
        return None
    c = session.get(Contribution, contribution_id)
    if c is None:
        return None
    donor = session.get(Donor, c.donor_id) if c.donor_id else None
    entries = list(
        session.scalars(
            select(JournalEntry)
            .where(JournalEntry.contribution_id == c.id)
            .order_by(JournalEntry.occurred_at, JournalEntry.id)
        )
    )
    receipts = [
        Receipt(kind, created_at, sent_at, attempts)
        for kind, created_at, sent_at, attempts in session.execute(
            select(
                OutboxEmail.kind, OutboxEmail.created_at, OutboxEmail.sent_at, OutboxEmail.attempts
            )
            .where(OutboxEmail.contribution_id == c.id)
            .order_by(OutboxEmail.created_at, OutboxEmail.id)
        )
    ]
    parent = session.get(Contribution, c.parent_id) if c.parent_id else None
    first_id = parent.id if parent is not None else c.id
    subscription = session.scalar(
        select(Subscription).where(Subscription.contribution_id == first_id)
    )
    if subscription is None and c.stripe_subscription_id:
        subscription = session.get(Subscription, c.stripe_subscription_id)
    renewals: list[Contribution] = []
    renewal_count = 0
    if c.parent_id is None and c.is_recurring:
        renewals = list(
            session.scalars(
                select(Contribution)
                .where(Contribution.parent_id == c.id)
                .order_by(Contribution.created_at.desc(), Contribution.id.desc())
                .limit(RENEWALS_SHOWN)
            )
        )
        renewal_count = (
            session.scalar(
                select(func.count()).select_from(Contribution).where(Contribution.parent_id == c.id)
            )
            or 0
        )
    return Detail(c, donor, entries, receipts, subscription, parent, renewals, renewal_count)
