"""Fault tests use the integration tests' live server and leave nothing behind either: every
table is emptied (and Redis and the login throttle reset) before each."""

from tests.integration.conftest import _clean_database  # noqa: F401  (autouse fixture)
