"""widget.js decides as the server does, in a real browser (Debian Chromium via Playwright).

- Every case of tests/conformance/appeals.json (the table the Python reader decision is held
  to) goes through `window.donations._decide(answer, reader, now)` in Chromium: the candidates
  answer the server gives for the case (`cases.answer_for`), the case's reader (its RFC 3339
  times as milliseconds, as the widget keeps them) at the case's `decide_at` (default `now`),
  and the expected choice or none.
- `window.donations._bucket` is `donations.appeals.reader.bucket`, byte for byte (UTF-8).
- Honest experiments: 100,000 random readers (ids made like the widget's own, with
  a seeded generator) through the widget's assignment follow the weights and the holdback
  (sample-ratio χ², p > 0.001), and each reader stays in its variant.

widget.js is loaded into a page of its own (an origin that only Playwright answers, serving
the file from the checkout): these tests need no server and no database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import browser  # noqa: F401  (the fixture: Debian's Chromium or skip)

pytestmark = pytest.mark.browser

WIDGET = Path(__file__).resolve().parents[2] / "donations" / "static" / "widget.js"
ORIGIN = "http://widget.conformance.test"
PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<script src="/widget.js"></script></head><body><p>No placements here.</p></body></html>'
)


def _serve(route: Any) -> None:
    path = route.request.url[len(ORIGIN) :].split("?")[0]
    if path == "/widget.js":
        route.fulfill(
            status=200,
            content_type="application/javascript",
            body=WIDGET.read_text(encoding="utf-8"),
        )
    elif path in ("", "/"):
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)
    else:  # the widget asks nothing on a page without placements; nothing else is served
        route.fulfill(status=404, body="")


@pytest.fixture(scope="module")
def widget(browser: Any) -> Iterator[Any]:  # noqa: F811
    """A page with widget.js loaded; uncaught page errors fail the module's last test."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(f"{ORIGIN}/**", _serve)
    page.goto(f"{ORIGIN}/")
    page.wait_for_function("() => !!(window.donations && window.donations._decide)")
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def ms(value: Any) -> float | None:
    """An RFC 3339 time (a naive one is UTC) as the widget keeps it: milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000


def js_reader(reader: dict[str, Any]) -> dict[str, Any]:
    """The conformance table's reader as `_decide` takes it (times in ms)."""
    supporter = reader.get("supporter")
    return {
        "views": reader.get("views", 0),
        "rid": reader.get("rid", ""),
        "dismissed": {c: ms(t) for c, t in (reader.get("dismissed") or {}).items()},
        "seen": dict(reader.get("seen") or {}),
        "supporter": (
            {
                "kind": supporter.get("kind"),
                "since": ms(supporter.get("since")),
                "expires": ms(supporter.get("expires")),
            }
            if supporter
            else None
        ),
    }


def _expected(case: dict[str, Any]) -> dict[str, str] | None:
    expect = case["expect"]
    if not expect or expect.get("campaign") is None:
        return None
    return {"campaign": expect["campaign"], "variant": expect["variant"]}


def test_widget_js_decides_every_conformance_case_as_expected(widget: Any) -> None:
    from tests.conformance.cases import answer_for, load_cases

    cases = load_cases()
    assert len(cases) >= 10, "the conformance table is (nearly) empty"
    runs = [
        {
            "name": case.get("name") or str(i),
            # what GET /api/v1/appeals answers for the case's page at `now` …
            "answer": answer_for(case),
            # … and the reader as the browser keeps it (the table's own JSON, unfiltered: an
            # expired supporter token is the widget's to ignore) at `decide_at`
            "reader": js_reader(case["reader"]),
            "now": ms(case.get("decide_at") or case["now"]),
            "expect": _expected(case),
        }
        for i, case in enumerate(cases)
    ]
    got = widget.evaluate(
        "(runs) => runs.map((r) => window.donations._decide(r.answer, r.reader, r.now))", runs
    )
    wrong = [
        f"{run['name']}: expected {run['expect']}, widget.js chose {choice}"
        for run, choice in zip(runs, got, strict=True)
        if choice != run["expect"]
    ]
    assert not wrong, "widget.js disagrees with the conformance table:\n" + "\n".join(wrong)
    # The table is not vacuous: it has both outcomes.
    outcomes = {run["expect"] is None for run in runs}
    assert outcomes == {True, False}


def test_widget_js_buckets_as_the_python_reader(widget: Any) -> None:
    from donations.appeals.reader import bucket

    parts = [
        ("year-end-2020", "variant", "0f3a9c2e5b7d41e8a6c0b1d2e3f40516"),
        ("year-end-2020", "holdback", "0f3a9c2e5b7d41e8a6c0b1d2e3f40516"),
        ("reader-gate", "variant", "r1"),
        ("", "", ""),
        ("кампания", "variant", "читатель-1"),  # two bytes per letter in UTF-8
        ("ζ-campaign", "holdback", "🙂 four-byte"),
        *[("c" * n, "variant", str(n)) for n in range(0, 64, 7)],
    ]
    got = widget.evaluate(
        "(parts) => parts.map((p) => window.donations._bucket(p[0], p[1], p[2]))",
        [list(p) for p in parts],
    )
    assert got == [bucket(*p) for p in parts]
    assert all(0 <= b < 1 for b in got)


SRM_READERS = 100_000
SRM_WEIGHTS = {"a": 1, "b": 1, "c": 2}
SRM_HOLDBACK = 0.1
SRM = """({n, weights, holdback}) => {
  const answer = {
    version: 1, article: 'srm', placement: 'epic', lang: 'en',
    rules: {gate_after_articles: 5, one_off_supporter_days: 90},
    candidates: [{
      campaign: 'srm-check', starts_at: null, ends_at: null,
      articles_read: {min: 0, max: null},
      frequency: {max_impressions: null, per_days: 30, after_dismiss_days: 14},
      holdback, dismissible: true, ticker: null,
      variants: Object.entries(weights).map(([id, weight]) => ({id, weight})),
    }],
  };
  let seed = 20261201;
  const next = () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  const now = Date.now(), counts = {none: 0}, rids = [];
  let moved = 0;
  for (let i = 0; i < n; i++) {
    // a reader id shaped as the widget makes one (16 bytes in hex), from a seeded generator
    // (mulberry32) so that the run is the same every time: the χ² check cannot fail by chance
    const bytes = new Uint8Array(16);
    for (let j = 0; j < 16; j++) bytes[j] = next() & 255;
    const rid = [...bytes].map((x) => (x + 256).toString(16).slice(1)).join('');
    const reader = {views: 1, rid, dismissed: {}, seen: {}, supporter: null};
    const first = window.donations._decide(answer, reader, now);
    const again = window.donations._decide(answer, {...reader}, now + 3600e3);
    const key = first ? first.variant : 'none';
    counts[key] = (counts[key] || 0) + 1;
    if ((again ? again.variant : 'none') !== key) moved++;
    if (i < 1000) rids.push([rid, key]);
  }
  return {counts, moved, rids, answer};
}"""


def test_a_hundred_thousand_readers_split_as_weighted_and_stay_in_their_variant(
    widget: Any,
    browser: Any,  # noqa: F811
) -> None:
    from scipy.stats import chisquare

    out = widget.evaluate(SRM, {"n": SRM_READERS, "weights": SRM_WEIGHTS, "holdback": SRM_HOLDBACK})
    counts = out["counts"]
    assert sum(counts.values()) == SRM_READERS
    assert set(counts) == {"none", *SRM_WEIGHTS}
    total = sum(SRM_WEIGHTS.values())
    share = {"none": SRM_HOLDBACK}
    share.update({v: (1 - SRM_HOLDBACK) * w / total for v, w in SRM_WEIGHTS.items()})
    keys = sorted(share)
    observed = [counts[k] for k in keys]
    expected = [share[k] * SRM_READERS for k in keys]
    p = chisquare(observed, expected).pvalue
    assert p > 0.001, f"sample ratio mismatch: {dict(zip(keys, observed, strict=True))}, p={p}"
    # Sticky: asked again (an hour later) every reader gets the same answer …
    assert out["moved"] == 0
    # … and so in another page (a new load of widget.js, another browser context).
    context = browser.new_context()
    try:
        other = context.new_page()
        other.route(f"{ORIGIN}/**", _serve)
        other.goto(f"{ORIGIN}/")
        other.wait_for_function("() => !!(window.donations && window.donations._decide)")
        again = other.evaluate(
            "({answer, rids}) => rids.map(([rid]) => { const c = window.donations._decide("
            "answer, {views: 1, rid, dismissed: {}, seen: {}, supporter: null}, Date.now());"
            " return c ? c.variant : 'none'; })",
            {"answer": out["answer"], "rids": out["rids"]},
        )
    finally:
        context.close()
    assert again == [key for _rid, key in out["rids"]]
