"""Reader-facing appeal API (hot path) and the admin campaign API."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate

from donations.admin import audit
from donations.admin.auth import require_role
from donations.admin.models import EDITOR, VIEWER
from donations.admin.tokens import authenticate, bearer_token
from donations.appeals import throttle
from donations.appeals.campaigns import (
    CampaignExists,
    CampaignNotFound,
    all_campaigns,
    create_campaign,
    delete_campaign,
    update_campaign,
)
from donations.appeals.candidates import (
    CANDIDATES_CACHE_CONTROL,
    VERSION_CACHE_CONTROL,
    not_modified,
    shared_headers,
)
from donations.appeals.documents import CampaignDocument, CampaignPatch
from donations.appeals.events import EVENT_TYPES
from donations.appeals.fastpath import CACHE_CONTROL
from donations.appeals.models import Campaign
from donations.appeals.service import (
    PLACEMENTS,
    InvalidInput,
    answer_appeal,
    count_events,
    parse_events,
)
from donations.appeals.snapshot import bump_version, config_row
from donations.appeals.throttle import event_limiter
from donations.errors import problem
from donations.security import client_address
from donations.services import services

reader = Blueprint("appeals", __name__, description="What to show readers, and what they did.")
admin = Blueprint(
    "campaigns", __name__, url_prefix="/api/v1/admin", description="Campaigns (admin)."
)


class AppealQueryDoc(Schema):
    """Documents the query (parsed by hand on this hot path with the same rules)."""

    article = fields.String(required=True, validate=validate.Length(min=1, max=200))
    placement = fields.String(load_default="epic", validate=validate.OneOf(PLACEMENTS))
    section = fields.String()
    tags = fields.String(metadata={"description": "Comma-separated"})
    lang = fields.String(load_default="en")
    country = fields.String(metadata={"description": "ISO 3166-1 alpha-2; else the CDN header"})
    url = fields.String()
    views = fields.Integer(metadata={"description": "Articles read in the last 30 days"})
    rid = fields.String(metadata={"description": "Opaque random reader id for A/B bucketing"})
    dismissed = fields.String(metadata={"description": "Comma-separated campaign ids"})
    last_dismissed = fields.DateTime()
    seen = fields.String(
        metadata={
            "description": "Additive: impressions per campaign in its cap window, "
            "`campaign:count,…`, kept by the widget"
        }
    )
    supporter = fields.String(metadata={"description": "Signed supporter token"})
    debug = fields.Boolean(metadata={"description": "With an admin token: explain the choice"})


class EventDoc(Schema):
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    impression = fields.String(
        metadata={
            "description": "The `impression` token of the appeal answer the event is about "
            "(`imp_` and 20 url-safe characters, signed by the service for that campaign, "
            "variant, placement and article, valid for a day). Without a valid one the event "
            "is not counted."
        }
    )
    campaign = fields.String(required=True)
    variant = fields.String(required=True)
    placement = fields.String(required=True)
    article = fields.String(required=True)


class EventsDoc(Schema):
    events = fields.List(
        fields.Nested(EventDoc), required=True, validate=validate.Length(min=1, max=50)
    )


class AcceptedSchema(Schema):
    accepted = fields.Integer(
        metadata={"description": "How many of the events were counted (see the 202 answer)"}
    )


EVENTS_COUNTED = (
    "The batch was valid. `accepted` is how many events were counted: an event counts only "
    "with a valid impression token (issued by `GET /api/v1/appeal` for that campaign, variant, "
    "placement and article within the last day), for a campaign and variant that exist, and "
    "within the client's limits: in any 60 seconds, per client address (IPv6: per /64), at "
    f"most {throttle.PER_ADDRESS.amount} events of which {throttle.PER_ADDRESS_ACTIONS.amount} "
    "clicks or dismissals (by default), and per impression token "
    f"{throttle.PER_TOKEN['impression'].amount} impression, {throttle.PER_TOKEN['view'].amount} "
    f"view and {throttle.PER_TOKEN['action'].amount} clicks or dismissals. The others are "
    "dropped without an error (a reader's tab left open for two days is not one)."
)


def _cache_headers(response: Response, *, private: bool) -> Response:
    if private:
        response.headers["Cache-Control"] = "private, no-store"
    else:
        response.headers["Cache-Control"] = CACHE_CONTROL
    vary = ["Origin"]
    header = services().settings.country_header
    if header:
        vary.append(header)
    response.headers["Vary"] = ", ".join(vary)
    return response


@reader.route("/api/v1/appeal", methods=["GET"])
@reader.doc(
    parameters=[
        {"in": "query", "name": name, "schema": {"type": "string"}, "required": name == "article"}
        for name in AppealQueryDoc().fields
    ],
    responses={
        "200": {
            "description": "The appeal to show. Its `impression` is a token the service signs "
            "for this campaign, variant, placement and article (and the hour; no reader): send "
            "it with the appeal's events, which count only with it, for a day."
        },
        "204": {"description": "Nothing to show (supporter, cap, blackout, no campaign)"},
        "422": {"description": "A query value is invalid; `errors` names it"},
    },
)
def appeal() -> Response:
    """Choose the appeal for one reader on one article (a function of the URL: cacheable)."""
    s = services()
    settings = s.settings
    header_country = (
        request.headers.get(settings.country_header) if settings.country_header else None
    )
    try:
        _req, debug, body, explain = answer_appeal(s, request.args, header_country)
    except InvalidInput as exc:
        return problem(422, "Invalid request", "Some query values are invalid.", errors=exc.errors)
    if debug:
        token = bearer_token()
        with s.db.transaction() as session:
            if token is None or authenticate(session, token) is None:
                return problem(401, "Unauthorized", "debug=1 needs an admin bearer token.")
    if body is None and not debug:
        response = current_app.response_class(status=204)
    else:
        payload: dict[str, Any] = {"appeal": body}
        if debug:
            payload["explain"] = explain
        response = jsonify(payload)
    return _cache_headers(response, private=debug)


PAGE_QUERY = [
    {"in": "query", "name": "article", "required": True, "schema": {"type": "string"}},
    {
        "in": "query",
        "name": "placement",
        "schema": {"type": "string", "enum": list(PLACEMENTS), "default": "epic"},
    },
    {"in": "query", "name": "section", "schema": {"type": "string"}},
    {
        "in": "query",
        "name": "tags",
        "schema": {"type": "string"},
        "description": "Comma-separated",
    },
    {"in": "query", "name": "lang", "schema": {"type": "string", "default": "en"}},
    {
        "in": "query",
        "name": "country",
        "schema": {"type": "string"},
        "description": "ISO 3166-1 alpha-2; else the configured CDN header",
    },
    {
        "in": "query",
        "name": "v",
        "schema": {"type": "string"},
        "description": "The campaigns' version (`GET /api/v1/appeals/version`): a new URL, so "
        "caches are bypassed, as soon as an editor changes a campaign",
    },
]


def _shared_answer(answer: Any, cache_control: str) -> Response:
    s = services()
    if not_modified(request.headers.get("If-None-Match"), answer.etag):
        response = current_app.response_class(status=304)
    else:
        response = current_app.response_class(answer.body, mimetype="application/json")
    response.headers["Cache-Control"] = cache_control
    response.headers["ETag"] = answer.etag
    for name, value in shared_headers(s.settings, request.headers.get("Origin")):
        response.headers[name] = value
    return response


@reader.route("/api/v1/appeals", methods=["GET"])
@reader.doc(
    parameters=PAGE_QUERY,
    responses={
        "200": {
            "description": "Everything this page's readers may be shown, highest priority "
            "first, and what a browser needs to decide for its reader "
            "(docs/appeals-in-the-browser.md). Names no reader: one answer, cached by a CDN "
            "(`public, s-maxage=60, stale-while-revalidate=60`, an `ETag`), serves every "
            "reader of the article."
        },
        "304": {"description": "Not modified (`If-None-Match` names the current ETag)"},
        "422": {"description": "A query value is invalid, or names the reader"},
    },
)
def appeals() -> Response:
    """The candidate appeals of one page, for the browser to choose among (additive)."""
    s = services()
    header = s.settings.country_header
    country = request.headers.get(header) if header else None
    try:
        answer = s.candidates.get(s, request.args, country)
    except InvalidInput as exc:
        return problem(422, "Invalid request", "Some query values are invalid.", errors=exc.errors)
    return _shared_answer(answer, CANDIDATES_CACHE_CONTROL)


@reader.route("/api/v1/appeals/version", methods=["GET"])
@reader.doc(
    responses={
        "200": {
            "description": '`{"version": N}`: the campaign set\'s version, which moves when '
            "an editor changes a campaign or the appeal settings (cached 10 s)"
        }
    }
)
def appeals_version() -> Response:
    """The campaigns' version, for the widget's `v` parameter."""
    s = services()
    return _shared_answer(s.candidates.version(s), VERSION_CACHE_CONTROL)


@reader.route("/api/v1/events", methods=["POST"])
@reader.doc(
    requestBody={
        "required": True,
        "content": {
            "application/json": {"schema": EventsDoc},
            "text/plain": {"schema": EventsDoc},
        },
    },
    responses={
        "202": {
            "description": EVENTS_COUNTED,
            "content": {"application/json": {"schema": AcceptedSchema}},
        },
        "422": {"description": "Invalid batch: nothing was counted"},
    },
)
def events() -> tuple[Response, int] | Response:
    """Count a batch of widget events (at most 50; also as text/plain for sendBeacon)."""
    s = services()
    try:
        parsed = parse_events(request.get_data(cache=False))
    except json.JSONDecodeError:
        return problem(400, "Bad Request", "The body is not valid JSON.")
    except InvalidInput as exc:
        return problem(422, "Invalid request", "No event was counted.", errors=exc.errors)
    limiter = event_limiter(current_app)
    counted = count_events(s, parsed, client_address(), limiter, now=time.time())
    return jsonify({"accepted": counted}), 202


# --- admin: campaigns ----------------------------------------------------------------------------
class CampaignList(Schema):
    campaigns = fields.List(fields.Nested(CampaignDocument))


def _validation_problem(exc: ValidationError) -> Response:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return problem(422, "Invalid campaign", "The campaign document is invalid.", errors=messages)


def _stored(document: dict[str, Any], status: int = 200) -> Response:
    """The stored document as is (it is already JSON: timestamps are RFC 3339 strings)."""
    response = jsonify(document)
    response.status_code = status
    return response


@admin.route("/campaigns")
class Campaigns(MethodView):
    decorators = [require_role(VIEWER, EDITOR)]

    @admin.response(200, CampaignList)
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self) -> Response:
        """Every campaign document."""
        with services().db.sessions() as session:
            return jsonify({"campaigns": [r.document for r in all_campaigns(session)]})

    @admin.arguments(CampaignDocument)
    @admin.response(201, CampaignDocument)
    @admin.alt_response(409, description="A campaign with this id exists")
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def post(self, doc: dict[str, Any]) -> Any:
        """Create a campaign."""
        s = services()
        try:
            with s.db.transaction() as session:
                row = create_campaign(session, doc)
        except CampaignExists:
            return problem(409, "Conflict", f"Campaign {doc['id']!r} exists; PATCH it.")
        s.appeals.invalidate()
        return _stored(row.document, 201)


@admin.route("/campaigns/<campaign_id>")
class CampaignResource(MethodView):
    decorators = [require_role(VIEWER, EDITOR)]

    @admin.response(200, CampaignDocument)
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self, campaign_id: str) -> Any:
        """One campaign document."""
        with services().db.sessions() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                return problem(404, "Not Found", f"No campaign {campaign_id!r}.")
            return _stored(row.document)

    @admin.arguments(CampaignPatch(partial=True))
    @admin.response(200, CampaignDocument)
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def patch(self, _partial: dict[str, Any], campaign_id: str) -> Any:
        """Change some fields; the whole result is validated again."""
        s = services()
        changes = request.get_json(silent=True) or {}
        try:
            with s.db.transaction() as session:
                row = update_campaign(session, campaign_id, changes)
        except CampaignNotFound as exc:
            return problem(404, "Not Found", str(exc))
        except ValidationError as exc:
            return _validation_problem(exc)
        s.appeals.invalidate()
        return _stored(row.document)

    @admin.response(204)
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def delete(self, campaign_id: str) -> Any:
        """Delete a campaign (its counts and contributions keep their attribution)."""
        s = services()
        try:
            with s.db.transaction() as session:
                delete_campaign(session, campaign_id)
        except CampaignNotFound as exc:
            return problem(404, "Not Found", str(exc))
        s.appeals.invalidate()
        return None


class AppealSettingsSchema(Schema):
    blackout_sections = fields.List(fields.String(validate=validate.Length(min=1, max=100)))
    blackout_tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)))
    killed_placements = fields.List(fields.String(validate=validate.OneOf(PLACEMENTS)))
    gate_after_articles = fields.Integer(validate=validate.Range(min=1, max=1000))
    one_off_supporter_days = fields.Integer(validate=validate.Range(min=0, max=3650))


@admin.route("/appeal-settings")
class AppealSettings(MethodView):
    decorators = [require_role(VIEWER, EDITOR)]

    @admin.response(200, AppealSettingsSchema)
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self) -> Any:
        """Newsroom-wide rules: editorial blackout, kill switches, gate threshold."""
        with services().db.transaction() as session:
            return config_row(session)

    @admin.arguments(AppealSettingsSchema)
    @admin.response(200, AppealSettingsSchema)
    @admin.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def patch(self, changes: dict[str, Any]) -> Any:
        """Change some of the rules (additive to API.md)."""
        s = services()
        with s.db.transaction() as session:
            row = config_row(session)
            before = AppealSettingsSchema().dump(row)
            for key, value in changes.items():
                if key in ("blackout_sections", "blackout_tags"):
                    value = sorted({v.strip().lower() for v in value})
                setattr(row, key, value)
            after = AppealSettingsSchema().dump(row)
            audit.record(
                session, "settings.update", "appeal_settings", "1", before=before, after=after
            )
            bump_version(session)
        s.appeals.invalidate()
        return row
