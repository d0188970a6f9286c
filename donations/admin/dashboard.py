"""The admin dashboard at /admin/: a date range and a currency in the URL, and the page's
script (static/admin/dashboard.js) draws the report endpoints' JSON for them.

Money is never summed across currencies: totals are listed per currency, and the chart and
funnel show one currency at a time, each in that currency's own format.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from donations.admin.auth import require_role
from donations.admin.formatting import admin_locale
from donations.admin.models import VIEWER
from donations.admin.views import pages
from donations.ledger.models import JournalEntry
from donations.money import exponent
from donations.reports.views import RangeQuery, resolve_range
from donations.services import services

PRESETS = ((7, "Last 7 days"), (30, "Last 30 days"), (90, "Last 90 days"), (365, "Last 365 days"))


def currencies_in_books() -> list[str]:
    """The currencies anything was ever booked in (else the accepted ones)."""
    with services().db.sessions() as session:
        booked = set(session.scalars(select(JournalEntry.currency).distinct()))
    return sorted(booked or services().settings.currencies)


@pages.get("/", endpoint="dashboard")
@require_role(VIEWER)
def dashboard() -> str:
    errors: dict[str, Any] = {}
    try:
        args = RangeQuery().load({k: v for k, v in request.args.items() if k in ("from", "to")})
    except ValidationError as exc:
        errors = exc.normalized_messages()
        args = {}
    start, end = resolve_range(args)
    currencies = currencies_in_books()
    currency = request.args.get("currency", "").lower()
    if currency not in currencies:
        currency = "usd" if "usd" in currencies else currencies[0]
    today = date.today()
    presets = [
        {
            "label": label,
            "from": today - timedelta(days=days - 1),
            "to": today,
            "current": start == today - timedelta(days=days - 1) and end == today,
        }
        for days, label in PRESETS
    ]
    config = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "currency": currency,
        "locale": admin_locale().replace("_", "-"),
        "exponents": {c: exponent(c) for c in currencies},
        "urls": {
            "summary": url_for("reports.Summary"),
            "daily": "/api/v1/admin/reports/daily",
            "articles": "/api/v1/admin/reports/articles",
            "experiments": "/api/v1/admin/reports/experiments",
            "recurring": "/api/v1/admin/reports/recurring",
            "campaign": url_for("admin.campaigns_edit", campaign_id="__id__"),
        },
    }
    return render_template(
        "admin/dashboard.html",
        start=start,
        end=end,
        currency=currency,
        currencies=currencies,
        presets=presets,
        errors=errors,
        config=config,
        csv_url="/api/v1/admin/contributions?"
        + f"format=csv&from={start.isoformat()}&to={end.isoformat()}",
    )


# The campaign pages add their routes to the same blueprint.
from donations.admin import campaign_pages  # noqa: E402, F401
