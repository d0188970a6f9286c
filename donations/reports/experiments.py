"""A/B results per campaign and variant: the counts in SQL, the statistics in `stats`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from donations.appeals.models import Campaign
from donations.reports import stats
from donations.reports.common import ratio
from donations.reports.rollups import CampaignPaymentsDaily, EventCampaignDaily

CONTROL = "control"
# Below these counts a variant has "not enough data yet": the normal approximations behind the
# Wilson interval and the z-test want about five successes, and a handful of impressions says
# nothing. The figures are still reported; `enough_data` says whether to read them.
MIN_IMPRESSIONS = 100
MIN_CONTRIBUTIONS = 5
# Without a `campaign` parameter, the experiments still running are reported.
RUNNING = ("live", "paused")


def _zero() -> dict[str, int]:
    return {"impressions": 0, "clicks": 0, "contributions": 0, "gross": 0}


def _campaign_ids(session: Session, campaign: str | None) -> list[str]:
    if campaign is not None:
        return [campaign]
    return list(
        session.scalars(
            select(Campaign.id).where(Campaign.status.in_(RUNNING)).order_by(Campaign.id)
        )
    )


def experiments(session: Session, campaign: str | None, currency: str) -> list[dict[str, Any]]:
    """Per campaign (the one named, else every live or paused one), per variant: the funnel,
    conversion with its Wilson interval, revenue per 1000 impressions in `currency`, the
    z-test against `control`, and a sample-ratio-mismatch check against the weights."""
    ids = _campaign_ids(session, campaign)
    if not ids:
        return []
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(_zero)
    ev = EventCampaignDaily
    events = session.execute(
        select(
            ev.campaign,
            ev.variant,
            func.sum(case((ev.type == "impression", ev.count), else_=0)),
            func.sum(case((ev.type == "click", ev.count), else_=0)),
        )
        .where(ev.campaign.in_(ids))
        .group_by(ev.campaign, ev.variant)
    ).all()
    for name, variant, shown, clicked in events:
        counts[(name, variant)]["impressions"] += int(shown)
        counts[(name, variant)]["clicks"] += int(clicked)
    paid = CampaignPaymentsDaily
    gifts = session.execute(
        select(
            paid.campaign,
            paid.variant,
            func.sum(paid.payments),
            func.sum(case((paid.currency == currency, paid.gross), else_=0)),
        )
        .where(paid.campaign.in_(ids))
        .group_by(paid.campaign, paid.variant)
    ).all()
    for name, variant, gave, raised in gifts:
        counts[(name, variant or "")]["contributions"] += int(gave)
        counts[(name, variant or "")]["gross"] += int(raised)
    documents = {
        row.id: row.document
        for row in session.execute(
            select(Campaign.id, Campaign.document).where(Campaign.id.in_(ids))
        )
    }
    out = []
    for name in ids:
        weights = {
            str(v.get("id")): float(v.get("weight", 1))
            for v in (documents.get(name) or {}).get("variants") or []
        }
        seen = sorted(v for c, v in counts if c == name and v not in weights)
        if name not in documents and not seen:
            continue  # neither a campaign nor anything counted under its name
        variants = [*weights, *seen]
        out.append(
            campaign_report(
                name, [(v, counts.get((name, v)) or _zero()) for v in variants], weights
            )
        )
    return out


def campaign_report(
    name: str, variants: list[tuple[str, dict[str, int]]], weights: dict[str, float]
) -> dict[str, Any]:
    """The statistics of one campaign from its variants' counts (pure)."""
    control = dict(variants).get(CONTROL)
    rows = [variant_report(variant, c, control) for variant, c in variants]
    configured = [(c["impressions"], weights[v]) for v, c in variants if v in weights]
    p_value, warning = stats.sample_ratio_mismatch(
        [shown for shown, _ in configured], [w for _, w in configured]
    )
    return {
        "campaign": name,
        "enough_data": bool(rows) and all(r["enough_data"] for r in rows),
        "srm": {"p_value": p_value, "warning": warning},
        "variants": rows,
    }


def variant_report(
    variant: str, c: dict[str, int], control: dict[str, int] | None
) -> dict[str, Any]:
    shown, gave = c["impressions"], c["contributions"]
    valid = shown > 0 and gave <= shown
    p_value = None
    if variant != CONTROL and control is not None and valid:
        counts = (gave, shown, control["contributions"], control["impressions"])
        if all(counts):
            p_value = stats.two_proportion_p_value(*counts)
    return {
        "variant": variant,
        "impressions": shown,
        "clicks": c["clicks"],
        "contributions": gave,
        "gross": c["gross"],
        "conversion_rate": ratio(gave, shown),
        "conversion_ci95": list(stats.wilson_interval(gave, shown)) if valid else None,
        "revenue_per_1000_impressions": ratio(c["gross"] * 1000, shown),
        "p_value_vs_control": p_value,
        "enough_data": shown >= MIN_IMPRESSIONS and gave >= MIN_CONTRIBUTIONS,
    }
