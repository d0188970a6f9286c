"""Reader-facing appeal pages: the embeddable script, the appeal as an iframe page, a demo article.

`GET /widget.js` serves donations/static/widget.js (what newsroom pages load),
`GET /embed/appeal?…` answers the same query as `GET /api/v1/appeal` with a standalone HTML
page for an iframe, and `GET /demo/article` shows the widget on a realistic article.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from babel import Locale, UnknownLocaleError
from babel.numbers import get_decimal_symbol
from flask import Blueprint, Response, render_template, request, send_file
from markupsafe import Markup, escape

from donations.appeals.service import InvalidInput, answer_appeal
from donations.errors import problem
from donations.i18n import DEFAULT_LANGUAGE, supported
from donations.money import exponent
from donations.money import format_money as money_for
from donations.paths import PACKAGE, STATIC
from donations.services import services

bp = Blueprint("appeal_pages", __name__)

WIDGET = STATIC / "widget.js"
WIDGET_MAX_AGE = 300
EMBED_MAX_AGE = 60  # as the appeal API: the page is a function of its URL

# The demo article: the package's own copy (so an installed wheel has it), else the shared
# fixture it was copied from, beside a checkout.
DEMO_ARTICLE_FILES = (
    PACKAGE / "demo_article.txt",
    PACKAGE.parent.parent
    / "shared"
    / "fixtures"
    / "article-2020-12-15-putin-congratulates-biden.txt",
)
DEMO_ARTICLE_ID = "putin-congratulates-biden"
DEMO_SECTION = "news"
DEMO_TAGS = ("putin", "biden", "usa")
ARTICLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


@bp.get("/widget.js")
def widget_js() -> Response:
    """The embeddable script (cached briefly, so a fix reaches every newsroom page soon)."""
    response = send_file(
        WIDGET, mimetype="application/javascript", max_age=WIDGET_MAX_AGE, conditional=True
    )
    response.headers["Cache-Control"] = f"public, max-age={WIDGET_MAX_AGE}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/embed/appeal")
def embed_appeal() -> Response:
    """The appeal of `GET /api/v1/appeal` (same query) as an HTML page for an iframe; when
    there is nothing to show, an empty page."""
    s = services()
    settings = s.settings
    header_country = (
        request.headers.get(settings.country_header) if settings.country_header else None
    )
    try:
        req, _debug, appeal, _explain = answer_appeal(s, request.args, header_country)
    except InvalidInput as exc:
        return problem(422, "Invalid request", "Some query values are invalid.", errors=exc.errors)
    html = render_template(
        "embed_appeal.html",
        appeal=appeal,
        article=req.article,
        presets=_preset_links(appeal, req.lang) if appeal else [],
        ticker=_ticker_text(appeal.get("ticker"), appeal["ui"], req.lang) if appeal else None,
        ui=appeal["ui"] if appeal else {},
        words=words,
        read_line=_read_line(appeal["ui"], req.lang, appeal["articles_read"]) if appeal else "",
        lang=req.lang,
        events_url="/api/v1/events",
    )
    response = Response(html, mimetype="text/html")
    # A reader with a supporter token gets a personal answer: keep it out of shared caches.
    private = bool(request.args.get("supporter"))
    response.headers["Cache-Control"] = (
        "private, no-store" if private else f"public, max-age={EMBED_MAX_AGE}"
    )
    vary = ["Origin"]
    if settings.country_header:
        vary.append(settings.country_header)
    response.headers["Vary"] = ", ".join(vary)
    return response


def format_money(minor: int, currency: str, lang: str = "en") -> str:
    """Minor units as the page's language writes them, without ".00" on whole amounts (as the
    widget does): 1000 usd → "$10", 1050 eur → "€10.50", 1000 usd in ru → "10 $"."""
    locale = babel_locale(lang)
    text = money_for(minor, currency, str(locale))
    if minor % 10 ** exponent(currency) == 0:
        decimal = get_decimal_symbol(locale)
        text = re.sub(re.escape(decimal) + r"0+(?!\d)", "", text, count=1)
    return text


def babel_locale(lang: str) -> Locale:
    """The page's language as Babel knows it ("pt-br" → pt_BR), else English."""
    try:
        return Locale.parse(lang.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")


def _with_amount(url: str, amount: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "amount"]
    return urlunsplit(parts._replace(query=urlencode([("amount", str(amount)), *query])))


def words(ui: dict[str, str], key: str, **values: str) -> str:
    """One of the widget's words (appeals/ui.py) with its `{placeholders}` filled."""
    text = ui.get(key, "")
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _preset_links(appeal: dict[str, Any], lang: str) -> list[dict[str, str]]:
    """The default frequency's presets, each as a link to the contribute page with that amount."""
    amounts = appeal["amounts"]
    frequency = amounts["default_frequency"]
    ui = appeal["ui"]

    def label(v: int) -> str:
        amount = format_money(v, amounts["currency"], lang)
        return words(ui, f"per.{frequency}", amount=amount) if frequency != "one_off" else amount

    return [
        {"label": label(v), "url": _with_amount(appeal["cta"]["url"], v)}
        for v in amounts["presets"].get(frequency) or []
    ]


def _ticker_text(
    ticker: dict[str, Any] | None, ui: dict[str, str], lang: str
) -> dict[str, Any] | None:
    if not ticker or not ticker.get("goal"):
        return None
    raised = max(0, int(ticker["raised"] or 0))
    goal = int(ticker["goal"])
    raised_text = format_money(raised, ticker["currency"], lang)
    # "{raised} raised" with the amount in bold: the words escaped, the amount put in after.
    before, _, after = ui.get("raised", "{raised}").partition("{raised}")
    return {
        **ticker,
        "now": min(raised, goal),
        "percent": min(100, round(raised * 100 / goal)),
        "raised_text": raised_text,
        "raised_html": escape(before) + Markup("<b>%s</b>") % raised_text + escape(after),
        "goal_text": format_money(goal, ticker["currency"], lang),
    }


def _read_line(ui: dict[str, str], lang: str, n: int) -> str:
    """ "You've read N articles…" in the plural form the language uses for n."""
    category = babel_locale(lang).plural_form(n)
    return words(ui, f"read.{category}", n=str(n)) or words(ui, "read.other", n=str(n))


# --- the demo article ------------------------------------------------------------------------
@dataclass
class Related:
    kicker: str
    title: str
    summary: str
    slug: str


@dataclass
class DemoArticle:
    headline: str
    standfirst: str
    published: date | None
    paragraphs: list[str]
    topics: list[str] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "article"


def read_demo_text() -> str:
    for path in DEMO_ARTICLE_FILES:
        if Path(path).is_file():
            return Path(path).read_text(encoding="utf-8")
    raise FileNotFoundError("the demo article text is missing (donations/demo_article.txt)")


def parse_demo_article(text: str) -> DemoArticle:
    """The scraped article: page chrome, the headline before "Updated:", the photo caption
    (used as the standfirst, without its credit), paragraphs up to "Read more about:", then
    "Read more" items (kicker, title, summary); the newsroom's own appeal at the end is dropped."""
    lines = [line.strip() for line in text.splitlines()]
    found = re.search(r"\bdate (\d{4}-\d{2}-\d{2})", text)
    published = date.fromisoformat(found.group(1)) if found else None
    nonblank = [(i, line) for i, line in enumerate(lines) if line]
    try:
        updated = next(i for i, line in nonblank if line.rstrip(":").lower() == "updated")
    except StopIteration:
        updated = -1
    before = [line for i, line in nonblank if i < updated]
    after = [line for i, line in nonblank if i > updated]
    headline = before[-1] if before else (after.pop(0) if after else "Untitled")
    standfirst = ""
    if updated >= 0 and after:
        caption = after.pop(0)
        # "…global problems. David Lienemann / Official White House": drop the photo credit.
        head, dot, credit = caption.rpartition(". ")
        standfirst = head + "." if dot and "/" in credit else caption
    paragraphs: list[str] = []
    topics: list[str] = []
    rest: list[str] = []
    for n, line in enumerate(after):
        if line.lower().startswith("read more about:"):
            topics = [t.strip() for t in line.split(":", 1)[1].split(",") if t.strip()]
            rest = after[n + 1 :]
            break
        paragraphs.append(line)
    if rest and rest[0].lower() == "read more":
        rest = rest[1:]
    related: list[Related] = []
    while len(rest) >= 3 and len(rest[0]) <= 40 and not rest[0].endswith("."):
        kicker, title, summary = rest[:3]
        related.append(Related(kicker.strip("'\u2018\u2019"), title, summary, slugify(title)))
        rest = rest[3:]
    return DemoArticle(headline, standfirst, published, paragraphs, topics, related)


@bp.get("/demo/article")
def demo_article() -> str:
    """A demo newsroom article with the widget's three placements (epic, banner, gate).
    `?article=` changes the article id the widget reports (to simulate reading several)."""
    article = parse_demo_article(read_demo_text())
    wanted = request.args.get("article", "")
    article_id = wanted if ARTICLE_ID.match(wanted) else DEMO_ARTICLE_ID
    context: dict[str, Any] = {
        "article": article,
        "article_id": article_id,
        "section": DEMO_SECTION,
        "tags": ",".join(DEMO_TAGS),
        # The page's language for the widget (`?lang=ru` shows the appeals a Russian page
        # gets); the article itself is the English original.
        "lang": supported(request.args.get("lang")) or DEFAULT_LANGUAGE,
    }
    return render_template("demo_article.html", **context)
