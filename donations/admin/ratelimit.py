"""Throttling staff logins so that wrong passwords cost whoever sends them, not the account's
owner: per account *and* address, with a progressive delay.

- Each (account, address) pair that fails waits longer before its next try: nothing after a
  first slip, then 1 s, 2 s, 4 s … doubling up to 15 minutes (`pair_delay`).
- An account failed on from many addresses (a distributed guess) adds its own delay, growing
  the same way after 5 failures, but only for addresses that have themselves failed on it.
- An address failing across many accounts is stopped after 30 failures in 15 minutes.

So an address that has not failed is never refused: five wrong passwords for an admin's email
from five addresses no longer lock the real admin out from their own desk. Failures are
forgotten an hour after the last one, and the right password clears its account's delays.

Counts are shared through Redis when REDIS_URL is set (every worker sees them), else held in
process memory; a Redis outage falls back to process memory rather than locking everyone out
or letting everyone in unthrottled. Emails are kept as SHA-256 digests, never in clear.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

PER_ADDRESS = parse("30/15minutes")  # failures from one address, whatever the accounts
MAX_DELAY = 15 * 60  # seconds: the longest any one wait gets
FORGET_AFTER = 60 * 60  # seconds without a failure, then a pair or account starts afresh
ACCOUNT_FREE_FAILURES = 5  # an account's own delay starts after this many failures on it
PREFIX = "donations-login"


def pair_delay(failures: int) -> int:
    """Seconds an address waits after its n-th consecutive failure on one account."""
    return 0 if failures <= 1 else min(2 ** (failures - 2), MAX_DELAY)


def account_delay(failures: int) -> int:
    """Seconds an account under attack adds for the addresses that failed on it."""
    extra = failures - ACCOUNT_FREE_FAILURES
    return 0 if extra < 0 else min(2**extra, MAX_DELAY)


def digest(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


class _Failures:
    """How many failures a key has had and when the last was; forgotten FORGET_AFTER later.

    Redis hashes when a URL is given (falling back to process memory while Redis is down),
    else process memory alone."""

    def __init__(self, redis_url: str | None) -> None:
        self._memory: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )

    def _shared(self, what: str, run: Callable[[Any], Any]) -> tuple[bool, Any]:
        if self._redis is None:
            return False, None
        try:
            return True, run(self._redis)
        except Exception as exc:  # Redis down: count in-process instead
            log.warning("login limiter: Redis unavailable to %s (%s); in-process", what, exc)
            return False, None

    def read(self, key: str, now: float) -> tuple[int, float]:
        name = f"{PREFIX}:{key}"
        ok, found = self._shared("read", lambda r: r.hmget(name, "n", "t"))
        if ok:
            count, last = found
            return (int(count), float(last)) if count and last else (0, 0.0)
        with self._lock:
            count, last = self._memory.get(key, (0, 0.0))
        return (count, last) if now - last < FORGET_AFTER else (0, 0.0)

    def add(self, key: str, now: float) -> None:
        name = f"{PREFIX}:{key}"

        def record(r: Any) -> None:
            pipe = r.pipeline()
            pipe.hincrby(name, "n", 1)
            pipe.hset(name, "t", repr(now))
            pipe.expire(name, FORGET_AFTER)
            pipe.execute()

        ok, _ = self._shared("count", record)
        if ok:
            return
        with self._lock:
            if len(self._memory) > 10_000:  # drop the forgotten ones now and then
                self._memory = {k: v for k, v in self._memory.items() if now - v[1] < FORGET_AFTER}
            count, last = self._memory.get(key, (0, 0.0))
            count = count if now - last < FORGET_AFTER else 0
            self._memory[key] = (count + 1, now)

    def clear(self, key: str) -> None:
        self._shared("clear", lambda r: r.delete(f"{PREFIX}:{key}"))
        with self._lock:
            self._memory.pop(key, None)

    def reset(self) -> None:
        def forget(r: Any) -> None:
            for name in r.scan_iter(match=f"{PREFIX}:*"):
                r.delete(name)

        self._shared("reset", forget)
        with self._lock:
            self._memory.clear()

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


class WindowLimiter:
    """Moving-window counts (the `limits` library) per key; subclasses name the keys."""

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
        raise NotImplementedError

    def _window_wait(self, keys: list[tuple[RateLimitItem, str, str]]) -> int:
        """Seconds until every window in `keys` has room again (0: now)."""
        wait = 0
        for item, *key in keys:
            if not self._run("test", item, *key):
                stats = self._run("get_window_stats", item, *key)
                reset = getattr(stats, "reset_time", time.time() + item.get_expiry())
                wait = max(wait, math.ceil(reset - time.time()), 1)
        return wait

    def check(self, email: str, address: str) -> Verdict:
        """May this address try this account now? Counts nothing."""
        wait = self._window_wait(self._keys(email, address))
        return Verdict(wait == 0, wait)

    def failed(self, email: str, address: str) -> None:
        for item, *key in self._keys(email, address):
            self._run("hit", item, *key)

    def reset(self) -> None:
        """Forget every count (tests; an operator unlocking everyone)."""
        self.memory.storage.reset()
        if self.shared is not None:
            try:
                self.shared.storage.reset()
            except Exception as exc:  # Redis down: nothing shared to forget
                log.warning("login limiter: could not reset Redis counts (%s)", exc)


class LoginLimiter(WindowLimiter):
    """The admin login's throttle (see the module's docstring)."""

    def __init__(self, redis_url: str | None = None, clock: Callable[[], float] = time.time):
        super().__init__(redis_url)
        self.failures = _Failures(redis_url)
        self.clock = clock

    def _keys(self, email: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        return [(PER_ADDRESS, "login-address", address)]

    @staticmethod
    def _pair(email: str, address: str) -> str:
        return f"pair:{digest(email)}:{address}"

    @staticmethod
    def _account(email: str) -> str:
        return f"account:{digest(email)}"

    def check(self, email: str, address: str) -> Verdict:
        """May this address try this account now? Counts nothing. Never refuses an address
        that has no failures on record."""
        now = self.clock()
        pair_failures, pair_last = self.failures.read(self._pair(email, address), now)
        wait = 0.0
        if pair_failures:
            wait = pair_last + pair_delay(pair_failures) - now
            account_failures, account_last = self.failures.read(self._account(email), now)
            wait = max(wait, account_last + account_delay(account_failures) - now)
        ceiling = self._window_wait(self._keys(email, address))
        seconds = max(math.ceil(wait), ceiling)
        return Verdict(seconds <= 0, max(seconds, 0))

    def failed(self, email: str, address: str) -> None:
        now = self.clock()
        super().failed(email, address)
        self.failures.add(self._pair(email, address), now)
        self.failures.add(self._account(email), now)

    def succeeded(self, email: str, address: str) -> None:
        """The right password: this account's delays are over (the owner is in); the address
        keeps its failures against other accounts."""
        self.failures.clear(self._pair(email, address))
        self.failures.clear(self._account(email))

    def reset(self) -> None:
        super().reset()
        self.failures.reset()
