"""Which articles bring readers to give: the funnel per article, aggregated in SQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from donations.appeals.models import EventCount
from donations.checkout.models import Contribution
from donations.reports.common import first_payments, ratio
from donations.reports.summary import day_bounds


def articles(
    session: Session, start: date, end: date, currency: str, limit: int
) -> list[dict[str, Any]]:
    """Per article: impressions and clicks counted on days in [start, end]; contributions
    readers started from it whose first payment fell in those days (any currency); their
    gross in `currency`. Sorted by gross, then impressions, descending; the top `limit`.
    """
    lo, hi = day_bounds(start, end)
    zero = literal(0, BigInteger)
    events = (
        select(
            EventCount.article.label("article"),
            func.sum(case((EventCount.type == "impression", EventCount.count), else_=0)).label(
                "impressions"
            ),
            func.sum(case((EventCount.type == "click", EventCount.count), else_=0)).label("clicks"),
            zero.label("contributions"),
            zero.label("gross"),
        )
        .where(
            EventCount.day >= start,
            EventCount.day <= end,
            EventCount.type.in_(("impression", "click")),
        )
        .group_by(EventCount.article)
    )
    payments = first_payments(lo, hi).where(Contribution.article.isnot(None)).subquery()
    gifts = select(
        payments.c.article,
        zero.label("impressions"),
        zero.label("clicks"),
        func.count().label("contributions"),
        func.sum(case((payments.c.currency == currency, payments.c.amount), else_=0)).label(
            "gross"
        ),
    ).group_by(payments.c.article)
    both = union_all(events, gifts).subquery()
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
