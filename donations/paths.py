"""Where the top-level templates/ and migrations/ folders are, installed or in a checkout.

A wheel carries them inside the package (see pyproject's force-include); a checkout or an
editable install finds them beside the package.
"""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    inside = PACKAGE / name
    if inside.is_dir():
        return inside
    return PACKAGE.parent / name


TEMPLATES = resource_dir("templates")
MIGRATIONS = resource_dir("migrations")
STATIC = PACKAGE / "static"
