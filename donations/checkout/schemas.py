"""Request and response shapes of the checkout API (API.md, "Reader-facing")."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from donations.checkout.models import FREQUENCIES, STATUS_RANK
from donations.edge import one_line

# A language code as the appeals take it (appeals.service.LANG): "en", "ru", "pt-br".
LANG = r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$"


def _settings() -> Any:
    return current_app.extensions["donations"].settings


def _supported_currency(currency: str) -> None:
    rules = _settings().currencies
    if currency not in rules:
        raise ValidationError(f"Unsupported currency; use one of: {', '.join(sorted(rules))}.")


def _line(max_len: int) -> list[Any]:
    return [validate.Length(max=max_len), one_line]


class AttributionSchema(Schema):
    article = fields.String(validate=_line(200), load_default=None, allow_none=True)
    campaign = fields.String(validate=_line(100), load_default=None, allow_none=True)
    variant = fields.String(validate=_line(100), load_default=None, allow_none=True)
    placement = fields.String(
        validate=validate.OneOf(["epic", "banner", "gate", "direct"]),
        load_default=None,
        allow_none=True,
    )
    impression = fields.String(validate=_line(64), load_default=None, allow_none=True)


class ContributionCreateSchema(Schema):
    amount = fields.Integer(
        required=True, strict=True, metadata={"description": "Gift in minor units"}
    )
    currency = fields.String(
        required=True, validate=_supported_currency, metadata={"example": "usd"}
    )
    frequency = fields.String(required=True, validate=validate.OneOf(FREQUENCIES))
    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(validate=_line(200), load_default=None, allow_none=True)
    cover_fees = fields.Boolean(load_default=False)
    attribution = fields.Nested(AttributionSchema, load_default=dict)
    lang = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(min=2, max=8), validate.Regexp(LANG, flags=re.IGNORECASE)],
        metadata={
            "description": "Additive to API.md: the reader's language (BCP 47, e.g. en, ru, "
            "pt-br), as the appeal had it; receipts are written in it (else in English).",
            "example": "ru",
        },
    )

    captcha_token = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=4096),
        metadata={
            "description": "Additive to API.md: the human check's token (Cloudflare Turnstile or "
            "reCAPTCHA), required when the server has CAPTCHA_PROVIDER set; verified before "
            "anything reaches Stripe (422 naming this field when refused)."
        },
    )

    @post_load
    def _lowercase_lang(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("lang"):
            data["lang"] = data["lang"].lower()
        return data

    # Runs even when other fields failed, so that one 422 names every bad field.
    @validates_schema(skip_on_field_errors=False)
    def _amount_within_currency_limits(self, data: dict[str, Any], **_: Any) -> None:
        currency = data.get("currency")
        rule = _settings().currencies.get(currency) if isinstance(currency, str) else None
        amount = data.get("amount")
        if rule is None or amount is None:
            return  # a missing or invalid currency or amount is named by its own field
        if not (rule.minimum <= amount <= rule.maximum):
            raise ValidationError(
                f"Must be between {rule.minimum} and {rule.maximum} minor units of {currency}.",
                "amount",
            )


class ConfirmSchema(Schema):
    payment_method = fields.String(
        required=True,
        validate=validate.Regexp(r"^(pm|card|src)_[A-Za-z0-9_]{1,120}$"),
        metadata={"description": "The payment method Stripe.js created from the card field"},
    )


class EmptySchema(Schema):
    pass


class ContributionSchema(Schema):
    id = fields.String()
    status = fields.String(validate=validate.OneOf(list(STATUS_RANK)))
    amount = fields.Integer()
    fee_covered = fields.Integer()
    total = fields.Integer()
    currency = fields.String()
    frequency = fields.String()
    subscription = fields.String(attribute="stripe_subscription_id", allow_none=True)
    refunded = fields.Integer(attribute="refunded_amount")
    failure_message = fields.String(allow_none=True)
    created_at = fields.DateTime(format="iso")


class StripeIntentSchema(Schema):
    publishable_key = fields.String()
    intent = fields.String(validate=validate.OneOf(["payment_intent", "setup_intent"]))
    client_secret = fields.String()


class StartedSchema(Schema):
    contribution = fields.Nested(ContributionSchema)
    stripe = fields.Nested(StripeIntentSchema)


class ConfirmResultStripeSchema(Schema):
    status = fields.String(metadata={"description": "The PaymentIntent's status at Stripe"})
    client_secret = fields.String()
    requires_action = fields.Boolean()


class ConfirmResultSchema(Schema):
    contribution = fields.Nested(ContributionSchema)
    stripe = fields.Nested(ConfirmResultStripeSchema)


class ContributionEnvelopeSchema(Schema):
    contribution = fields.Nested(ContributionSchema)
    supporter_token = fields.String(
        allow_none=True,
        metadata={"description": "Signed supporter token, once the contribution succeeded"},
    )
