"""The admin login throttle: per account and address, with a progressive delay, so wrong
passwords cost whoever sends them and never the account's owner at an address that has not
failed. Counted in process memory with a clock the test moves."""

from __future__ import annotations

import pytest

from donations.admin.ratelimit import (
    FORGET_AFTER,
    MAX_DELAY,
    LoginLimiter,
    account_delay,
    pair_delay,
)

ADMIN = "ed@example.org"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> LoginLimiter:
    return LoginLimiter(None, clock=clock)


def test_the_right_password_from_an_address_that_has_not_failed_is_never_refused(limiter):
    for i in range(200):  # a distributed guess: many addresses, many tries each
        for _ in range(3):
            limiter.failed(ADMIN, f"203.0.113.{i}")
    assert limiter.check(ADMIN, "198.51.100.7").allowed
    assert limiter.check(ADMIN.upper(), "198.51.100.7").allowed


def test_each_failure_from_an_address_makes_its_next_try_wait_longer(limiter, clock):
    waits = []
    for _ in range(7):
        limiter.failed(ADMIN, "192.0.2.1")
        waits.append(limiter.check(ADMIN, "192.0.2.1").retry_after)
    assert waits == [0, 1, 2, 4, 8, 16, 32]
    clock.now += 31
    assert not limiter.check(ADMIN, "192.0.2.1").allowed
    clock.now += 1
    assert limiter.check(ADMIN, "192.0.2.1").allowed
    assert [pair_delay(n) for n in (1, 2, 12, 50)] == [0, 1, MAX_DELAY, MAX_DELAY]


def test_an_account_under_attack_slows_the_addresses_that_failed_on_it(limiter, clock):
    limiter.failed(ADMIN, "192.0.2.1")  # the admin's own typo: no wait on its own
    assert limiter.check(ADMIN, "192.0.2.1").allowed
    for i in range(12):  # others guess from many addresses
        limiter.failed(ADMIN, f"203.0.113.{i}")
    verdict = limiter.check(ADMIN, "192.0.2.1")
    assert not verdict.allowed and verdict.retry_after == account_delay(13) == 2**8
    assert limiter.check(ADMIN, "198.51.100.7").allowed  # an address that never failed
    assert limiter.check("other@example.org", "192.0.2.1").allowed  # another account


def test_an_address_guessing_across_accounts_is_stopped_after_thirty_failures(limiter):
    for i in range(30):
        limiter.failed(f"guess{i}@example.org", "192.0.2.9")
    verdict = limiter.check(ADMIN, "192.0.2.9")
    assert not verdict.allowed and 0 < verdict.retry_after <= 15 * 60
    assert limiter.check(ADMIN, "192.0.2.10").allowed


def test_the_right_password_clears_the_accounts_delays(limiter):
    for i in range(10):
        limiter.failed(ADMIN, f"203.0.113.{i}")
    limiter.failed(ADMIN, "192.0.2.1")
    limiter.failed(ADMIN, "192.0.2.1")
    assert not limiter.check(ADMIN, "192.0.2.1").allowed
    limiter.succeeded(ADMIN, "198.51.100.7")  # the owner got in from their desk
    assert not limiter.check(ADMIN, "192.0.2.1").allowed  # that address's own delay stays
    limiter.succeeded(ADMIN, "192.0.2.1")
    assert limiter.check(ADMIN, "192.0.2.1").allowed


def test_failures_are_forgotten_an_hour_after_the_last(limiter, clock):
    for _ in range(12):
        limiter.failed(ADMIN, "192.0.2.1")
    assert limiter.check(ADMIN, "192.0.2.1").retry_after == MAX_DELAY
    clock.now += FORGET_AFTER
    assert limiter.check(ADMIN, "192.0.2.1").allowed
    limiter.failed(ADMIN, "192.0.2.1")  # counting starts afresh: a first failure again
    assert limiter.check(ADMIN, "192.0.2.1").allowed
