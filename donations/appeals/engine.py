"""Choosing an appeal: pure functions over a compiled snapshot of the campaigns (no I/O).

The answer is a function of the request (its URL) and the snapshot, so a CDN may cache it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from donations.supporters import Supporter

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


def bucket(*parts: str) -> float:
    """A stable number in [0, 1) for a reader and a campaign: the same inputs, the same bucket."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


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

    def rejection(self, req: AppealRequest, now: datetime) -> str | None:
        """Why this campaign may not be shown to this request, or None when it may."""
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
        if req.views < self.articles_min:
            return f"fewer than {self.articles_min} articles read"
        if self.articles_max is not None and req.views > self.articles_max:
            return f"more than {self.articles_max} articles read"
        if self.id in req.dismissed:
            since = req.last_dismissed
            if since is None or now - since < timedelta(days=self.after_dismiss_days):
                return f"dismissed (hidden for {self.after_dismiss_days} days)"
        if self.max_impressions is not None and req.seen.get(self.id, 0) >= self.max_impressions:
            return f"seen {self.max_impressions} times in {self.per_days} days"
        if self.total_weight <= 0:
            return "no variant has weight"
        return None

    def variant_for(self, reader: str) -> Variant:
        """Weighted, stable assignment: the same reader always gets the same variant."""
        point = bucket(self.id, "variant", reader) * self.total_weight
        running = 0
        for v in self.variants:
            running += v.weight
            if point < running:
                return v
        return self.variants[-1]

    def holds_back(self, reader: str) -> bool:
        return self.holdback > 0 and bucket(self.id, "holdback", reader) < self.holdback


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


def _suppressed_supporter(req: AppealRequest, rules: AppealRules, now: datetime) -> bool:
    s = req.supporter
    if s is None:
        return False
    if s.kind == "recurring":
        return True
    issued = datetime.fromtimestamp(s.issued_at, UTC).replace(tzinfo=None)
    return now - issued < timedelta(days=rules.one_off_supporter_days)


def choose(
    snapshot: Snapshot, req: AppealRequest, now: datetime, *, explain: bool = True
) -> Decision:
    """The campaign and variant to show, with the reason for every campaign considered.

    Without `explain` it stops at the first campaign that may be shown (the same choice).
    """
    rules = snapshot.rules

    def none(reason: str) -> Decision:
        return Decision(None, None, [{"campaign": "*", "shown": False, "reason": reason}])

    if req.placement in rules.killed_placements:
        return none(f"placement {req.placement} is switched off")
    if req.section and req.section.lower() in rules.blackout_sections:
        return none("section is in the editorial blackout")
    if req.tags & rules.blackout_tags:
        return none("a tag is in the editorial blackout")
    if _suppressed_supporter(req, rules, now):
        return none("reader is a supporter")
    if req.placement == "gate":
        if req.supporter is not None:
            return none("the gate is never shown to supporters")
        if req.views < rules.gate_after_articles:
            return none(f"gate needs {rules.gate_after_articles} articles read")

    reasons: list[dict[str, Any]] = []
    winner: CompiledCampaign | None = None
    for c in snapshot.campaigns:
        if winner is not None and not explain:
            break
        reason = c.rejection(req, now)
        if reason is None and winner is not None:
            reason = f"lower priority than {winner.id}"
        if reason is None:
            winner = c
        reasons.append({"campaign": c.id, "shown": reason is None, "reason": reason or "shown"})
    if winner is None:
        return Decision(None, None, reasons)
    reader = req.rid or f"article:{req.article}"
    if winner.holds_back(reader):
        for item in reasons:
            if item["campaign"] == winner.id:
                item.update(shown=False, reason=f"reader is in the {winner.holdback:.0%} holdback")
        return Decision(None, None, reasons)
    return Decision(winner, winner.variant_for(reader), reasons)


def presets_for(variant: Variant, currency: str) -> tuple[str, Mapping[str, list[int]]]:
    """The variant's presets in the reader's currency, else its usd presets (in usd)."""
    if currency in variant.amounts:
        return currency, variant.amounts[currency]
    return "usd", variant.amounts.get("usd") or {}


def cta_url(base: str, params: Mapping[str, Any]) -> str:
    return f"{base}/contribute?" + urlencode(
        {k: v for k, v in params.items() if v not in (None, "")}
    )
