"""Choosing an appeal: pure functions over a compiled snapshot of the campaigns (no I/O).

The answer is a function of the request (its URL) and the snapshot, so a CDN may cache it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import quote_plus

from donations.appeals.reader import Reader, bucket, decide
from donations.supporters import Supporter

__all__ = ["bucket"]

EURO_AREA = [
    "AT",
    "BE",
    "HR",
    "CY",
    "EE",
    "FI",
    "FR",
    "DE",
    "GR",
    "IE",
    "IT",
    "LV",
    "LT",
    "LU",
    "MT",
    "NL",
    "PT",
    "SK",
    "SI",
    "ES",
    "AD",
    "MC",
    "SM",
    "VA",
    "ME",
    "XK",
]


def default_country_currencies() -> dict[str, str]:
    """GB → gbp, the euro area → eur; everyone else gets the default (usd)."""
    return {"GB": "gbp", **{c: "eur" for c in EURO_AREA}}


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


@dataclass(frozen=True)
class AppealRequest:
    article: str
    placement: str = "epic"
    section: str | None = None
    tags: frozenset[str] = frozenset()
    lang: str = "en"
    country: str | None = None
    url: str | None = None
    views: int = 0
    rid: str | None = None
    dismissed: frozenset[str] = frozenset()
    last_dismissed: datetime | None = None
    seen: Mapping[str, int] = field(default_factory=dict)
    supporter: Supporter | None = None


@dataclass(frozen=True)
class Variant:
    id: str
    weight: int
    heading: str
    body_html: str
    cta_label: str
    default_frequency: str
    amounts: Mapping[str, Mapping[str, list[int]]]
    translations: Mapping[str, Mapping[str, str]]

    def copy_for(self, lang: str) -> tuple[str, str, str]:
        """(heading, body_html, cta_label) in the reader's language, else the default copy."""
        for key in (lang, lang.split("-")[0]):
            t = self.translations.get(key)
            if t:
                return (
                    t.get("heading", self.heading),
                    t.get("body_html", self.body_html),
                    t.get("cta_label", self.cta_label),
                )
        return self.heading, self.body_html, self.cta_label


@dataclass(frozen=True)
class CompiledCampaign:
    id: str
    name: str
    status: str
    priority: int
    starts_at: datetime | None
    ends_at: datetime | None
    placements: frozenset[str]
    sections_in: frozenset[str]
    sections_out: frozenset[str]
    tags_in: frozenset[str]
    tags_out: frozenset[str]
    countries_in: frozenset[str]
    countries_out: frozenset[str]
    languages: frozenset[str]
    articles_min: int
    articles_max: int | None
    max_impressions: int | None
    per_days: int
    after_dismiss_days: int
    goal_amount: int | None
    goal_currency: str | None
    holdback: float
    variants: tuple[Variant, ...]
    total_weight: int

    @classmethod
    def compile(cls, doc: Mapping[str, Any]) -> CompiledCampaign:
        t = doc.get("targeting") or {}
        f = doc.get("frequency") or {}
        goal = doc.get("goal") or {}
        variants = tuple(
            Variant(
                id=v["id"],
                weight=int(v.get("weight", 1)),
                heading=v["heading"],
                body_html=v.get("body_html", ""),
                cta_label=v.get("cta_label", "Contribute today"),
                default_frequency=v.get("default_frequency", "one_off"),
                amounts=v.get("amounts") or {},
                translations=v.get("translations") or {},
            )
            for v in doc["variants"]
        )

        def s(key: str, side: str) -> frozenset[str]:
            return frozenset((t.get(key) or {}).get(side) or [])

        reads = t.get("articles_read") or {}
        return cls(
            id=doc["id"],
            name=doc.get("name", doc["id"]),
            status=doc.get("status", "draft"),
            priority=int(doc.get("priority", 0)),
            starts_at=_parse_time(doc.get("starts_at")),
            ends_at=_parse_time(doc.get("ends_at")),
            placements=frozenset(doc.get("placements") or []),
            sections_in=s("sections", "include"),
            sections_out=s("sections", "exclude"),
            tags_in=s("tags", "include"),
            tags_out=s("tags", "exclude"),
            countries_in=s("countries", "include"),
            countries_out=s("countries", "exclude"),
            languages=frozenset(t.get("languages") or []),
            articles_min=int(reads.get("min") or 0),
            articles_max=reads.get("max"),
            max_impressions=f.get("max_impressions"),
            per_days=int(f.get("per_days") or 30),
            after_dismiss_days=int(f.get("after_dismiss_days", 14)),
            goal_amount=goal.get("amount"),
            goal_currency=goal.get("currency"),
            holdback=float(doc.get("holdback") or 0.0),
            variants=variants,
            total_weight=sum(v.weight for v in variants),
        )

    def sort_key(self) -> tuple[int, datetime, str]:
        """Highest priority first; ties: the earliest start."""
        return (-self.priority, self.starts_at or datetime.min, self.id)

    def page_rejection(self, req: AppealRequest, now: datetime) -> str | None:
        """Why this campaign may not be shown on this page (to any of its readers), or None.

        What depends on the reader (articles read, dismissals, the frequency cap, holdback)
        is decided by `reader.decide`, in the browser or for `GET /api/v1/appeal`."""
        if self.status != "live":
            return f"status is {self.status}"
        if self.starts_at and now < self.starts_at:
            return "not started yet"
        if self.ends_at and now >= self.ends_at:
            return "ended"
        if req.placement not in self.placements:
            return f"placement {req.placement} not in this campaign"
        section = (req.section or "").lower()
        if self.sections_in and section not in self.sections_in:
            return "section not included"
        if section and section in self.sections_out:
            return "section excluded"
        if self.tags_in and not (req.tags & self.tags_in):
            return "no included tag"
        if req.tags & self.tags_out:
            return "tag excluded"
        country = (req.country or "").upper()
        if self.countries_in and country not in self.countries_in:
            return "country not included"
        if country and country in self.countries_out:
            return "country excluded"
        if (
            self.languages
            and req.lang not in self.languages
            and (req.lang.split("-")[0] not in self.languages)
        ):
            return "language not targeted"
        return None

    def decision_fields(self) -> dict[str, Any]:
        """What a reader's decision needs of this candidate (docs/appeals-in-the-browser.md)."""
        return {
            "campaign": self.id,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "articles_read": {"min": self.articles_min, "max": self.articles_max},
            "frequency": {
                "max_impressions": self.max_impressions,
                "per_days": self.per_days,
                "after_dismiss_days": self.after_dismiss_days,
            },
            "holdback": self.holdback,
            "dismissible": True,  # a soft gate: readers may always close it
            "variants": [{"id": v.id, "weight": v.weight} for v in self.variants],
        }

    def variant(self, variant_id: str) -> Variant:
        return next(v for v in self.variants if v.id == variant_id)


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass(frozen=True)
class AppealRules:
    """Newsroom-wide rules (the AppealConfig row)."""

    blackout_sections: frozenset[str] = frozenset()
    blackout_tags: frozenset[str] = frozenset()
    killed_placements: frozenset[str] = frozenset()
    gate_after_articles: int = 5
    one_off_supporter_days: int = 90


@dataclass(frozen=True)
class Snapshot:
    campaigns: tuple[CompiledCampaign, ...]  # already in priority order
    rules: AppealRules
    version: int
    raised: Mapping[str, int] = field(default_factory=dict)
    built_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))

    @classmethod
    def build(
        cls,
        documents: Iterable[Mapping[str, Any]],
        rules: AppealRules,
        version: int,
        raised: Mapping[str, int] | None = None,
    ) -> Snapshot:
        compiled = sorted(
            (CompiledCampaign.compile(d) for d in documents), key=CompiledCampaign.sort_key
        )
        return cls(tuple(compiled), rules, version, dict(raised or {}))

    @cached_property
    def variant_ids(self) -> Mapping[str, frozenset[str]]:
        """Each campaign's variant ids: events about anything else are not counted."""
        return {c.id: frozenset(v.id for v in c.variants) for c in self.campaigns}


@dataclass
class Decision:
    campaign: CompiledCampaign | None
    variant: Variant | None
    explain: list[dict[str, Any]]


def page_candidates(
    snapshot: Snapshot, req: AppealRequest, now: datetime
) -> tuple[list[CompiledCampaign], list[dict[str, Any]]]:
    """The campaigns that may be shown on this page, highest priority first, and a reason
    for every campaign that may not (whatever the reader: what a cache can share)."""
    rules = snapshot.rules

    def everyone(reason: str) -> tuple[list[CompiledCampaign], list[dict[str, Any]]]:
        return [], [{"campaign": "*", "shown": False, "reason": reason}]

    if req.placement in rules.killed_placements:
        return everyone(f"placement {req.placement} is switched off")
    if req.section and req.section.lower() in rules.blackout_sections:
        return everyone("section is in the editorial blackout")
    if req.tags & rules.blackout_tags:
        return everyone("a tag is in the editorial blackout")
    candidates, reasons = [], []
    for c in snapshot.campaigns:
        reason = c.page_rejection(req, now)
        if reason is None:
            candidates.append(c)
        else:
            reasons.append({"campaign": c.id, "shown": False, "reason": reason})
    return candidates, reasons


def rules_fields(rules: AppealRules) -> dict[str, int]:
    return {
        "gate_after_articles": rules.gate_after_articles,
        "one_off_supporter_days": rules.one_off_supporter_days,
    }


def reader_of(req: AppealRequest, now: datetime) -> Reader:
    """The reader a `GET /api/v1/appeal` query describes (its state travels in the query)."""
    supporter = req.supporter
    # One time for every dismissal in the query; a dismissal without it counts as just now.
    dismissed_at = req.last_dismissed or now
    return Reader(
        views=req.views,
        rid=req.rid or f"article:{req.article}",
        dismissed={c: dismissed_at for c in req.dismissed},
        seen=req.seen,
        supporter_kind=supporter.kind if supporter else None,
        supporter_since=datetime.fromtimestamp(supporter.issued_at, UTC).replace(tzinfo=None)
        if supporter
        else None,
    )


def choose(
    snapshot: Snapshot, req: AppealRequest, now: datetime, *, explain: bool = True
) -> Decision:
    """The campaign and variant to show, with the reason for every campaign considered:
    the page's candidates, then the reader's decision among them (reader.decide, the very
    rules the widget applies in the browser)."""
    candidates, page_reasons = page_candidates(snapshot, req, now)
    answer = {
        "placement": req.placement,
        "rules": rules_fields(snapshot.rules),
        "candidates": [c.decision_fields() for c in candidates],
    }
    choice = decide(answer, reader_of(req, now), now, explain=explain)
    if not candidates and page_reasons and page_reasons[0]["campaign"] == "*":
        reasons = page_reasons
    elif choice.explain and choice.explain[0]["campaign"] == "*":
        reasons = choice.explain
    else:
        reasons = sorted(
            [*page_reasons, *choice.explain],
            key=lambda r: [c.id for c in snapshot.campaigns].index(r["campaign"]),
        )
    if choice.index is None or choice.variant is None:
        return Decision(None, None, reasons)
    winner = candidates[choice.index]
    return Decision(winner, winner.variant(choice.variant), reasons)


def presets_for(variant: Variant, currency: str) -> tuple[str, Mapping[str, list[int]]]:
    """The variant's presets in the reader's currency, else its usd presets (in usd)."""
    if currency in variant.amounts:
        return currency, variant.amounts[currency]
    return "usd", variant.amounts.get("usd") or {}


def cta_url(base: str, params: Mapping[str, Any]) -> str:
    """`urlencode` of the non-empty params (the same bytes), each value quoted once per
    process: the same campaign, variant, article and amounts recur in every answer."""
    return f"{base}/contribute?" + "&".join(
        f"{_quoted(str(k))}={_quoted(str(v))}" for k, v in params.items() if v not in (None, "")
    )


@lru_cache(maxsize=8192)
def _quoted(value: str) -> str:
    return quote_plus(value)
