"""WSGI entry point, e.g. `granian --interface wsgi donations.wsgi:app` or gunicorn."""

from donations.app import create_app

app = create_app()
