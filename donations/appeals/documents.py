"""The campaign document (API.md, "Campaign document"): one set of schemas for the admin API,
`donations campaigns load` and, later, the admin pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import nh3
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from donations.edge import MAX_TEXT, free_text, one_line

PLACEMENTS = ("epic", "banner", "gate")
STATUSES = ("draft", "live", "paused", "ended")
FREQUENCIES = ("one_off", "monthly", "annual")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")

# What editors may put in an appeal's body: text formatting and links, nothing active.
ALLOWED_TAGS = {"p", "br", "strong", "b", "em", "i", "u", "a", "ul", "ol", "li", "span", "h3", "h4"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


def sanitize_html(html: str) -> str:
    """Allow-list sanitising (ammonia via nh3): no scripts, handlers, styles or odd URLs."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def _slug(value: str) -> None:
    if not SLUG.match(value):
        raise ValidationError("Use 1–100 lowercase letters, digits and dashes.")


def _lowercase_list(max_len: int = 100) -> fields.List:
    return fields.List(
        fields.String(validate=[validate.Length(min=1, max=max_len), one_line]),
        load_default=list,
        validate=validate.Length(max=1000),
    )


class IncludeExclude(Schema):
    # `exclude` is also a Schema attribute: the fields live under other names.
    include_ = _lowercase_list()
    exclude_ = _lowercase_list()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["include_"].data_key = "include"
        self.fields["exclude_"].data_key = "exclude"

    @post_load
    def _names(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # A partial load (PATCH) has no defaults: a missing side is empty.
        return {"include": data.get("include_", []), "exclude": data.get("exclude_", [])}


class ArticlesRead(Schema):
    min = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000))
    max = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("max") is not None and data["max"] < data.get("min", 0):
            raise ValidationError("Must not be below `min`.", "max")


class Targeting(Schema):
    sections = fields.Nested(IncludeExclude, load_default=dict)
    tags = fields.Nested(IncludeExclude, load_default=dict)
    countries = fields.Nested(IncludeExclude, load_default=dict)
    languages = _lowercase_list(16)
    articles_read = fields.Nested(ArticlesRead, load_default=dict)

    @post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # A missing nested object loads as {}: fill in its defaults here.
        for key in ("sections", "tags", "countries"):
            part = data.get(key) or {}
            norm = str.upper if key == "countries" else str.lower
            data[key] = {
                side: sorted({norm(v.strip()) for v in part.get(side) or []})
                for side in ("include", "exclude")
            }
        data["languages"] = sorted({v.strip().lower() for v in data.get("languages") or []})
        reads = data.get("articles_read") or {}
        data["articles_read"] = {"min": reads.get("min", 0), "max": reads.get("max")}
        return data


class Frequency(Schema):
    max_impressions = fields.Integer(
        load_default=4, allow_none=True, validate=validate.Range(min=1, max=10_000)
    )
    per_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
    after_dismiss_days = fields.Integer(load_default=14, validate=validate.Range(min=0, max=3650))


class Goal(Schema):
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[a-z]{3}$"))


class Presets(Schema):
    one_off = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1)),
        load_default=list,
        validate=validate.Length(max=6),
    )
    monthly = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1)),
        load_default=list,
        validate=validate.Length(max=6),
    )
    annual = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1)),
        load_default=list,
        validate=validate.Length(max=6),
    )


class Copy(Schema):
    """A translation of a variant's words (additive to API.md: `translations` by language)."""

    heading = fields.String(validate=[validate.Length(min=1, max=300), one_line])
    body_html = fields.String(validate=[validate.Length(max=MAX_TEXT), free_text])
    cta_label = fields.String(validate=[validate.Length(min=1, max=80), one_line])

    @post_load
    def _clean(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "body_html" in data:
            data["body_html"] = sanitize_html(data["body_html"])
        return data


class Variant(Schema):
    id = fields.String(required=True, validate=_slug)
    weight = fields.Integer(load_default=1, validate=validate.Range(min=0, max=10_000))
    heading = fields.String(required=True, validate=[validate.Length(min=1, max=300), one_line])
    body_html = fields.String(load_default="", validate=[validate.Length(max=MAX_TEXT), free_text])
    cta_label = fields.String(
        load_default="Contribute today", validate=[validate.Length(min=1, max=80), one_line]
    )
    default_frequency = fields.String(load_default="one_off", validate=validate.OneOf(FREQUENCIES))
    amounts = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z]{3}$")),
        values=fields.Nested(Presets),
        load_default=dict,
    )
    translations = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")),
        values=fields.Nested(Copy),
        load_default=dict,
    )

    @post_load
    def _clean(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "body_html" in data:
            data["body_html"] = sanitize_html(data["body_html"])
        return data


class CampaignDocument(Schema):
    """A whole campaign, as POSTed, loaded from a file and returned by GET."""

    class Meta:
        ordered = True

    id = fields.String(required=True, validate=_slug)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), one_line])
    status = fields.String(load_default="draft", validate=validate.OneOf(STATUSES))
    placements = fields.List(
        fields.String(validate=validate.OneOf(PLACEMENTS)),
        required=True,
        validate=validate.Length(min=1, max=3),
    )
    priority = fields.Integer(load_default=0, validate=validate.Range(min=-1000, max=1000))
    starts_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=None)
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True)
    targeting = fields.Nested(Targeting, load_default=lambda: Targeting().load({}))
    frequency = fields.Nested(Frequency, load_default=lambda: Frequency().load({}))
    goal = fields.Nested(Goal, load_default=None, allow_none=True)
    holdback = fields.Float(load_default=0.0, validate=validate.Range(min=0.0, max=0.5))
    variants = fields.List(
        fields.Nested(Variant), required=True, validate=validate.Length(min=1, max=20)
    )

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if len(set(data.get("placements") or [])) != len(data.get("placements") or []):
            raise ValidationError("Each placement at most once.", "placements")
        ids = [v.get("id") for v in data.get("variants") or []]
        if len(set(ids)) != len(ids):
            raise ValidationError("Variant ids must be unique.", "variants")
        if data.get("variants") and sum(v.get("weight", 1) for v in data["variants"]) <= 0:
            raise ValidationError("At least one variant needs a positive weight.", "variants")
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end and end <= start:
            raise ValidationError("Must be after `starts_at`.", "ends_at")


class CampaignPatch(CampaignDocument):
    """A partial document: only the fields given change (validated as a whole afterwards).

    Partial at the top level only: the merge replaces each field given as a whole, so a
    variant (or goal, or targeting) given must be complete; `partial=True` would reach into
    them, and a variant without `id` or `body_html` would pass here to fail later.
    """

    class Meta:
        unknown = EXCLUDE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("partial") is True:
            kwargs["partial"] = tuple(self._declared_fields)
        super().__init__(*args, **kwargs)


def to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A loaded document as stored and returned: timestamps as RFC 3339 UTC strings."""
    out = dict(doc)
    for key in ("starts_at", "ends_at"):
        value = out.get(key)
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(UTC)
            out[key] = value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out
