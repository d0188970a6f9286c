"""The admin dashboard at /admin/."""

from __future__ import annotations

from flask import render_template

from donations.admin.auth import require_role
from donations.admin.models import VIEWER
from donations.admin.views import pages


@pages.get("/", endpoint="dashboard")
@require_role(VIEWER)
def dashboard() -> str:
    return render_template("admin/dashboard.html")
