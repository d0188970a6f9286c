"""Admin report endpoints (bearer token): the books as JSON."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from donations.admin.auth import require_role
from donations.admin.models import VIEWER
from donations.checkout.models import FREQUENCIES, STATUS_RANK
from donations.ledger import journal
from donations.reports import articles as articles_report
from donations.reports import contributions as contributions_list
from donations.reports import experiments as experiments_report
from donations.reports import stats
from donations.reports.daily import daily
from donations.reports.recurring import recurring
from donations.reports.summary import settlement, summary
from donations.services import services

bp = Blueprint(
    "reports", __name__, url_prefix="/api/v1/admin", description="Reports and the books (admin)."
)
MAX_RANGE_DAYS = 3660


# Far enough from date.min/date.max that a day's bounds never overflow.
DATES = validate.Range(min=date(1970, 1, 1), max=date(9999, 12, 30))


class RangeQuery(Schema):
    from_ = fields.Date(data_key="from", load_default=None, validate=DATES)
    to = fields.Date(load_default=None, validate=DATES)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start and end and start > end:
            raise ValidationError("The start date must not be after the end date.", "from")
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


class SettlementSchema(Schema):
    gross = fields.Integer(metadata={"description": "charged, as settled (before fees)"})
    fees = fields.Integer(metadata={"description": "Stripe's fees"})
    refunds = fields.Integer(metadata={"description": "refunded, at their payments' rates"})
    disputes = fields.Integer(
        metadata={"description": "lost to disputes, at their payments' rates"}
    )
    exchange = fields.Integer(
        metadata={"description": "net exchange difference booked (a gain is positive)"}
    )
    net = fields.Integer(metadata={"description": "gross − fees − refunds − disputes + exchange"})
    payouts = fields.Integer(metadata={"description": "paid out of the Stripe balance"})


class SummarySchema(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    currencies = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(CurrencySummarySchema),
        metadata={"description": "per donors' currency"},
    )
    settlement = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(SettlementSchema),
        metadata={"description": "how Stripe's balance moved, per settlement currency"},
    )


class AccountBalanceSchema(Schema):
    account = fields.String()
    currency = fields.String()
    balance = fields.Integer()


class TrialBalanceSchema(Schema):
    accounts = fields.List(fields.Nested(AccountBalanceSchema))
    balanced = fields.Boolean()


class CurrencyField(fields.String):
    """A lowercase ISO 4217 code; `USD` is read as `usd`."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("validate", validate.Regexp(r"^[a-z]{3}$", error="Not an ISO 4217 code."))
        kw.setdefault("metadata", {"example": "usd"})
        super().__init__(**kw)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> str:
        return str(super()._deserialize(value, attr, data, **kw)).lower()


class DailyQuery(RangeQuery):
    currency = CurrencyField(load_default="usd")


class DailyPointSchema(Schema):
    date = fields.Date()
    count = fields.Integer()
    gross = fields.Integer()
    net = fields.Integer()


class DailySchema(Schema):
    currency = fields.String()
    series = fields.List(fields.Nested(DailyPointSchema))


class ArticlesQuery(RangeQuery):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))
    currency = CurrencyField(
        load_default="usd",
        metadata={"description": "The currency `gross` counts (default usd). Added to API.md."},
    )


class ArticleSchema(Schema):
    article = fields.String()
    impressions = fields.Integer()
    clicks = fields.Integer()
    contributions = fields.Integer()
    gross = fields.Integer()
    conversion_rate = fields.Float(allow_none=True)


class ArticlesSchema(Schema):
    currency = fields.String()
    articles = fields.List(fields.Nested(ArticleSchema))


class ExperimentsQuery(Schema):
    campaign = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    currency = CurrencyField(load_default="usd")


class VariantResultSchema(Schema):
    variant = fields.String()
    impressions = fields.Integer()
    clicks = fields.Integer()
    contributions = fields.Integer()
    gross = fields.Integer()
    conversion_rate = fields.Float(allow_none=True)
    conversion_ci95 = fields.List(fields.Float(), allow_none=True)
    revenue_per_1000_impressions = fields.Float(allow_none=True)
    p_value_vs_control = fields.Float(allow_none=True)
    enough_data = fields.Boolean()


class SampleRatioSchema(Schema):
    p_value = fields.Float(allow_none=True)
    warning = fields.Boolean()


class CampaignResultSchema(Schema):
    campaign = fields.String()
    enough_data = fields.Boolean()
    srm = fields.Nested(SampleRatioSchema)
    variants = fields.List(fields.Nested(VariantResultSchema))


class ExperimentsSchema(Schema):
    currency = fields.String()
    campaigns = fields.List(fields.Nested(CampaignResultSchema))


class RecurringFiguresSchema(Schema):
    active = fields.Integer()
    mrr = fields.Integer()
    new = fields.Integer()
    canceled = fields.Integer()


class RecurringSchema(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    currencies = fields.Dict(keys=fields.String(), values=fields.Nested(RecurringFiguresSchema))


class CursorField(fields.String):
    """An opaque cursor from a previous page's `next_cursor`."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kw: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kw)
        if len(text) > 200:
            raise ValidationError("Not a cursor from this list.")
        try:
            return contributions_list.Cursor.decode(text)
        except contributions_list.InvalidCursor as exc:
            raise ValidationError(str(exc)) from exc


class ContributionsQuery(RangeQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(sorted(STATUS_RANK)))
    campaign = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    currency = CurrencyField(load_default=None)
    frequency = fields.String(
        load_default=None,
        validate=validate.OneOf(FREQUENCIES),
        metadata={"description": "one_off, monthly or annual (added to API.md)"},
    )
    article = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The article slug, exactly (added to API.md)"},
    )
    email = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=320),
        metadata={
            "description": "The donor's email or its beginning, in any case: `ann@example.org` "
            "or `ann@` (added to API.md); erased donors match nothing"
        },
    )
    cursor = CursorField(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    format = fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]))


class ContributionRowSchema(Schema):
    id = fields.String()
    created_at = fields.String(metadata={"description": "RFC 3339 UTC"})
    status = fields.String()
    frequency = fields.String()
    currency = fields.String()
    amount = fields.Integer()
    fee_covered = fields.Integer()
    total = fields.Integer()
    refunded_amount = fields.Integer()
    article = fields.String(allow_none=True)
    campaign = fields.String(allow_none=True)
    variant = fields.String(allow_none=True)
    placement = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class ContributionsPageSchema(Schema):
    contributions = fields.List(fields.Nested(ContributionRowSchema))
    next_cursor = fields.String(allow_none=True)


def resolve_range(args: dict[str, Any]) -> tuple[date, date]:
    """Defaults: the last 30 UTC days, ending today."""
    end = args.get("to") or datetime.now(UTC).date()
    start = args.get("from_") or end - timedelta(days=29)
    if start > end:
        start = end
    return start, end


@bp.route("/reports/summary")
class Summary(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.arguments(RangeQuery, location="query")
    @bp.response(200, SummarySchema)
    @bp.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Totals per donors' currency (net = gross − fees − refunds − disputes) and per
        settlement currency (net = gross − fees − refunds − disputes + exchange)."""
        start, end = resolve_range(args)
        with services().db.sessions() as session:
            currencies = summary(session, start, end)
            moved = settlement(session, start, end)
        return {"from_": start, "to": end, "currencies": currencies, "settlement": moved}


@bp.route("/ledger/trial-balance")
class TrialBalance(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.response(200, TrialBalanceSchema)
    @bp.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self) -> dict[str, Any]:
        """Every account's balance per currency; `balanced` when each currency sums to zero."""
        with services().db.sessions() as session:
            rows, balanced = journal.trial_balance(session)
        return {"accounts": rows, "balanced": balanced}


@bp.route("/reports/daily")
class Daily(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.arguments(DailyQuery, location="query")
    @bp.response(200, DailySchema)
    @bp.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """One point per UTC day of the range (zero days included) in one currency.

        Read from the journal as the summary is: `count` payments, `gross` charged,
        `net = gross − fees − refunds − disputes`, each amount on the day it happened.
        `currency` defaults to usd; the top-level `currency` (added to API.md) echoes it.
        """
        start, end = resolve_range(args)
        with services().db.sessions() as session:
            series = daily(session, start, end, args["currency"])
        return {"currency": args["currency"], "series": series}


@bp.route("/reports/articles")
class Articles(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.arguments(ArticlesQuery, location="query")
    @bp.response(200, ArticlesSchema)
    @bp.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The articles that bring readers to give, by gross then impressions.

        `impressions` and `clicks` are counted on the range's days. `contributions` counts
        the contributions readers started from the article whose first payment fell in the
        range, in any currency; recurring renewals are not counted again. `gross` is what
        those first payments charged in `currency` (default usd; amounts in different
        currencies are never added; the `currency` parameter and the top-level `currency`
        echoing it are additions to API.md). `conversion_rate` = contributions ÷
        impressions, null without impressions. `limit`: 1–200, default 20.
        """
        start, end = resolve_range(args)
        with services().db.sessions() as session:
            rows = articles_report.articles(session, start, end, args["currency"], args["limit"])
        return {"currency": args["currency"], "articles": rows}


EXPERIMENTS_DESCRIPTION = f"""\
Without `campaign`, every live or paused campaign. `contributions` counts the contributions
started from the variant that were ever paid (renewals are not counted again), in any
currency; `gross` and `revenue_per_1000_impressions` (minor units) count their first payments
in `currency` (default usd). `conversion_rate` = contributions ÷ impressions;
`conversion_ci95` is its Wilson score interval (z = {stats.Z95}); `p_value_vs_control` is the
two-sided pooled two-proportion z-test against the variant `control` (null for the control
itself, without a control, and when any of the four counts is zero). Rates and intervals are
null without impressions.

Added to API.md: `enough_data` on a variant is false while it has fewer than
{experiments_report.MIN_IMPRESSIONS} impressions or fewer than
{experiments_report.MIN_CONTRIBUTIONS} contributions (the figures are still reported); on
the campaign it is true only when every variant has enough. `srm` is a chi-square
goodness-of-fit test of the variants' impressions against their configured weights;
`warning` is true when `p_value` < {stats.SRM_ALPHA}: a sample-ratio mismatch means bucketing
or counting is broken and the results cannot be trusted. Variants no longer in the campaign
document are listed but left out of that test; `p_value` is null with fewer than two
variants or no impressions. The top-level `currency` echoes the parameter.
"""


@bp.route("/reports/experiments")
class Experiments(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.arguments(ExperimentsQuery, location="query")
    @bp.response(200, ExperimentsSchema)
    @bp.doc(
        security=[{"bearerAuth": []}, {"adminSession": []}], description=EXPERIMENTS_DESCRIPTION
    )
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """A/B results per campaign and variant, over the campaign's whole life."""
        with services().db.sessions() as session:
            rows = experiments_report.experiments(session, args["campaign"], args["currency"])
        return {"currency": args["currency"], "campaigns": rows}


@bp.route("/reports/recurring")
class Recurring(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.arguments(RangeQuery, location="query")
    @bp.response(200, RecurringSchema)
    @bp.doc(security=[{"bearerAuth": []}, {"adminSession": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Recurring revenue per currency.

        `active`: subscriptions active or past_due now (as Stripe counts MRR; trialing and
        unpaid don't count). `mrr`: their monthly amounts plus a twelfth of their annual
        ones, in minor units, the twelfth rounded half up once per currency. `new`:
        subscriptions created on the range's UTC days (ones whose first payment never
        succeeded excluded); `canceled`: subscriptions canceled on those days.
        """
        start, end = resolve_range(args)
        with services().db.sessions() as session:
            currencies = recurring(session, start, end)
        return {"from_": start, "to": end, "currencies": currencies}


def wants_csv(args: dict[str, Any]) -> bool:
    if args.get("format"):
        return bool(args["format"] == "csv")
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


@bp.route("/contributions")
class Contributions(MethodView):
    decorators = [require_role(VIEWER)]

    @bp.arguments(ContributionsQuery, location="query")
    @bp.response(200, ContributionsPageSchema)
    @bp.doc(
        security=[{"bearerAuth": []}, {"adminSession": []}],
        responses={
            "200": {
                # Both representations: the JSON page (the default) and the CSV export.
                "description": "A page of contributions (JSON), or all of them (CSV)",
                "content": {
                    "application/json": {"schema": ContributionsPageSchema},
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "id,created_at,status,…\r\nctb_…,2026-03-01T11:00:00Z,…",
                    },
                },
            }
        },
    )
    def get(self, args: dict[str, Any]) -> Any:
        """Contributions, newest first, renewals included.

        `from`/`to` filter the UTC day of `created_at` (both inclusive; without them, all
        time); `status`, `campaign`, `currency`, `frequency` and `article` filter exactly;
        `email` finds the donor's address or its beginning, in any case (`frequency`,
        `article` and `email` are additions to API.md). Pages of `limit` (1–500, default 50);
        pass `next_cursor` back as `cursor` for the next page (null on the last). With
        `format=csv` or `Accept: text/csv`, every matching row as a streamed CSV download
        (`cursor` and `limit` ignored); cells that a spreadsheet would read as a formula get
        a leading `'`. An erased donor's email is empty.
        """
        filters = contributions_list.Filters.from_args(args)
        db = services().db
        if wants_csv(args):
            name = f"contributions-{args['from_'] or 'all'}-{args['to'] or 'now'}.csv"
            return Response(
                stream_with_context(contributions_list.csv_chunks(db.sessions, filters)),
                mimetype="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        with db.sessions() as session:
            rows, after = contributions_list.page(session, filters, args["cursor"], args["limit"])
        return {"contributions": rows, "next_cursor": after.encode() if after else None}
