"""The campaign editor's live preview: a campaign document (saved or not) in, the appeal that
`GET /api/v1/appeal` would answer for one of its variants in one placement out.

Nothing is stored and nothing is counted: the preview only builds the answer, through the same
`describe_appeal` the reader-facing endpoint uses, on a snapshot holding just this campaign.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from werkzeug.wrappers import Response

from donations.admin.auth import require_role
from donations.admin.models import EDITOR
from donations.appeals.documents import PLACEMENTS, CampaignDocument, to_json
from donations.appeals.engine import AppealRequest, AppealRules, Snapshot
from donations.appeals.service import describe_appeal, page_words
from donations.db import utcnow
from donations.services import services

api = Blueprint(
    "campaign_admin",
    __name__,
    url_prefix="/api/v1/admin",
    description="The campaign editor's preview (admin).",
)
PREVIEW_READER = "preview"
PREVIEW_ARTICLE = "preview"
# Used only inside the one-campaign snapshot, to ask for the currency the editor chose.
PREVIEW_COUNTRY = "ZZ"


class PreviewRequest(Schema):
    document = fields.Nested(CampaignDocument, required=True)
    variant = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=100),
        metadata={"description": "A variant id of the document (default: its first variant)"},
    )
    placement = fields.String(load_default="epic", validate=validate.OneOf(PLACEMENTS))
    currency = fields.String(load_default="usd", validate=validate.Regexp(r"^[a-z]{3}$"))
    lang = fields.String(
        load_default="en", validate=validate.Regexp(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
    )
    articles_read = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000))

    @validates_schema
    def _known_variant(self, data: dict[str, Any], **_: Any) -> None:
        wanted = data.get("variant")
        ids = [v["id"] for v in (data.get("document") or {}).get("variants") or []]
        if wanted is not None and wanted not in ids:
            raise ValidationError(f"Not a variant of this campaign ({', '.join(ids)}).", "variant")


class PreviewResponse(Schema):
    appeal = fields.Dict(
        metadata={"description": "The `appeal` object exactly as `GET /api/v1/appeal` answers"}
    )


def preview_appeal(
    doc: dict[str, Any],
    variant_id: str | None,
    placement: str,
    currency: str,
    *,
    lang: str = "en",
    articles_read: int = 0,
    raised: int = 0,
    public_base_url: str,
    minimums: dict[str, int],
) -> dict[str, Any]:
    """The appeal body for one variant of a (validated) document in one placement, as if this
    reader qualified: schedule, status, targeting, caps and holdback do not apply to a preview."""
    stored = to_json(doc)
    chosen = next((v for v in stored["variants"] if v["id"] == variant_id), stored["variants"][0])
    shown = {
        **stored,
        "status": "live",
        "starts_at": None,
        "ends_at": None,
        "placements": [placement],
        "targeting": {},
        "frequency": {"max_impressions": None},
        "holdback": 0.0,
        "variants": [{**chosen, "weight": 1}],
    }
    snapshot = Snapshot.build([shown], AppealRules(gate_after_articles=0), version=0)
    snapshot = Snapshot(snapshot.campaigns, snapshot.rules, 0, {stored["id"]: raised})
    req = AppealRequest(
        article=PREVIEW_ARTICLE,
        placement=placement,
        lang=lang,
        country=PREVIEW_COUNTRY,
        views=articles_read,
        rid=PREVIEW_READER,
    )
    body, _ = describe_appeal(
        snapshot,
        req,
        now=utcnow(),
        public_base_url=public_base_url,
        country_currencies={PREVIEW_COUNTRY: currency},
        minimums=minimums,
        explain=False,
    )
    if body is None:  # cannot happen: everything that could refuse it was switched off
        raise RuntimeError("the preview snapshot refused its only campaign")
    return body


@api.route("/campaigns/preview")
class CampaignPreview(MethodView):
    decorators = [require_role(EDITOR)]

    @api.arguments(PreviewRequest)
    @api.response(200, PreviewResponse)
    @api.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def post(self, body: dict[str, Any]) -> Response:
        """Preview a variant of a campaign document (saved or not) as the widget would get it;
        422 names each invalid field of the document, under `document`. Nothing is stored or
        counted (additive to API.md)."""
        s = services()
        doc = body["document"]
        appeal = preview_appeal(
            doc,
            body["variant"],
            body["placement"],
            body["currency"],
            lang=body["lang"],
            articles_read=body["articles_read"],
            raised=s.appeals.current().raised.get(doc["id"], 0),
            public_base_url=s.settings.public_base_url,
            minimums=s.minimums,
        )
        appeal.update(page_words(s.settings, body["lang"]))  # the widget's words and the brand
        response = jsonify({"appeal": appeal})
        response.headers["Cache-Control"] = "no-store"
        return response
