"""Throttling sign-in link requests per email and per client address.

Every request counts, whether or not the email belongs to a donor, so being throttled says
nothing about an address's existence. Shared through Redis when REDIS_URL is set (the same
machinery as the admin login limiter); emails are counted by their SHA-256, never in clear.
"""

from __future__ import annotations

from limits import RateLimitItem, parse

from donations.admin.ratelimit import Verdict, WindowLimiter, digest

PER_EMAIL = parse("3/15minutes")
PER_ADDRESS = parse("20/15minutes")


class SignInLimiter(WindowLimiter):
    def _keys(self, email: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        return [
            (PER_EMAIL, "donor-link-email", digest(email)),
            (PER_ADDRESS, "donor-link-address", address),
        ]

    def attempt(self, email: str, address: str) -> Verdict:
        """Count this request unless it is over a limit; answers whether it may go ahead."""
        verdict = self.check(email, address)
        if verdict.allowed:
            self.failed(email, address)  # i.e. count it
        return verdict
