"""Which articles bring readers to give: the funnel per article, aggregated in SQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from donations.reports.common import ratio
from donations.reports.rollups import ArticlePaymentsDaily, EventArticleDaily


def articles(
    session: Session, start: date, end: date, currency: str, limit: int
) -> list[dict[str, Any]]:
    """Per article: impressions and clicks counted on days in [start, end]; contributions
    readers started from it whose first payment fell in those days (any currency); their
    gross in `currency`. Sorted by gross, then impressions, descending; the top `limit`.
    """
    zero = literal(0, BigInteger)
    ev = EventArticleDaily
    events = (
        select(
            ev.article.label("article"),
            func.sum(case((ev.type == "impression", ev.count), else_=0)).label("impressions"),
            func.sum(case((ev.type == "click", ev.count), else_=0)).label("clicks"),
            zero.label("contributions"),
            zero.label("gross"),
        )
        .where(ev.day >= start, ev.day <= end)
        .group_by(ev.article)
    )
    paid = ArticlePaymentsDaily
    gifts = (
        select(
            paid.article.label("article"),
            zero.label("impressions"),
            zero.label("clicks"),
            func.sum(paid.payments).label("contributions"),
            func.sum(case((paid.currency == currency, paid.gross), else_=0)).label("gross"),
        )
        .where(paid.day >= start, paid.day <= end)
        .group_by(paid.article)
    )
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
