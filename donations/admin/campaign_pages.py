"""Campaign management pages under /admin/campaigns: list, create, edit (with the widget's live
preview), quick pause / resume / end, and delete with a confirmation.

Viewers may read every page; every change needs an editor and the session's CSRF token. The
editor page's script (static/admin/campaign-editor.js) sends the whole document to the JSON
admin API (`POST /api/v1/admin/campaigns`, `PATCH /api/v1/admin/campaigns/{id}`), so the one
CampaignDocument schema judges it and its 422 `errors` are shown beside each field; the quick
actions and delete are plain forms handled here through the same audited use cases.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from donations.admin.auth import current_principal, require_role
from donations.admin.campaign_errors import EDITOR_WORDS, plain_errors
from donations.admin.formatting import admin_locale, plain_major
from donations.admin.models import EDITOR, VIEWER
from donations.admin.views import NAV, pages
from donations.appeals.campaigns import (
    CampaignNotFound,
    all_campaigns,
    delete_campaign,
    update_campaign,
)
from donations.appeals.documents import FREQUENCIES, PLACEMENTS, STATUSES
from donations.appeals.models import Campaign
from donations.money import exponent
from donations.services import services

NAV.append(("admin.campaigns", "Campaigns"))

# What the quick actions on the list do: (label, the status it sets), by current status.
QUICK_ACTIONS: dict[str, list[tuple[str, str]]] = {
    "draft": [("Go live", "live")],
    "live": [("Pause", "paused"), ("End", "ended")],
    "paused": [("Resume", "live"), ("End", "ended")],
    "ended": [],
}
DONE = {"live": "is live", "paused": "is paused", "ended": "has ended", "draft": "is a draft"}


def blank_document() -> dict[str, Any]:
    """What a new campaign starts from: one control variant, the schema's own defaults."""
    return {
        "id": "",
        "name": "",
        "status": "draft",
        "placements": ["epic"],
        "priority": 0,
        "starts_at": None,
        "ends_at": None,
        "targeting": {
            "sections": {"include": [], "exclude": []},
            "tags": {"include": [], "exclude": []},
            "countries": {"include": [], "exclude": []},
            "languages": [],
            "articles_read": {"min": 0, "max": None},
        },
        "frequency": {"max_impressions": 4, "per_days": 30, "after_dismiss_days": 14},
        "goal": None,
        "holdback": 0.0,
        "variants": [
            {
                "id": "control",
                "weight": 1,
                "heading": "",
                "body_html": "",
                "cta_label": "Contribute today",
                "default_frequency": "monthly",
                "amounts": {"usd": {"one_off": [], "monthly": [], "annual": []}},
            }
        ],
    }


def _currencies() -> list[str]:
    return sorted(services().settings.currencies)


def _editor_config(doc: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """What the editor's script needs: where to send the document, currencies' exponents."""
    currencies = set(_currencies())
    for variant in doc.get("variants") or []:
        currencies.update(variant.get("amounts") or {})
    if doc.get("goal"):
        currencies.add(doc["goal"]["currency"])
    return {
        "creating": creating,
        "id": doc.get("id") or None,
        "collection_url": url_for("campaigns.Campaigns"),
        "item_url": url_for("campaigns.CampaignResource", campaign_id="__id__"),
        "edit_url": url_for("admin.campaigns_edit", campaign_id="__id__"),
        "preview_url": "/api/v1/admin/campaigns/preview",
        "exponents": {c: exponent(c) for c in sorted(currencies)},
        "locale": admin_locale().replace("_", "-"),
        "placements": list(PLACEMENTS),
        # errors in plain words, as `donations campaigns load` prints them
        "error_words": EDITOR_WORDS,
    }


def _editor(doc: dict[str, Any], *, creating: bool, status: int = 200) -> Response:
    principal = current_principal()
    html = render_template(
        "admin/campaign_edit.html",
        doc=doc,
        creating=creating,
        config=_editor_config(doc, creating=creating),
        statuses=STATUSES,
        placements=PLACEMENTS,
        frequencies=FREQUENCIES,
        currencies=_currencies(),
        plain_major=plain_major,
        can_edit=principal is not None and principal.may(EDITOR),
    )
    return Response(html, status=status, mimetype="text/html")


def _load(campaign_id: str) -> dict[str, Any]:
    with services().db.sessions() as session:
        row = session.get(Campaign, campaign_id)
        if row is None:
            abort(404)
        return dict(row.document)


@pages.get("/campaigns", endpoint="campaigns")
@require_role(VIEWER, EDITOR)
def campaign_list() -> str:
    with services().db.sessions() as session:
        documents = [dict(row.document) for row in all_campaigns(session)]
    order = {s: i for i, s in enumerate(("live", "paused", "draft", "ended"))}
    documents.sort(key=lambda d: (order.get(d.get("status", ""), 9), -d.get("priority", 0)))
    return render_template("admin/campaigns.html", campaigns=documents, quick_actions=QUICK_ACTIONS)


@pages.get("/campaigns/new", endpoint="campaigns_new")
@require_role(EDITOR)
def campaign_new() -> Response:
    return _editor(blank_document(), creating=True)


@pages.get("/campaigns/<campaign_id>", endpoint="campaigns_edit")
@require_role(VIEWER, EDITOR)
def campaign_edit(campaign_id: str) -> Response:
    return _editor(_load(campaign_id), creating=False)


@pages.post("/campaigns/<campaign_id>/status", endpoint="campaigns_status")
@require_role(VIEWER, EDITOR)
def campaign_status(campaign_id: str) -> Response:
    """The list's quick actions: pause, resume, go live, end."""
    status = request.form.get("status", "")
    if status not in STATUSES:
        abort(400, "Unknown status.")
    s = services()
    try:
        with s.db.transaction() as session:
            update_campaign(session, campaign_id, {"status": status})
    except CampaignNotFound:
        abort(404)
    except ValidationError as exc:
        # A document stored before a schema change may no longer validate: say so.
        flash(
            f"{campaign_id} could not be changed: {' '.join(plain_errors(exc.messages))}", "error"
        )
        return redirect(url_for("admin.campaigns"), code=303)
    s.appeals.invalidate()
    flash(f"{campaign_id} {DONE[status]}.", "ok")
    return redirect(url_for("admin.campaigns"), code=303)


@pages.route(
    "/campaigns/<campaign_id>/delete", methods=["GET", "POST"], endpoint="campaigns_delete"
)
@require_role(VIEWER, EDITOR)
def campaign_delete(campaign_id: str) -> Any:
    """GET asks for confirmation; POST deletes (counts and contributions keep attribution)."""
    if request.method == "GET":
        return render_template("admin/campaign_delete.html", doc=_load(campaign_id))
    s = services()
    try:
        with s.db.transaction() as session:
            delete_campaign(session, campaign_id)
    except CampaignNotFound:
        abort(404)
    s.appeals.invalidate()
    flash(f"{campaign_id} was deleted.", "ok")
    return redirect(url_for("admin.campaigns"), code=303)


@pages.app_template_filter("utc")
def utc(value: str | None) -> str:
    """A stored RFC 3339 UTC timestamp for people: "2020-12-01 00:00 UTC"."""
    return f"{value[:10]} {value[11:16]} UTC" if value else ""
