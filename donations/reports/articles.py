"""Which articles bring readers to give: the funnel per article, aggregated in SQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import BigInteger, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from donations.reports.common import ratio
from donations.reports.rollups import (
    ArticlePaymentsDaily,
    ArticlePaymentsMonthly,
    EventArticleDaily,
    EventArticleMonthly,
    month_of,
)


def split_by_month(
    start: date, end: date
) -> tuple[list[tuple[date, date]], tuple[date, date] | None]:
    """[start, end] as the partial months at its ends (day spans) and the whole months between
    (first days of the first and last whole month), so long ranges read monthly rollups."""
    first_whole = start if start.day == 1 else month_of(start + timedelta(days=31))
    after_end = end + timedelta(days=1)
    end_of_whole = end if after_end.day == 1 else month_of(end) - timedelta(days=1)
    if first_whole > end_of_whole:
        return [(start, end)], None
    spans = []
    if start < first_whole:
        spans.append((start, first_whole - timedelta(days=1)))
    if end_of_whole < end:
        spans.append((end_of_whole + timedelta(days=1), end))
    return spans, (first_whole, month_of(end_of_whole))


def _in_days(column: Any, spans: list[tuple[date, date]]) -> Any:
    return or_(*(and_(column >= lo, column <= hi) for lo, hi in spans))


def articles(
    session: Session, start: date, end: date, currency: str, limit: int
) -> list[dict[str, Any]]:
    """Per article: impressions and clicks counted on days in [start, end]; contributions
    readers started from it whose first payment fell in those days (any currency); their
    gross in `currency`. Sorted by gross, then impressions, descending; the top `limit`.
    """
    zero = literal(0, BigInteger)
    spans, months = split_by_month(start, end)
    parts: list[Any] = []
    for events, where in (
        (EventArticleDaily, _in_days(EventArticleDaily.day, spans) if spans else None),
        (
            EventArticleMonthly,
            EventArticleMonthly.month.between(*months) if months else None,
        ),
    ):
        if where is None:
            continue
        parts.append(
            select(
                events.article.label("article"),
                events.impressions.label("impressions"),
                events.clicks.label("clicks"),
                zero.label("contributions"),
                zero.label("gross"),
            ).where(where)
        )
    for paid, where in (
        (ArticlePaymentsDaily, _in_days(ArticlePaymentsDaily.day, spans) if spans else None),
        (
            ArticlePaymentsMonthly,
            ArticlePaymentsMonthly.month.between(*months) if months else None,
        ),
    ):
        if where is None:
            continue
        parts.append(
            select(
                paid.article.label("article"),
                zero.label("impressions"),
                zero.label("clicks"),
                paid.payments.label("contributions"),
                case((paid.currency == currency, paid.gross), else_=0).label("gross"),
            ).where(where)
        )
    both = union_all(*parts).subquery()
    impressions = func.sum(both.c.impressions).label("impressions")
    gross = func.sum(both.c.gross).label("gross")
    rows = session.execute(
        select(
            both.c.article,
            impressions,
            func.sum(both.c.clicks).label("clicks"),
            func.sum(both.c.contributions).label("contributions"),
            gross,
        )
        .group_by(both.c.article)
        .order_by(gross.desc(), impressions.desc(), both.c.article)
        .limit(limit)
    ).all()
    out = []
    for article, shown, clicked, gave, raised in rows:
        shown, gave = int(shown), int(gave)
        out.append(
            {
                "article": article,
                "impressions": shown,
                "clicks": int(clicked),
                "contributions": gave,
                "gross": int(raised),
                "conversion_rate": ratio(gave, shown),
            }
        )
    return out
