"""The appeal use cases: read a request, choose, describe the appeal; record events."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from donations import observability, supporters
from donations.appeals.engine import (
    AppealRequest,
    CompiledCampaign,
    Snapshot,
    Variant,
    choose,
    cta_url,
    page_candidates,
    presets_for,
    rules_fields,
)
from donations.appeals.events import EVENT_TYPES, Event
from donations.appeals.impressions import UNSIGNED, ImpressionTokens
from donations.appeals.throttle import EventLimiter
from donations.appeals.ui import widget_strings
from donations.brand import widget_brand
from donations.db import utcnow

log = logging.getLogger(__name__)
PLACEMENTS = ("epic", "banner", "gate")
RID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
COUNTRY = re.compile(r"^[A-Za-z]{2}$")
# Control characters and lone surrogates: never stored (the flush isolates them anyway).
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
MAX_EVENTS = 50


@lru_cache(maxsize=8)
def impression_tokens(secret_key: str) -> ImpressionTokens:
    """The token signer for this SECRET_KEY (its key is derived once)."""
    return ImpressionTokens(secret_key)


class InvalidInput(ValueError):
    """Bad input, with a message per field (→ 422)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid input")
        self.errors = errors


def _int(value: str, low: int, high: int) -> int:
    number = int(value)
    if not low <= number <= high:
        raise ValueError
    return number


def parse_appeal_query(
    args: Mapping[str, str], *, secret_key: str, country_header: str | None
) -> tuple[AppealRequest, bool]:
    """The appeal request from its query string (hand-written: this is the hot path; the same
    rules are documented in the OpenAPI document)."""
    errors: dict[str, list[str]] = {}

    def bad(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    article = args.get("article", "")
    if not 1 <= len(article) <= 200:
        bad("article", "Required, 1–200 characters.")
    placement = args.get("placement") or "epic"
    if placement not in PLACEMENTS:
        bad("placement", "Must be one of: epic, banner, gate.")
    section = args.get("section") or None
    if section is not None and len(section) > 100:
        bad("section", "At most 100 characters.")
    tags_raw = args.get("tags") or ""
    if len(tags_raw) > 1000:
        bad("tags", "At most 1000 characters.")
    tags = frozenset(t.strip().lower() for t in tags_raw.split(",") if t.strip())
    lang = (args.get("lang") or "en").lower()
    if not LANG.match(lang):
        bad("lang", "A language code such as en or pt-br.")
    country = args.get("country") or country_header or None
    if country is not None and not COUNTRY.match(country):
        if "country" in args:
            bad("country", "An ISO 3166-1 alpha-2 code such as GB.")
        country = None
    url = args.get("url") or None
    if url is not None and len(url) > 2000:
        bad("url", "At most 2000 characters.")
    views = 0
    if args.get("views"):
        try:
            views = _int(args["views"], 0, 100_000)
        except ValueError:
            bad("views", "A whole number from 0 to 100000.")
    rid = args.get("rid") or None
    if rid is not None and not RID.match(rid):
        bad("rid", "1–64 letters, digits, dashes or underscores.")
    dismissed = frozenset(d for d in (args.get("dismissed") or "").split(",") if d)
    if len(dismissed) > 100 or any(not SLUG.match(d) for d in dismissed):
        bad("dismissed", "Comma-separated campaign ids.")
    last_dismissed = None
    if args.get("last_dismissed"):
        try:
            moment = datetime.fromisoformat(args["last_dismissed"].replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError
            last_dismissed = moment.astimezone(UTC).replace(tzinfo=None)
        except ValueError:
            bad("last_dismissed", "An RFC 3339 timestamp such as 2026-11-28T10:00:00Z.")
    seen: dict[str, int] = {}
    for part in (args.get("seen") or "").split(","):
        if not part:
            continue
        cid, _, count = part.partition(":")
        try:
            if not SLUG.match(cid):
                raise ValueError
            seen[cid] = _int(count, 0, 1_000_000)
        except ValueError:
            bad("seen", "Comma-separated campaign:count pairs, e.g. year-end:3.")
            break
    supporter = None
    token = args.get("supporter")
    if token:
        if len(token) > 500:
            bad("supporter", "Not a supporter token.")
        else:
            # A forged or expired token simply counts as no supporter.
            supporter = supporters.verify(secret_key, token)
    debug = args.get("debug") in ("1", "true")
    if errors:
        raise InvalidInput(errors)
    return (
        AppealRequest(
            article=article,
            placement=placement,
            section=section,
            tags=tags,
            lang=lang,
            country=country.upper() if country else None,
            url=url,
            views=views,
            rid=rid,
            dismissed=dismissed,
            last_dismissed=last_dismissed,
            seen=seen,
            supporter=supporter,
        ),
        debug,
    )


def describe_appeal(
    snapshot: Snapshot,
    req: AppealRequest,
    *,
    now: datetime,
    public_base_url: str,
    country_currencies: Mapping[str, str],
    minimums: Mapping[str, int],
    explain: bool = True,
    tokens: ImpressionTokens | None = None,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the appeal body or None, the explanation of every campaign considered).

    The body's impression token is signed with `tokens`; without them (the admin preview) it
    is a placeholder no event can be counted with."""
    decision = choose(snapshot, req, now, explain=explain)
    campaign, variant = decision.campaign, decision.variant
    if campaign is None or variant is None:
        return None, decision.explain
    body = {
        **variant_body(
            snapshot,
            campaign,
            variant,
            req,
            now=now,
            public_base_url=public_base_url,
            country_currencies=country_currencies,
            minimums=minimums,
            tokens=tokens,
        ),
        "campaign": campaign.id,
        "variant": variant.id,
        "placement": req.placement,
        "ticker": ticker_of(snapshot, campaign),
        "dismissible": True,  # a soft gate: readers may always close it
        "articles_read": req.views,
    }
    return body, decision.explain


def ticker_of(snapshot: Snapshot, campaign: CompiledCampaign) -> dict[str, Any] | None:
    """The goal ticker: raised so far (from the ledger, recomputed every 60 s) of the goal."""
    if not (campaign.goal_amount and campaign.goal_currency):
        return None
    return {
        "goal": campaign.goal_amount,
        "raised": snapshot.raised.get(campaign.id, 0),
        "currency": campaign.goal_currency,
        "ends_at": campaign.ends_at.strftime("%Y-%m-%dT%H:%M:%SZ") if campaign.ends_at else None,
    }


def variant_body(
    snapshot: Snapshot,
    campaign: CompiledCampaign,
    variant: Variant,
    req: AppealRequest,
    *,
    now: datetime,
    public_base_url: str,
    country_currencies: Mapping[str, str],
    minimums: Mapping[str, int],
    tokens: ImpressionTokens | None,
) -> dict[str, Any]:
    """What a reader is shown of one variant on this page: its signed impression token, its
    copy in the page's language, its call to action and amounts in the reader's currency."""
    wanted = country_currencies.get(req.country or "", "usd")
    currency, presets = presets_for(variant, wanted)
    heading, body_html, cta_label = variant.copy_for(req.lang)
    impression = (
        tokens.issue(
            campaign.id,
            variant.id,
            req.placement,
            req.article,
            now=now.replace(tzinfo=UTC).timestamp(),
        )
        if tokens is not None
        else UNSIGNED
    )
    # Prefill only an amount meant for the default frequency; else the page suggests one.
    suggested = presets.get(variant.default_frequency)
    default_amount = suggested[0] if suggested else None
    return {
        "impression": impression,
        "heading": heading,
        "body_html": body_html,
        "cta": {
            "label": cta_label,
            "url": cta_url(
                public_base_url,
                {
                    "amount": default_amount,
                    "currency": currency,
                    "frequency": variant.default_frequency,
                    "article": req.article,
                    "campaign": campaign.id,
                    "variant": variant.id,
                    "placement": req.placement,
                    "impression": impression,
                    # The checkout and its receipts speak the reader's language.
                    "lang": req.lang,
                    # The thank-you page links back to the article (checked there). The widget
                    # adds its page's address to the shared answers' links in the browser.
                    "url": req.url,
                },
            ),
        },
        "amounts": {
            "currency": currency,
            "minimum": minimums.get(currency, 100),
            "presets": {
                "one_off": list(presets.get("one_off") or []),
                "monthly": list(presets.get("monthly") or []),
                "annual": list(presets.get("annual") or []),
            },
            "default_frequency": variant.default_frequency,
        },
    }


def describe_candidates(
    snapshot: Snapshot,
    req: AppealRequest,
    *,
    now: datetime,
    public_base_url: str,
    country_currencies: Mapping[str, str],
    minimums: Mapping[str, int],
    tokens: ImpressionTokens | None,
) -> dict[str, Any]:
    """The answer of `GET /api/v1/appeals`: everything this page's readers may be shown and
    what their browsers need to decide (docs/appeals-in-the-browser.md). Names no reader."""
    candidates, _ = page_candidates(snapshot, req, now)
    described = []
    for campaign in candidates:
        fields = campaign.decision_fields()
        weights = {v["id"]: v["weight"] for v in fields["variants"]}
        fields["ticker"] = ticker_of(snapshot, campaign)
        fields["variants"] = [
            {
                "id": variant.id,
                "weight": weights[variant.id],
                **variant_body(
                    snapshot,
                    campaign,
                    variant,
                    req,
                    now=now,
                    public_base_url=public_base_url,
                    country_currencies=country_currencies,
                    minimums=minimums,
                    tokens=tokens,
                ),
            }
            for variant in campaign.variants
        ]
        described.append(fields)
    return {
        "version": str(snapshot.version),
        "article": req.article,
        "placement": req.placement,
        "lang": req.lang,
        "country": req.country,
        "rules": rules_fields(snapshot.rules),
        "candidates": described,
    }


# The candidates request names the page only: anything about a reader is refused, so that one
# cached answer serves every reader of the article.
PAGE_PARAMETERS = frozenset({"article", "placement", "section", "tags", "lang", "country", "v"})


def answer_candidates(
    services: Any, args: Mapping[str, str], header_country: str | None
) -> tuple[AppealRequest, dict[str, Any]]:
    """Parse the page's query and describe its candidates; raises InvalidInput."""
    extra = sorted(set(args) - PAGE_PARAMETERS)
    if extra:
        raise InvalidInput(
            {
                name: ["Not a page parameter: the reader's state stays in the browser."]
                for name in extra
            }
        )
    version = args.get("v")
    if version is not None and (not version.isdigit() or len(version) > 20):
        raise InvalidInput({"v": ["The campaigns' version, a whole number."]})
    settings = services.settings
    req, _ = parse_appeal_query(args, secret_key=settings.secret_key, country_header=header_country)
    body = describe_candidates(
        services.appeals.current(),
        req,
        now=utcnow(),
        public_base_url=settings.public_base_url,
        country_currencies=settings.country_currencies,
        minimums=services.minimums,
        tokens=impression_tokens(settings.secret_key),
    )
    body.update(page_words(settings, req.lang))
    return req, body


def page_words(settings: Any, lang: str) -> dict[str, Any]:
    """Additive to API.md: the widget's own words in the page's language (`ui`, from the
    gettext catalogs, appeals/ui.py) and the newsroom's brand (`brand`: name and accent)."""
    return {"ui": widget_strings(lang), "brand": widget_brand(settings)}


def answer_appeal(
    services: Any,
    args: Mapping[str, str],
    header_country: str | None,
    *,
    explain: bool = False,
) -> tuple[AppealRequest, bool, dict[str, Any] | None, list[dict[str, Any]]]:
    """Parse, choose and describe: (request, debug asked, body or None, explanation).

    Shared by the Flask view, the WSGI fast path and /embed/appeal; raises InvalidInput.
    """
    settings = services.settings
    req, debug = parse_appeal_query(
        args, secret_key=settings.secret_key, country_header=header_country
    )
    body, reasons = describe_appeal(
        services.appeals.current(),
        req,
        now=utcnow(),
        public_base_url=settings.public_base_url,
        country_currencies=settings.country_currencies,
        minimums=services.minimums,
        explain=explain or debug,
        tokens=impression_tokens(settings.secret_key),
    )
    if body is not None:
        body.update(page_words(settings, req.lang))
    return req, debug, body, reasons


def parse_events(raw: bytes) -> list[Event]:
    """Validate a batch of widget events: all or nothing."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise json.JSONDecodeError("The body is not valid JSON.", "", 0) from exc
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise InvalidInput({"events": ["Required: a list of events."]})
    events = data["events"]
    if not 1 <= len(events) <= MAX_EVENTS:
        raise InvalidInput({"events": [f"Send 1 to {MAX_EVENTS} events at a time."]})
    parsed: list[Event] = []
    errors: dict[str, list[str]] = {}
    for i, event in enumerate(events):
        problems = []
        if not isinstance(event, dict):
            errors[f"events.{i}"] = ["An event is an object."]
            continue
        unknown = set(event) - {"type", "impression", "campaign", "variant", "placement", "article"}
        if unknown:
            problems.append(f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}.")
        if event.get("type") not in EVENT_TYPES:
            problems.append("type must be one of: " + ", ".join(EVENT_TYPES) + ".")
        for name in ("campaign", "variant"):
            value = event.get(name)
            if not isinstance(value, str) or not SLUG.match(value):
                problems.append(f"{name} must be an id.")
        if event.get("placement") not in PLACEMENTS:
            problems.append("placement must be one of: epic, banner, gate.")
        article = event.get("article")
        if (
            not isinstance(article, str)
            or not 1 <= len(article) <= 200
            or UNPRINTABLE.search(article)
        ):
            problems.append("article must be 1–200 printable characters.")
        imp = event.get("impression")
        if imp is not None and (
            not isinstance(imp, str) or len(imp) > 64 or UNPRINTABLE.search(imp)
        ):
            problems.append("impression must be an impression token.")
        if problems:
            errors[f"events.{i}"] = problems
            continue
        parsed.append(
            Event(
                type=event["type"],
                impression=imp,
                campaign=event["campaign"],
                variant=event["variant"],
                placement=event["placement"],
                article=str(article),
            )
        )
    if errors:
        raise InvalidInput(errors)
    return parsed


def count_events(
    services: Any, events: list[Event], address: str, limiter: EventLimiter, *, now: float
) -> int:
    """Count what a served appeal vouches for, within the client's limits; the number counted.

    An event counts only with an impression token this service issued (within a day) for its
    campaign, variant, placement and article, for a campaign and variant that exist, and
    within the client's limits (donations.appeals.throttle). The others are dropped silently:
    a reader's tab left open for two days is not an error."""
    try:
        known: Mapping[str, frozenset[str]] | None = services.appeals.current().variant_ids
    except Exception:  # no snapshot yet and the database is down: the token alone decides
        log.warning("events: no appeal snapshot to check campaigns against", exc_info=True)
        known = None
    tokens = impression_tokens(services.settings.secret_key)
    refused: Counter[str] = Counter()
    vouched: list[Event] = []
    for event in events:
        if known is not None and event.variant not in known.get(event.campaign, ()):
            refused["unknown"] += 1
            continue
        why = tokens.check(
            event.impression,
            event.campaign,
            event.variant,
            event.placement,
            event.article,
            now=now,
        )
        if why is not None:
            refused[why] += 1
            continue
        vouched.append(event)
    admitted = limiter.admit(address, vouched)
    refused["limited"] += len(vouched) - len(admitted)
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    services.events.add(event.key(day) for event in admitted)
    observability.events_refused(refused)
    return len(admitted)
