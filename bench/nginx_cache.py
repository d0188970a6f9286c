"""Appeals a cache can share: the widget's requests straight from the app and through nginx
with deploy/nginx/donations.conf, against a raw WSGI floor, in one run.

    python bench/nginx_cache.py [--duration 10] [--readers 50000] [--articles 2000]
                                [--page-views 200000] [--zipf 1.0] [--no-browser]

The traffic is realistic: --readers readers with varied state (articles read, impressions per
campaign, dismissals, a few supporters; each with their own random id) read --page-views
articles chosen by a Zipf law (exponent --zipf) over --articles articles, readers themselves
drawn by a Zipf law (a few read a lot). Each page view makes the widget's requests, built as
widget.js builds them: `GET /api/v1/appeals/version`, then `GET /api/v1/appeals?article=…&
placement=…&section=…&tags=…&lang=…&v=…` for the page's epic, banner and gate. The readers'
state never enters a URL: it is what the browser decides with, and the run decides for a sample
of page views (donations.appeals.reader, the algorithm widget.js runs) to show that readers
are told different things by identical answers.

Phases, each after an unmeasured warm-up (which also fills nginx's cache, as steady traffic
would), one server at a time besides nginx. First every distinct URL is asked for --prime
seconds (unmeasured): each app worker keeps the answers it made for the hour, so in steady
state it computes each URL once an hour.

1. the app alone, `GET /api/v1/appeals` over the trace's URLs;
2. the app alone, the trace's page views (version + candidates);
3. nginx in front, the same page views: target hit ratio >= 95% and >= 10x phase 2;
4. the app alone, then nginx, with `GET /api/v1/appeal` and the reader's state in the query
   (what the widget asked before, and what clients without JavaScript still ask): a URL per
   reader, nothing to share;
5. last, app and nginx stopped: a raw WSGI callable answering fixed bytes as many as the app's
   median answer (bench/bare_app.py `raw`), same granian settings: phase 1 >= 0.35x this.

Each phase also reports the servers' CPU per request (user + system time of the servers'
process groups ÷ requests): wrk shares the machine's cores, so this says what each request
costs the servers whatever the load generator takes.

Then: distinct URLs per article and placement in the trace (target <= 4), the hit ratio a
cache would have at a given page-view rate (the trace replayed against the answers' own
`s-maxage` and `stale-while-revalidate`), widget.js gzipped (target < 10 KB), and in Chromium
(Playwright, /usr/bin/chromium) the time from widget.js's start to the rendered appeal
(User Timing marks `donations:start` and `donations:rendered`) for a new reader whose appeal
answers come from nginx's cache, and straight from the app for comparison.

Progress on stderr, a table on stdout. Needs `wrk` and `nginx` (Debian packages). Exits 1 when
a phase failed or an answer was not 2xx, 3 when a target was missed. Every process it starts
is stopped and every file removed on exit.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from appeal import (  # noqa: E402  (bench/appeal.py: data, wrk and server helpers)
    DEFAULT_BLOCKING_THREADS,
    DEFAULT_WORKERS,
    LANGS,
    LUA_COMMON,
    Fixture,
    Load,
    Server,
    articles,
    free_port,
    granian_cmd,
    prepare,
    run_wrk,
    sanity,
    say,
)

from deploy.nginx.local import LocalNginx, nginx_binary  # noqa: E402
from donations.appeals.reader import Reader, decide  # noqa: E402

WIDGET = BENCH.parent / "donations" / "static" / "widget.js"
PLACEMENTS = ("epic", "banner", "gate")
TARGET_APP_VS_RAW = 0.35
TARGET_HIT_RATIO = 0.95
TARGET_CACHE_VS_APP = 10.0
TARGET_URLS_PER_ARTICLE = 4
TARGET_WIDGET_GZIP = 10 * 1024
RATES = (2, 10, 50, 200, 1000)  # page views per second, for the replayed hit ratio
URI_COMPONENT_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves alone

# GET each line of the file (a path and query), in order, each thread from its own offset;
# with args[2] == "unique" a rid of its own is appended (the legacy per-reader URL).
# Counts nginx's X-Cache-Status, for the candidates (a body longer than the version's) apart.
LUA_TRACE = r"""
function init(args)
  reset()
  hit, miss, stale, other_cache, c_hit, c_all = 0, 0, 0, 0, 0, 0
  unique = args[2] == "unique"
  salt = args[3]  -- new for every wrk run: the warm-up's URLs are not the measured ones
  paths = load_lines(args[1])
  idx = ((tid - 1) * 7919) % #paths
  n = 0
end

function request()
  idx = idx % #paths + 1
  sent = sent + 1
  if unique then
    n = n + 1
    return wrk.format("GET", paths[idx] .. "&rid=" .. salt .. "-" .. tid .. "-" .. n)
  end
  return wrk.format("GET", paths[idx])
end

function response(status, headers, body)
  count(status)
  local c = headers["X-Cache-Status"]
  local h = (c == "HIT" or c == "STALE" or c == "UPDATING" or c == "REVALIDATED")
  if c == "HIT" then hit = hit + 1
  elseif c == "MISS" or c == "EXPIRED" or c == "BYPASS" then miss = miss + 1
  elseif c == "STALE" or c == "UPDATING" or c == "REVALIDATED" then stale = stale + 1
  elseif c ~= nil then other_cache = other_cache + 1 end
  if c ~= nil and body ~= nil and #body > 100 then
    c_all = c_all + 1
    if h then c_hit = c_hit + 1 end
  end
end

function done(summary, latency, requests)
  report(summary, latency, {hit = total("hit"), miss = total("miss"), stale = total("stale"),
                            other_cache = total("other_cache"), c_hit = total("c_hit"),
                            c_all = total("c_all")})
end
"""


@dataclass
class Phase:
    label: str
    target: str  # "raw", "app" or "nginx"
    paths: str  # which path file
    unique: bool = False
    load: Load | None = None
    cpu_us: float | None = None  # the servers' CPU per request (µs)

    def ratio(self, hits: str, answered: str) -> float | None:
        if self.load is None or self.load.error or self.target != "nginx":
            return None
        c = self.load.counts
        if answered == "all":
            n = sum(c.get(k, 0) for k in ("hit", "miss", "stale", "other_cache"))
            h = c.get("hit", 0) + c.get("stale", 0)
        else:
            n, h = c.get(answered, 0), c.get(hits, 0)
        return h / n if n else None

    @property
    def hit_ratio(self) -> float | None:
        return self.ratio("", "all")

    @property
    def candidates_hit_ratio(self) -> float | None:
        return self.ratio("c_hit", "c_all")


@dataclass
class Article:
    id: str
    section: str
    tags: list[str]
    lang: str


@dataclass
class Traffic:
    articles: list[Article]
    views: list[tuple[int, int]]  # (reader, article) per page view, in order
    readers: list[dict[str, Any]]  # each reader's state, as the browser keeps it
    version: str = ""
    candidates: list[str] = field(default_factory=list)  # a page view's candidates URLs …
    page_views: list[str] = field(default_factory=list)  # … and version + candidates

    def urls(self, article: Article) -> list[str]:
        """The widget's candidates URLs for one page (widget.js `place`: fixed order, empty
        values left out, encodeURIComponent)."""
        out = []
        for placement in PLACEMENTS:
            q = [
                ("article", article.id),
                ("placement", placement),
                ("section", article.section),
                ("tags", ",".join(article.tags)),
                ("lang", article.lang),
                ("v", self.version),
            ]
            query = "&".join(k + "=" + quote(v, safe=URI_COMPONENT_SAFE) for k, v in q if v)
            out.append(f"/api/v1/appeals?{query}")
        return out


def zipf_sampler(rng: random.Random, n: int, s: float) -> Any:
    cumulative = list(itertools.accumulate(1 / (rank**s) for rank in range(1, n + 1)))
    top = cumulative[-1]
    return lambda: bisect.bisect_left(cumulative, rng.random() * top)


def make_traffic(rng: random.Random, args: argparse.Namespace, campaigns: list[str]) -> Traffic:
    """Articles, readers with varied state, and the page views that bring them together."""
    pool = [Article(a, s, t, rng.choice(LANGS)) for a, s, t in articles(rng, args.articles)]
    rng.shuffle(pool)  # popularity is not the order of creation
    now = datetime.now(UTC).replace(tzinfo=None)
    readers = []
    for _ in range(args.readers):
        reader: dict[str, Any] = {
            "rid": secrets.token_hex(16),
            "views": min(60, int(rng.expovariate(1 / 6))),
            "seen": {},
            "dismissed": {},
            "supporter": None,
        }
        for campaign in rng.sample(campaigns, k=rng.choice([0, 0, 1, 2, 3])):
            reader["seen"][campaign] = rng.randint(1, 6)
        if rng.random() < 0.12:
            ago = timedelta(days=rng.uniform(0, 40))
            reader["dismissed"][rng.choice(campaigns)] = now - ago
        if rng.random() < 0.04:
            kind = rng.choice(["recurring", "one_off"])
            reader["supporter"] = (kind, now - timedelta(days=rng.uniform(0, 200)))
        readers.append(reader)
    article_of = zipf_sampler(rng, len(pool), args.zipf)
    reader_of = zipf_sampler(rng, len(readers), 0.8)
    views = [(reader_of(), article_of()) for _ in range(args.page_views)]
    return Traffic(pool, views, readers)


def get_json(url: str) -> tuple[Any, dict[str, str], int]:
    """The answer, its headers (names lower-cased: granian sends them so) and its size."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read()
        return json.loads(body), {k.lower(): v for k, v in resp.headers.items()}, len(body)


def seconds_in(cache_control: str, name: str) -> int:
    for part in cache_control.split(","):
        key, _, value = part.strip().partition("=")
        if key == name and value.isdigit():
            return int(value)
    return 0


def decisions(
    base: str, traffic: Traffic, sample: int
) -> tuple[Counter[str], int, dict[str, tuple[int, int]], list[int]]:
    """What the sample's readers would be shown (the browser's decision, in Python), from the
    app's answers; each distinct URL's lifetimes (s-maxage, stale-while-revalidate), and the
    answers' sizes."""
    answers: dict[str, Any] = {}
    sizes: list[int] = []
    lifetimes: dict[str, tuple[int, int]] = {}
    outcome: Counter[str] = Counter()
    shown: set[tuple[str, str, str]] = set()
    now = datetime.now(UTC).replace(tzinfo=None)
    for reader_index, article_index in traffic.views[:sample]:
        state = traffic.readers[reader_index]
        sup = state["supporter"]
        reader = Reader(
            views=state["views"], rid=state["rid"], dismissed=state["dismissed"],
            seen=state["seen"], supporter_kind=sup[0] if sup else None,
            supporter_since=sup[1] if sup else None,
        )  # fmt: skip
        for url in traffic.urls(traffic.articles[article_index]):
            if url not in answers:
                answers[url], headers, size = get_json(base + url)
                sizes.append(size)
                cc = headers.get("cache-control", "")
                lifetimes[url] = (seconds_in(cc, "s-maxage") or seconds_in(cc, "max-age"),
                                  seconds_in(cc, "stale-while-revalidate"))  # fmt: skip
            choice = decide(answers[url], reader, now, explain=False)
            if choice.campaign is None:
                outcome["nothing"] += 1
            else:
                outcome["shown"] += 1
                shown.add((url, choice.campaign, str(choice.variant)))
    return outcome, len(shown), lifetimes, sizes


def replayed_hit_ratio(
    traffic: Traffic, lifetimes: dict[str, tuple[int, int]], version_life: tuple[int, int],
    rate: float, seconds: float, warm: float,
) -> float:  # fmt: skip
    """A shared cache (stale-while-revalidate as nginx does it: the first request after expiry
    gets the stale answer and refreshes it) fed `rate` page views a second; counted over
    `seconds` after `warm` seconds of the same traffic."""
    stored: dict[str, float] = {}
    hits = total = 0
    views = itertools.islice(itertools.cycle(traffic.views), int(rate * (warm + seconds)))
    pages: dict[int, list[tuple[str, tuple[int, int]]]] = {}
    for i, (_reader, article_index) in enumerate(views):
        t = i / rate
        urls = pages.get(article_index)
        if urls is None:
            urls = pages[article_index] = [("/api/v1/appeals/version", version_life)] + [
                (u, lifetimes.get(u, (60, 60)))
                for u in traffic.urls(traffic.articles[article_index])
            ]
        counted = t >= warm
        for url, (fresh, stale) in urls:
            at = stored.get(url)
            hit = at is not None and t - at < fresh + stale
            if at is not None and hit and t - at >= fresh:
                stored[url] = t  # served stale, refreshed in the background
            elif not hit:
                stored[url] = t
            if counted:
                total += 1
                hits += hit
    return hits / total if total else 0.0


def per_article_urls(traffic: Traffic) -> int:
    """The most distinct URLs any article and placement got in the trace."""
    distinct: dict[tuple[str, str], set[str]] = {}
    for _reader, article_index in traffic.views:
        article = traffic.articles[article_index]
        for placement, url in zip(PLACEMENTS, traffic.urls(article), strict=True):
            distinct.setdefault((article.id, placement), set()).add(url)
    return max(len(v) for v in distinct.values())


def browser_timings(urls: dict[str, str], runs: int) -> dict[str, Any]:
    """Median ms from widget.js's start to the first rendered appeal, per page URL, for new
    readers (a fresh browser context each run), with the X-Cache-Status of their answers."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"error": "playwright is not installed"}
    if not Path("/usr/bin/chromium").exists():
        return {"error": "no /usr/bin/chromium (apt-get install chromium)"}
    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for label, url in urls.items():
                samples: list[float] = []
                waits: list[float] = []  # start -> the last answer received
                dcl: list[float] = []  # start -> the page's DOMContentLoaded (the widget waits)
                statuses: Counter[str] = Counter()
                for i in range(runs + 1):  # the first run warms nginx's cache and is not counted
                    # the demo page's CSP forbids eval, which wait_for_function needs
                    context = browser.new_context(bypass_csp=True)
                    page = context.new_page()
                    seen: list[str] = []

                    def note(response: Any, seen: list[str] = seen) -> None:
                        if "/api/v1/appeals" in response.url:
                            seen.append(response.headers.get("x-cache-status", "none"))

                    page.on("response", note)
                    page.goto(url)
                    page.wait_for_function(
                        "performance.getEntriesByName('donations:rendered').length > 0",
                        timeout=15_000,
                    )
                    ms, fetched, loaded = page.evaluate(
                        """() => {
                          const at = (n) => performance.getEntriesByName(n)[0].startTime;
                          const ends = performance.getEntriesByType('resource')
                            .filter((e) => e.name.includes('/api/v1/appeals'))
                            .map((e) => e.responseEnd);
                          const start = at('donations:start');
                          const nav = performance.getEntriesByType('navigation')[0];
                          return [at('donations:rendered') - start, Math.max(...ends) - start,
                                  nav.domContentLoadedEventEnd - start];
                        }"""
                    )
                    context.close()
                    if i:
                        samples.append(ms)
                        waits.append(fetched)
                        dcl.append(loaded)
                        statuses.update(seen)
                samples.sort()
                out[label] = {
                    "median_ms": samples[len(samples) // 2],
                    "p90_ms": samples[int(len(samples) * 0.9) - 1 if len(samples) > 1 else 0],
                    "cache": dict(statuses),
                    "answers_ms": sorted(waits)[len(waits) // 2],
                    "dcl_ms": sorted(dcl)[len(dcl) // 2],
                }
                say(f"    {label}: median {out[label]['median_ms']:.1f} ms over {runs} new "
                    f"readers (DOMContentLoaded after {out[label]['dcl_ms']:.1f} ms, the "
                    f"answers in after {out[label]['answers_ms']:.1f} ms), "
                    f"X-Cache-Status of their answers {dict(statuses)}")  # fmt: skip
        finally:
            browser.close()
    return out


def cpu_seconds(groups: Sequence[int]) -> float:
    """CPU time (user + system) used so far by every process in these process groups (the
    servers run in sessions of their own: a server's group is its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) in groups:  # pgrp; utime and stime are fields 14 and 15 of stat
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(
    phase: Phase,
    base: str,
    script: Path,
    path_file: Path,
    args: argparse.Namespace,
    groups: Sequence[int] = (),
) -> None:
    mode = "unique" if phase.unique else "shared"
    wrk_args = [str(path_file), mode, secrets.token_hex(4)]
    run_wrk(f"{phase.label} (warm-up)", base, script, wrk_args, threads=args.threads,
            connections=args.connections, seconds=args.warmup, quiet=True)  # fmt: skip
    wrk_args[-1] = secrets.token_hex(4)
    before = cpu_seconds(groups)
    phase.load = run_wrk(phase.label, base, script, wrk_args, threads=args.threads,
                         connections=args.connections, seconds=args.duration)  # fmt: skip
    used = cpu_seconds(groups) - before
    if phase.load.requests and groups:
        phase.cpu_us = 1e6 * used / phase.load.requests
        say(f"    servers' CPU: {used:.1f} s, {phase.cpu_us:.0f} µs per request")
    if phase.hit_ratio is not None:
        c = phase.load.counts
        say(f"    cache: {c.get('hit', 0)} HIT, {c.get('stale', 0)} STALE/UPDATING, "
            f"{c.get('miss', 0)} MISS -> hit ratio {100 * phase.hit_ratio:.1f}% "
            f"(candidates alone {100 * (phase.candidates_hit_ratio or 0):.1f}%)")  # fmt: skip


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("OK" if ok else "MISSED")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase (10)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--readers", type=int, default=50_000)
    parser.add_argument("--articles", type=int, default=2_000)
    parser.add_argument("--page-views", type=int, default=200_000)
    parser.add_argument("--zipf", type=float, default=1.0, help="articles' Zipf exponent (1.0)")
    parser.add_argument("--decide-sample", type=int, default=20_000,
                        help="page views decided for in Python (20000)")  # fmt: skip
    parser.add_argument("--prime", type=float, default=8,
                        help="seconds asking every distinct URL first, unmeasured (8)")  # fmt: skip
    parser.add_argument("--browser-runs", type=int, default=15)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timing")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--blocking-threads", type=int, default=DEFAULT_BLOCKING_THREADS)
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx workers (1)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.threads < 1 or args.connections < args.threads:
        parser.error("--duration must be positive and --connections >= --threads >= 1")
    if min(args.readers, args.articles, args.page_views) < 1:
        parser.error("--readers, --articles and --page-views must be positive")
    for tool in ("wrk", "nginx"):
        if (shutil.which(tool) if tool == "wrk" else nginx_binary()) is None:
            say(f"{tool} is not installed: apt-get install {tool}")
            return 2

    signal.signal(signal.SIGTERM, _interrupt)  # unwind like Ctrl+C, so every finally runs
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="donations-nginx-bench-"))
    cleanup: list[Path] = [workdir]
    started = time.perf_counter()
    servers: list[Server] = []
    nginx: LocalNginx | None = None
    phases = [
        Phase("raw WSGI callable (fixed bytes)", "raw", "raw"),
        Phase("app alone: GET /api/v1/appeals", "app", "candidates"),
        Phase("app alone: page views", "app", "page_views"),
        Phase("nginx cache: page views", "nginx", "page_views"),
        Phase("app alone: GET /api/v1/appeal, a URL per reader", "app", "legacy", unique=True),
        Phase("nginx cache: a URL per reader", "nginx", "legacy", unique=True),
    ]
    facts: dict[str, Any] = {}
    try:
        fx: Fixture = prepare(workdir, rng, 3000)
        from appeal import campaign_documents  # the same ids prepare() stored

        live = [d["id"] for d in campaign_documents(random.Random(0), datetime.now(UTC))]
        say(f"making the traffic: {args.readers:,} readers, {args.articles:,} articles (Zipf "
            f"{args.zipf:g}), {args.page_views:,} page views")  # fmt: skip
        traffic = make_traffic(rng, args, live)
        script = workdir / "trace.lua"
        script.write_text(LUA_COMMON + LUA_TRACE)
        files = {
            name: workdir / f"{name}.txt" for name in ("raw", "candidates", "page_views", "legacy")
        }
        files["raw"].write_text("/raw\n")
        files["legacy"].write_text(
            "".join(f"/api/v1/appeal?{q}\n" for q in fx.queries.read_text().splitlines() if q)
        )

        port = free_port()
        app_base = f"http://127.0.0.1:{port}"
        app = Server("donations serve (granian)",
                     granian_cmd("donations.wsgi:app", port, args.workers, args.blocking_threads),
                     fx.env, workdir / "app.log")  # fmt: skip
        servers.append(app)
        app.start(app_base)
        version, headers, _size = get_json(app_base + "/api/v1/appeals/version")
        traffic.version = str(version["version"])
        version_cc = headers.get("cache-control", "")
        version_life = (seconds_in(version_cc, "s-maxage") or seconds_in(version_cc, "max-age"),
                        seconds_in(version_cc, "stale-while-revalidate"))  # fmt: skip
        candidates, page_views = [], []
        for _reader, article_index in traffic.views:
            urls = traffic.urls(traffic.articles[article_index])
            candidates += urls
            page_views += ["/api/v1/appeals/version", *urls]
        files["candidates"].write_text("\n".join(candidates) + "\n")
        files["page_views"].write_text("\n".join(page_views) + "\n")
        facts["distinct_urls"] = len(set(candidates))
        facts["urls_per_article"] = per_article_urls(traffic)
        say(f"  {len(page_views):,} requests, {facts['distinct_urls']:,} distinct candidates "
            f"URLs, at most {facts['urls_per_article']} per article and placement")  # fmt: skip

        say(
            f"  deciding for {min(args.decide_sample, len(traffic.views)):,} page views "
            "(the browser's algorithm, in Python)"
        )
        outcome, variety, lifetimes, sizes = decisions(app_base, traffic, args.decide_sample)
        sizes.sort()
        facts["answer_bytes"] = sizes[len(sizes) // 2]
        facts["outcome"], facts["variety"] = outcome, variety
        say(f"    {dict(outcome)}; {variety:,} distinct (URL, campaign, variant) shown")
        say(f"    lifetimes (s-maxage, stale-while-revalidate): candidates "
            f"{dict(Counter(lifetimes.values()))}, version {version_life}")  # fmt: skip
        seen = sanity(app_base, fx, "/api/v1/appeal", n=50)
        say(f"    sanity: {dict(sorted(seen.items()))} for 50 per-reader queries")

        site: dict[str, str] = {}
        if Path("/dev/shm").is_dir():  # as deploy/README recommends
            shm = Path(tempfile.mkdtemp(prefix="donations-nginx-cache-", dir="/dev/shm"))
            site["DONATIONS_CACHE_DIR"] = str(shm)
            cleanup.append(shm)
        nginx = LocalNginx(
            workdir / "nginx",
            f"127.0.0.1:{port}",
            free_port(),
            workers=args.nginx_workers,
            access_log=False,
            site_values=site,
        )
        say("  starting nginx")
        nginx.start()
        # Each worker keeps the answers it made for the hour (appeals/candidates.py): in steady
        # state it computes each URL once an hour. Prime both workers (not measured).
        say(f"\n== priming the app's answers: every distinct URL, {args.prime:g} s (not measured)")
        files["distinct"] = workdir / "distinct.txt"
        files["distinct"].write_text("\n".join(sorted(set(candidates))) + "\n")
        run_wrk("priming", app_base, script, [str(files["distinct"]), "shared", "prime"],
                threads=args.threads, connections=args.connections, seconds=args.prime)  # fmt: skip
        for phase in phases[1:]:
            say(f"\n== {phase.label}")
            base = app_base if phase.target == "app" else nginx.url
            groups = [p.pid for p in (app.proc, nginx.proc) if p is not None]
            measure(phase, base, script, files[phase.paths], args, groups)

        say("\n== the hit ratio a shared cache would have, by page-view rate (trace replayed)")
        facts["replayed"] = {}
        for rate in RATES:
            ratio = replayed_hit_ratio(traffic, lifetimes, version_life, rate, 1800, 600)
            facts["replayed"][rate] = ratio
            say(f"    {rate:>5} page views/s, 30 min after 10 min: {100 * ratio:.1f}%")

        body = WIDGET.read_bytes()
        facts["widget"] = (len(body), len(gzip.compress(body, 9)))
        if not args.no_browser:
            say("\n== Chromium: widget.js start -> rendered appeal, new readers")
            try:
                facts["browser"] = browser_timings(
                    {"nginx (cache hit)": nginx.url + "/demo/article",
                     "app alone": app_base + "/demo/article"},
                    args.browser_runs,
                )  # fmt: skip
            except Exception as exc:  # a browser problem must not cost the figures above
                facts["browser"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        nginx.stop()
        app.stop()

        # The floor, alone on the machine (besides wrk), answering as many bytes as the app.
        env = {**fx.env, "DONATIONS_RAW_BYTES": str(facts["answer_bytes"])}
        port = free_port()
        raw = Server("raw WSGI callable (granian)",
                     granian_cmd("bare_app:raw", port, args.workers, args.blocking_threads),
                     env, workdir / "raw.log")  # fmt: skip
        servers.append(raw)
        raw.start(f"http://127.0.0.1:{port}")
        say(f"\n== {phases[0].label}, {facts['answer_bytes']:,} bytes (the app's median answer)")
        groups = [raw.proc.pid] if raw.proc else []
        measure(phases[0], f"http://127.0.0.1:{port}", script, files["raw"], args, groups)
        raw.stop()
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if nginx is not None:
            nginx.stop()
        for server in servers:
            server.stop()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
    say(f"\ndone in {time.perf_counter() - started:.0f}s\n")
    text, met = table(phases, facts, args)
    print(text, flush=True)
    ok = all(p.load is not None and not p.load.error and p.load.non_2xx == 0 for p in phases)
    if not ok:
        return 1
    return 0 if met else 3


def table(phases: list[Phase], facts: dict[str, Any], args: argparse.Namespace) -> tuple[str, bool]:
    raw, candidates, app_views, cached, legacy_app, legacy_cached = phases
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                                 check=False).stdout.split()[1:2]  # fmt: skip
    nginx_version = subprocess.run([nginx_binary() or "nginx", "-v"], capture_output=True,
                                   text=True, check=False).stderr.strip()  # fmt: skip

    def rate_of(p: Phase) -> float | None:
        return None if p.load is None or p.load.error else p.load.rate

    def div(a: Phase, b: Phase) -> float | None:
        x, y = rate_of(a), rate_of(b)
        return x / y if x and y else None

    out = [
        f"appeals a cache can share: wrk {' '.join(wrk_version)} -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s per phase (after {args.warmup:g}s warm-up); "
        f"granian {args.workers}w x {args.blocking_threads} threads; {nginx_version}, "
        f"{args.nginx_workers} worker(s), cache in /dev/shm; {os.cpu_count()} CPUs shared by "
        "wrk, nginx and the server",
        f"traffic: {args.readers:,} readers, {args.articles:,} articles (Zipf {args.zipf:g}), "
        f"{args.page_views:,} page views x (version + {len(PLACEMENTS)} placements)",
        "",
        f"{'phase':<50}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'hit ratio':>11}"
        f"{'CPU µs/req':>12}{'non-2xx':>9}",
    ]
    for p in phases:
        load = p.load
        if load is None or load.error:
            out.append(f"{p.label:<50}{'ERROR':>10}  {load.error if load else ''}")
            continue
        hits = "-" if p.hit_ratio is None else f"{100 * p.hit_ratio:.1f}%"
        cpu = "-" if p.cpu_us is None else f"{p.cpu_us:.0f}"
        out.append(f"{p.label:<50}{load.rate:>10,.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}"
                   f"{hits:>11}{cpu:>12}{load.non_2xx:>9}")  # fmt: skip
    checks: list[tuple[str, str, bool | None]] = []
    r = div(candidates, raw)
    checks.append(("app alone, GET /api/v1/appeals ÷ raw WSGI",
                   "-" if r is None else f"{r:.2f}x (>= {TARGET_APP_VS_RAW}x)",
                   None if r is None else r >= TARGET_APP_VS_RAW))  # fmt: skip
    legacy = div(legacy_app, raw)
    checks.append(("app alone, GET /api/v1/appeal (per reader) ÷ raw WSGI",
                   "-" if legacy is None else f"{legacy:.2f}x (for comparison)", None))  # fmt: skip
    h = cached.hit_ratio
    ch = cached.candidates_hit_ratio
    checks.append(("nginx hit ratio, page views",
                   "-" if h is None else f"{100 * h:.1f}% (candidates alone "
                   f"{100 * (ch or 0):.1f}%; >= {100 * TARGET_HIT_RATIO:.0f}%)",
                   None if h is None else h >= TARGET_HIT_RATIO))  # fmt: skip
    x = div(cached, app_views)
    checks.append(("nginx ÷ app alone, page views",
                   "-" if x is None else f"{x:.1f}x (>= {TARGET_CACHE_VS_APP:g}x)",
                   None if x is None else x >= TARGET_CACHE_VS_APP))  # fmt: skip
    before = div(cached, legacy_app)
    checks.append(("nginx page views ÷ app alone, a URL per reader (before)",
                   "-" if before is None else f"{before:.1f}x (for comparison)", None))  # fmt: skip
    if cached.cpu_us and app_views.cpu_us:
        checks.append(("servers' CPU per page-view request: app alone ÷ nginx",
                       f"{app_views.cpu_us / cached.cpu_us:.1f}x (requests per core, wrk aside)",
                       None))  # fmt: skip
    if candidates.cpu_us and raw.cpu_us:
        checks.append(("servers' CPU per request: raw WSGI ÷ app alone (appeals)",
                       f"{raw.cpu_us / candidates.cpu_us:.2f}x", None))  # fmt: skip
    lh = legacy_cached.hit_ratio
    checks.append(("nginx hit ratio, a URL per reader",
                   "-" if lh is None else f"{100 * lh:.1f}% (for comparison)", None))  # fmt: skip
    n = facts.get("urls_per_article")
    checks.append(("distinct URLs per article and placement",
                   "-" if n is None else f"{n} of {facts['distinct_urls']:,} URLs "
                   f"(<= {TARGET_URLS_PER_ARTICLE})",
                   None if n is None else n <= TARGET_URLS_PER_ARTICLE))  # fmt: skip
    if "widget" in facts:
        size, gz = facts["widget"]
        checks.append(("widget.js", f"{size:,} bytes, {gz:,} gzipped (< {TARGET_WIDGET_GZIP:,})",
                       gz < TARGET_WIDGET_GZIP))  # fmt: skip
    outcome = facts.get("outcome")
    if outcome:
        total = sum(outcome.values())
        checks.append(("readers' decisions from shared answers (sample)",
                       f"{100 * outcome['shown'] / total:.0f}% of {total:,} placements shown "
                       f"something, {facts['variety']:,} distinct (URL, campaign, variant)",
                       None))  # fmt: skip
    for rate, ratio in (facts.get("replayed") or {}).items():
        checks.append((f"replayed hit ratio at {rate} page views/s", f"{100 * ratio:.1f}%", None))
    browser = facts.get("browser") or {}
    if "error" in browser:
        checks.append(("Chromium timing", f"skipped: {browser['error']}", None))
    for label, b in browser.items():
        if label != "error":
            value = (
                f"median {b['median_ms']:.1f} ms (DOMContentLoaded {b['dcl_ms']:.0f}, "
                f"answers {b['answers_ms']:.0f}), p90 {b['p90_ms']:.1f}"
            )
            checks.append((f"widget.js start -> rendered, {label}", value, None))
    out += ["", f"{'figure':<58}{'value':<62}verdict"]
    out += [f"{name:<58}{value:<62}{verdict(ok)}" for name, value, ok in checks]
    out += [
        "",
        "The hit ratio under wrk is the cache at full speed (every URL asked many times a",
        "minute). The replayed ratios are what a cache would see at a newsroom's real rate: a",
        "URL's first request after its s-maxage + stale-while-revalidate is a miss.",
    ]
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        out.append(f"note: 1-minute load average {os.getloadavg()[0]:.1f} at the end: contended")
    met = all(ok is not False for _n, _v, ok in checks)
    return "\n".join(out), met


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
