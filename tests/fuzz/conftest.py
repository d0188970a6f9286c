"""The fuzz tests talk to the same live server as the integration tests and leave nothing
behind either: every table is emptied (and Redis and the login throttle reset) before each."""

from tests.integration.conftest import _clean_database  # noqa: F401  (autouse fixture)
