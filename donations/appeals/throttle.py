"""How much one client can move the funnel: limits on counted events per client address and
per impression token (the `limits` library, moving windows).

In any 60 seconds, one client address gets at most:

- per impression token (one variant of one campaign in one placement of one article, for an
  hour): 1 impression, 1 view, and 3 clicks or dismissals;
- in all: PER_ADDRESS (60) events, of which PER_ADDRESS_ACTIONS (10) clicks or dismissals.

Events beyond are not counted (the answer is still 202, with the number counted). Duplicates
are refused per token before they use the address's budget, so one noisy tab does not use up
what its neighbours behind the same address may count. IPv6 clients are limited per /64 (one
subscriber's usual allocation).

Counts are shared through Redis when REDIS_URL is set (every instance and worker together:
limits' moving windows in Redis); in-process otherwise (InProcessWindows, below). While Redis
is unreachable each process counts on its own (so the bound holds per process), retrying Redis
every few seconds.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from donations.appeals.events import REDIS_PREFIX, Event

log = logging.getLogger(__name__)

PER_ADDRESS = parse("60/minute")
PER_ADDRESS_ACTIONS = parse("10/minute")
PER_TOKEN: Mapping[str, RateLimitItem] = {
    "impression": parse("1/minute"),
    "view": parse("1/minute"),
    "action": parse("3/minute"),  # clicks and dismissals together
}
ACTIONS = frozenset({"click", "dismiss"})
# Under the events prefix, so whatever clears the event keys (tests) clears these too.
KEY_PREFIX = REDIS_PREFIX + "limits"
REDIS_RETRY_SECONDS = 5.0
EXTENSION = "donations.event_limiter"


def _kind(event_type: str) -> str:
    return "action" if event_type in ACTIONS else event_type


def client_key(address: str) -> str:
    """The address a limit applies to: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        mapped = cast(ipaddress.IPv6Address, ip).ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class Remaining:
    remaining: int


class InProcessWindows:
    """Moving windows in this process's memory, for many short-lived keys (one per client and
    token): the `limits` library's own memory storage sweeps every key every 10 ms, which
    with a key per client and token burns a CPU. Here a key's old hits go when it is next
    used, and keys nobody used for a window go in a sweep every SWEEP_SECONDS. Same
    interface as limits' MovingWindowRateLimiter (hit, get_window_stats), same items."""

    SWEEP_SECONDS = 10.0

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, list[float]]] = {}  # key → (window, hit times)
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def _recent(self, item: RateLimitItem, ident: tuple[str, ...], now: float) -> list[float]:
        window = float(item.get_expiry())
        key = item.key_for(*ident)
        found = self._hits.get(key)
        if found is None:
            found = self._hits[key] = (window, [])
        times = found[1]
        del times[: bisect.bisect_right(times, now - window)]
        if now - self._swept >= self.SWEEP_SECONDS:
            self._swept = now
            self._hits = {
                k: v for k, v in self._hits.items() if (v[1] and v[1][-1] > now - v[0]) or k == key
            }
        return times

    def hit(self, item: RateLimitItem, *ident: str, cost: int = 1) -> bool:
        with self._lock:
            now = time.monotonic()
            times = self._recent(item, ident, now)
            if len(times) + cost > item.amount:
                return False
            times.extend([now] * cost)
            return True

    def get_window_stats(self, item: RateLimitItem, *ident: str) -> Remaining:
        with self._lock:
            return Remaining(item.amount - len(self._recent(item, ident, time.monotonic())))

    def reset(self) -> None:
        with self._lock:
            self._hits = {}


class EventLimiter:
    def __init__(
        self,
        redis_url: str | None = None,
        *,
        per_address: RateLimitItem = PER_ADDRESS,
        per_address_actions: RateLimitItem = PER_ADDRESS_ACTIONS,
        per_token: Mapping[str, RateLimitItem] = PER_TOKEN,
    ) -> None:
        self.per_address = per_address
        self.per_address_actions = per_address_actions
        self.per_token = dict(per_token)
        self.memory = InProcessWindows()
        self.shared: MovingWindowRateLimiter | None = None
        self._down_until = 0.0
        if redis_url:
            storage = storage_from_string(
                redis_url,
                key_prefix=KEY_PREFIX,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            self.shared = MovingWindowRateLimiter(cast(Storage, storage))

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.shared is not None and time.monotonic() >= self._down_until:
            try:
                return getattr(self.shared, method)(*args, **kwargs)
            except Exception as exc:  # Redis down: count in-process meanwhile
                self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("event limits: Redis unavailable (%s); counting in-process", exc)
        return getattr(self.memory, method)(*args, **kwargs)

    def _grant(self, item: RateLimitItem, ident: tuple[str, ...], wanted: int) -> int:
        """Take up to `wanted` from a limit; how many it gave."""
        wanted = min(wanted, item.amount)
        if wanted <= 0:
            return 0
        if wanted == 1:
            return 1 if self._call("hit", item, *ident) else 0
        for _ in range(3):  # another request may take some between the two calls
            remaining = self._call("get_window_stats", item, *ident).remaining
            n = min(wanted, remaining)
            if n <= 0:
                return 0
            if self._call("hit", item, *ident, cost=n):
                return int(n)
        return 0

    def admit(self, address: str, events: Sequence[Event]) -> list[Event]:
        """The events (in order) that this client may still have counted now; takes them from
        its budgets."""
        if not events:
            return []
        client = client_key(address)
        room = self._call("get_window_stats", self.per_address, "address", client).remaining
        if room <= 0:
            return []  # the cheap answer to a flood: one call, no token budget used
        groups: dict[tuple[str, str], list[int]] = {}
        for i, event in enumerate(events):
            groups.setdefault((event.impression or "", _kind(event.type)), []).append(i)
        keep: list[int] = []
        for (token, kind), indexes in groups.items():
            granted = self._grant(
                self.per_token[kind], ("token", client, token, kind), len(indexes)
            )
            keep += indexes[:granted]
        keep.sort()
        actions = [i for i in keep if events[i].type in ACTIONS]
        if actions:
            granted = self._grant(self.per_address_actions, ("actions", client), len(actions))
            refused = set(actions[granted:])
            keep = [i for i in keep if i not in refused]
        granted = self._grant(self.per_address, ("address", client), len(keep))
        return [events[i] for i in keep[:granted]]

    def reset(self) -> None:
        """Forget every count (tests; an operator after an incident)."""
        self.memory.reset()
        if self.shared is not None:
            try:
                self.shared.storage.reset()
            except Exception as exc:
                log.warning("event limits: could not reset Redis counts (%s)", exc)


_creating = threading.Lock()


def from_settings(settings: Any) -> EventLimiter:
    """The limiter for these settings. The per-address budgets may be configured
    (`events_limit_per_address`, `events_limit_per_address_actions`: e.g. "60/minute");
    the per-token ones are the bound itself."""
    per_address = getattr(settings, "events_limit_per_address", None)
    per_actions = getattr(settings, "events_limit_per_address_actions", None)
    return EventLimiter(
        settings.redis_url,
        per_address=parse(per_address) if per_address else PER_ADDRESS,
        per_address_actions=parse(per_actions) if per_actions else PER_ADDRESS_ACTIONS,
    )


def event_limiter(app: Any) -> EventLimiter:
    """The app's event limiter (made on first use from its settings)."""
    limiter = app.extensions.get(EXTENSION)
    if limiter is None:
        with _creating:
            limiter = app.extensions.get(EXTENSION)
            if limiter is None:
                limiter = from_settings(app.extensions["donations"].settings)
                app.extensions[EXTENSION] = limiter
    return cast(EventLimiter, limiter)
