"""Login throttling per account and per client address (the `limits` library).

Redis when REDIS_URL is set, so every worker shares the counts; in-process otherwise (one
worker's view, fine for a laptop). A Redis outage falls back to in-process counting rather
than locking everyone out or letting everyone in unthrottled.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import cast

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

# Failed attempts only: five per account, thirty per address (enough for a shared office).
PER_ACCOUNT = parse("5/15minutes")
PER_ADDRESS = parse("30/15minutes")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


class LoginLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        if redis_url:
            storage = cast(Storage, storage_from_string(redis_url))
            self.shared = MovingWindowRateLimiter(storage)

    def _run(self, method: str, *args: object) -> object:
        if self.shared is not None:
            try:
                return getattr(self.shared, method)(*args)
            except Exception as exc:  # Redis down: count in-process instead
                log.warning("login limiter: Redis unavailable (%s); counting in-process", exc)
        return getattr(self.memory, method)(*args)

    def _keys(self, email: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        return [(PER_ACCOUNT, "login-account", email), (PER_ADDRESS, "login-address", address)]

    def check(self, email: str, address: str) -> Verdict:
        """May this address try this account now? Counts nothing."""
        wait = 0
        for item, *key in self._keys(email, address):
            if not self._run("test", item, *key):
                stats = self._run("get_window_stats", item, *key)
                reset = getattr(stats, "reset_time", time.time() + item.get_expiry())
                wait = max(wait, math.ceil(reset - time.time()), 1)
        return Verdict(wait == 0, wait)

    def failed(self, email: str, address: str) -> None:
        for item, *key in self._keys(email, address):
            self._run("hit", item, *key)

    def succeeded(self, email: str, _address: str) -> None:
        """A right password clears the account's count; the address keeps its failures."""
        self._run("clear", PER_ACCOUNT, "login-account", email)

    def reset(self) -> None:
        """Forget every count (tests; an operator unlocking everyone)."""
        self.memory.storage.reset()
        if self.shared is not None:
            try:
                self.shared.storage.reset()
            except Exception as exc:  # Redis down: nothing shared to forget
                log.warning("login limiter: could not reset Redis counts (%s)", exc)
