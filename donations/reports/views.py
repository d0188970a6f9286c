"""Admin report endpoints (bearer token): the books as JSON."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validates_schema

from donations.admin.tokens import admin_required
from donations.ledger import journal
from donations.reports.summary import summary
from donations.services import services

bp = Blueprint(
    "reports", __name__, url_prefix="/api/v1/admin", description="Reports and the books (admin)."
)
MAX_RANGE_DAYS = 3660


class RangeQuery(Schema):
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start and end and start > end:
            raise ValidationError("Must not be after `to`.", "from")
        if start and end and (end - start).days > MAX_RANGE_DAYS:
            raise ValidationError(f"The range may span at most {MAX_RANGE_DAYS} days.", "from")


class BucketSchema(Schema):
    count = fields.Integer()
    gross = fields.Integer()


class CurrencySummarySchema(Schema):
    count = fields.Integer()
    gross = fields.Integer()
    fees = fields.Integer()
    fee_covered = fields.Integer()
    refunds = fields.Integer()
    disputes = fields.Integer()
    net = fields.Integer()
    one_off = fields.Nested(BucketSchema)
    recurring = fields.Nested(BucketSchema)


class SummarySchema(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    currencies = fields.Dict(keys=fields.String(), values=fields.Nested(CurrencySummarySchema))


class AccountBalanceSchema(Schema):
    account = fields.String()
    currency = fields.String()
    balance = fields.Integer()


class TrialBalanceSchema(Schema):
    accounts = fields.List(fields.Nested(AccountBalanceSchema))
    balanced = fields.Boolean()


def resolve_range(args: dict[str, Any]) -> tuple[date, date]:
    """Defaults: the last 30 UTC days, ending today."""
    end = args.get("to") or date.today()
    start = args.get("from_") or end - timedelta(days=29)
    if start > end:
        start = end
    return start, end


@bp.route("/reports/summary")
class Summary(MethodView):
    decorators = [admin_required]

    @bp.arguments(RangeQuery, location="query")
    @bp.response(200, SummarySchema)
    @bp.doc(security=[{"bearerAuth": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Totals per currency; net = gross − fees − refunds − disputes."""
        start, end = resolve_range(args)
        with services().db.sessions() as session:
            currencies = summary(session, start, end)
        return {"from_": start, "to": end, "currencies": currencies}


@bp.route("/ledger/trial-balance")
class TrialBalance(MethodView):
    decorators = [admin_required]

    @bp.response(200, TrialBalanceSchema)
    @bp.doc(security=[{"bearerAuth": []}])
    def get(self) -> dict[str, Any]:
        """Every account's balance per currency; `balanced` when each currency sums to zero."""
        with services().db.sessions() as session:
            rows, balanced = journal.trial_balance(session)
        return {"accounts": rows, "balanced": balanced}
