"""The compiled campaigns each app process keeps in memory, refreshed when they change.

An appeal request reads only memory. At most once every REFRESH_SECONDS one request checks
the config version (one indexed single-row read) and rebuilds the snapshot when it moved, so
every instance notices a change within seconds; the goal tickers' `raised` figures are
recomputed from the ledger every TICKER_SECONDS.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from donations import observability
from donations.appeals.engine import AppealRules, CompiledCampaign, Snapshot
from donations.appeals.models import AppealConfig, Campaign
from donations.checkout.models import Contribution
from donations.db import Database, utcnow
from donations.ledger import accounts
from donations.ledger.models import JournalEntry, JournalLine

log = logging.getLogger(__name__)
REFRESH_SECONDS = 2.0
TICKER_SECONDS = 60.0


def config_row(session: Session) -> AppealConfig:
    """The single AppealConfig row, created with defaults on first use."""
    row = session.get(AppealConfig, 1)
    if row is None:
        row = AppealConfig(
            id=1,
            blackout_sections=[],
            blackout_tags=[],
            killed_placements=[],
            version=new_version(),
        )
        session.add(row)
        session.flush()
    return row


def new_version() -> int:
    """A fresh random version: unlike a counter it cannot repeat after the row is recreated
    (a restore, an emptied table), so no instance keeps a stale snapshot by coincidence."""
    return secrets.randbits(62)


def bump_version(session: Session) -> None:
    """Tell every instance that campaigns or rules changed."""
    config_row(session).version = new_version()


def raised_for(session: Session, campaign: CompiledCampaign) -> int:
    """Gifts attributed to the campaign within its window, less their refunds (goal currency)."""
    if not campaign.goal_currency:
        return 0
    query = (
        select(func.coalesce(func.sum(JournalLine.amount), 0))
        .join(JournalEntry, JournalLine.entry_id == JournalEntry.id)
        .join(Contribution, JournalEntry.contribution_id == Contribution.id)
        .where(
            Contribution.campaign == campaign.id,
            JournalLine.currency == campaign.goal_currency,
            JournalLine.account.in_(
                [accounts.GIFTS_ONE_OFF, accounts.GIFTS_RECURRING, accounts.REFUNDS]
            ),
        )
    )
    if campaign.starts_at:
        query = query.where(JournalEntry.occurred_at >= campaign.starts_at)
    if campaign.ends_at:
        query = query.where(JournalEntry.occurred_at < campaign.ends_at)
    return -int(session.scalar(query) or 0)  # income and refunds are on the credit side


class SnapshotStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._ticker_at = 0.0

    @property
    def built_at(self) -> datetime | None:
        """When the snapshot this process serves was built (naive UTC; None before the first)."""
        snapshot = self._snapshot
        return snapshot.built_at if snapshot is not None else None

    @property
    def age_seconds(self) -> float:
        return time.monotonic() - self._checked if self._snapshot else float("inf")

    def current(self) -> Snapshot:
        now = time.monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now - self._checked < REFRESH_SECONDS:
            return snapshot
        # One thread refreshes; the others keep serving the snapshot they have.
        if not self._lock.acquire(blocking=snapshot is None):
            return snapshot  # type: ignore[return-value]
        try:
            if self._snapshot is None or time.monotonic() - self._checked >= REFRESH_SECONDS:
                self._refresh()
            return self._snapshot  # type: ignore[return-value]
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        """Rebuild now (after a change made through this process), so no request served
        after the change sees the old snapshot."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        try:
            with self._db.sessions() as session:
                version = session.scalar(select(AppealConfig.version).where(AppealConfig.id == 1))
                tickers_due = time.monotonic() - self._ticker_at >= TICKER_SECONDS
                if self._snapshot is None or version != self._snapshot.version or tickers_due:
                    self._snapshot = self._build(session, version or 0)
                    observability.snapshot_built(self._snapshot.built_at)
                    self._ticker_at = time.monotonic()
        except Exception:
            if self._snapshot is None:
                raise
            # Keep serving the last good snapshot through a database blip.
            log.warning("appeal snapshot refresh failed; serving the previous one", exc_info=True)
        self._checked = time.monotonic()

    @staticmethod
    def _build(session: Session, version: int) -> Snapshot:
        row = session.get(AppealConfig, 1)
        rules = (
            AppealRules(
                blackout_sections=frozenset(s.lower() for s in row.blackout_sections or []),
                blackout_tags=frozenset(t.lower() for t in row.blackout_tags or []),
                killed_placements=frozenset(row.killed_placements or []),
                gate_after_articles=row.gate_after_articles,
                one_off_supporter_days=row.one_off_supporter_days,
            )
            if row is not None
            else AppealRules()
        )
        documents = [
            c.document for c in session.scalars(select(Campaign).where(Campaign.status != "ended"))
        ]
        snapshot = Snapshot.build(documents, rules, version)
        raised = {
            c.id: raised_for(session, c)
            for c in snapshot.campaigns
            if c.goal_amount and c.status == "live"
        }
        return Snapshot(snapshot.campaigns, rules, version, raised, utcnow())
