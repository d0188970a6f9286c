"""Reader-facing hot paths under load: `GET /api/v1/appeal` against a bare Flask endpoint,
and `POST /api/v1/events`, served by granian as `donations serve` serves them.

    python bench/appeal.py [--duration 15] [--threads 2] [--connections 32]
                           [--gunicorn sync|gthread|none]

In one run, on the same server configuration (granian, 2 workers x 4 blocking threads):

1. serves `bench/bare_app.py` (`GET /bare`: a fixed appeal-sized dict through `jsonify`) and
   loads it with wrk, using the same request lines as the appeal phase;
2. creates a temporary SQLite database (migrations, then ~20 campaign documents with varied
   targeting, 2-3 variants each, some goals), serves `donations.wsgi:app` on it and loads
   `GET /api/v1/appeal` with wrk cycling through a few thousand pre-generated, varied reader
   queries (articles, sections, tags, countries, languages, views, rid, dismissed/seen state,
   a few signed supporter tokens); a Lua `response()` counts 200, 204 and anything else;
3. loads `POST /api/v1/events` (batches of 20 events, `text/plain` as sendBeacon sends them,
   each event with the impression token its appeal would carry, each request from another
   client address through `X-Forwarded-For` with TRUSTED_PROXIES=1, as behind nginx, so the
   per-client limits let them count) on the same server; near the end each wrk connection
   switches to `GET /healthz`, so no event batch is in flight when wrk stops and every batch
   sent has its answer; then waits for the in-process flush, stops the server gracefully and
   checks that `event_counts` holds exactly the events the answers said were counted
   (`accepted`);
4. optionally repeats 1 and 2 under gunicorn (not a project dependency) to compare servers.

Progress goes to stderr; the final table goes to stdout. Every server it starts is stopped
and every file it creates is removed on exit. Needs `wrk` (Debian package `wrk`). Exits 1
when an answer was not 2xx, a phase failed or the event counts do not match; a ratio below
the 0.9 target is reported (BELOW) but is not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import text

from donations import migrate, supporters
from donations.appeals.impressions import ImpressionTokens
from donations.cli import DEFAULT_BLOCKING_THREADS, DEFAULT_WORKERS
from donations.db import Database

BENCH = Path(__file__).resolve().parent
BATCH = 20  # events per POST /api/v1/events
TARGET_RATIO = 0.9
STOP_TIMEOUT = 20.0  # seconds a server gets to exit after SIGINT/SIGTERM


# --- small helpers ----------------------------------------------------------------------------
def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- realistic data ---------------------------------------------------------------------------
SECTIONS = [
    "politics", "world", "business", "climate", "science", "culture",
    "sport", "opinion", "technology", "health", "local", "education",
]  # fmt: skip
TAGS = [
    "elections", "budget", "ukraine", "middle-east", "ai", "football", "housing", "energy",
    "education", "immigration", "trade", "courts", "music", "film", "wildfires", "oceans",
    "vaccines", "startups", "tennis", "books", "transport", "water", "china", "eu",
]  # fmt: skip
COUNTRIES = (
    ["US"] * 30 + ["GB"] * 14 + ["DE"] * 6 + ["FR"] * 5 + ["CA"] * 6 + ["AU"] * 5
    + ["IE"] * 2 + ["NL"] * 2 + ["ES"] * 3 + ["IT"] * 2 + ["IN"] * 5 + ["BR"] * 3
    + ["MX"] * 2 + ["JP"] * 1 + ["ZA"] * 1 + ["NG"] * 1 + ["SE"] * 1 + ["NZ"] * 1
)  # fmt: skip
LANGS = ["en"] * 20 + ["de"] * 2 + ["fr"] * 2 + ["es"] * 2 + ["pt-br", "it", "en-gb", "nl"]

PARAGRAPHS = [
    "We have no billionaire owner and no shareholders. Our journalism is funded by readers "
    "who believe that reliable reporting should be free for everyone to read.",
    "This year our reporters covered {topic} from the ground, asked hard questions of the "
    "powerful and followed stories long after others moved on.",
    "If you value what you read here, <strong>please support us today</strong>. Every "
    "contribution, however big or small, keeps us independent.",
    "<em>It takes less than a minute</em>, and you can cancel a monthly gift at any time. "
    'Read <a href="https://news.example.org/about/funding">how we are funded</a>.',
    "More people than ever are reading our reporting on {topic}, but fewer than one in a "
    "hundred readers pay for it. Will you be one of them?",
]
HEADINGS = [
    "Independent journalism needs you",
    "Before you go: can you help?",
    "Facts are under pressure. Support them",
    "Our reporting on {topic} is funded by readers",
    "You have read {n} articles this month",
    "Help us reach our goal before the deadline",
]


def _body(rng: random.Random, topic: str) -> str:
    paras = rng.sample(PARAGRAPHS, k=rng.randint(2, 4))
    return "".join(f"<p>{p.format(topic=topic)}</p>" for p in paras)


def _amounts(rng: random.Random, currencies: Sequence[str]) -> dict[str, Any]:
    out = {}
    for cur in currencies:
        scale = rng.choice([1, 1, 2])
        out[cur] = {
            "one_off": [500 * scale, 1000 * scale, 2500 * scale, 5000 * scale][: rng.randint(3, 4)],
            "monthly": [300 * scale, 500 * scale, 1000 * scale],
            "annual": [5000 * scale, 10000 * scale],
        }
    return out


def campaign_documents(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """~20 campaign documents, shaped as editors write them (API.md, "Campaign document")."""

    def ts(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    specs: list[dict[str, Any]] = [
        dict(id="year-end-2026", prio=10, placements=["epic", "banner"], goal=5_000_000),
        dict(id="elections-2026", prio=30, tags=["elections", "courts"], min=3, goal=750_000),
        dict(id="climate-fund", prio=20, sections=["climate", "science"], goal=250_000),
        dict(id="uk-readers", prio=15, countries=["GB"], currencies=["gbp", "usd"]),
        dict(
            id="europe-readers",
            prio=14,
            countries=["DE", "FR", "IE", "NL", "ES", "IT"],
            languages=["de", "fr", "es", "it", "en", "nl"],
            currencies=["eur", "usd"],
        ),
        dict(id="loyal-readers", prio=25, placements=["epic", "banner"], min=20),
        dict(id="new-readers", prio=5, placements=["banner"], max=2),
        dict(id="gate-default", prio=10, placements=["gate"], min=5),
        dict(id="sport-fans", prio=12, sections=["sport"], tags_out=["courts"]),
        dict(id="not-opinion", prio=8, sections_out=["opinion", "sport"], countries=["US", "CA"]),
        dict(id="ai-reporting", prio=18, tags=["ai", "startups"], countries_out=["CN"]),
        dict(id="spanish-language", prio=19, languages=["es", "pt"], currencies=["usd", "eur"]),
        dict(id="spring-drive", prio=40, status="paused"),
        dict(id="giving-tuesday", prio=50, status="draft", goal=100_000),
        dict(id="summer-2026", prio=45, status="ended"),
        dict(id="autumn-sprint", prio=35, ends=now - timedelta(days=20)),
        dict(id="new-year-2027", prio=60, starts=now + timedelta(days=30), goal=2_000_000),
        dict(id="housing-holdback", prio=22, tags=["housing", "energy"], holdback=0.2),
        dict(id="local-news", prio=16, sections=["local", "education"], countries=["US"]),
        dict(id="culture-club", prio=13, sections=["culture"], languages=["en", "fr"]),
        dict(id="evergreen", prio=0, placements=["epic"], countries_out=["JP", "NG"]),
    ]
    docs = []
    for spec in specs:
        topic = spec.get("sections", spec.get("tags", ["the world"]))[0]
        currencies = spec.get("currencies", ["usd", "gbp"] if rng.random() < 0.4 else ["usd"])
        variants = []
        for k, vid in enumerate(["control", "urgency", "story"][: rng.choice([2, 2, 3])]):
            variant: dict[str, Any] = {
                "id": vid,
                "weight": rng.choice([1, 1, 2]) if k else 2,
                "heading": rng.choice(HEADINGS).format(topic=topic, n="several"),
                "body_html": _body(rng, topic),
                "cta_label": rng.choice(["Contribute today", "Support us", "Give monthly"]),
                "default_frequency": rng.choice(["monthly", "one_off", "annual", "monthly"]),
                "amounts": _amounts(rng, currencies),
            }
            if "de" in spec.get("languages", []) or rng.random() < 0.25:
                variant["translations"] = {
                    "de": {"heading": "Unabhängiger Journalismus braucht Sie",
                           "cta_label": "Jetzt unterstützen"},
                    "fr": {"heading": "Le journalisme indépendant a besoin de vous",
                           "body_html": "<p>Soutenez-nous <strong>aujourd'hui</strong>.</p>"},
                    "es": {"heading": "El periodismo independiente te necesita"},
                }  # fmt: skip
            variants.append(variant)
        starts = spec.get("starts", now - timedelta(days=rng.randint(5, 60)))
        doc: dict[str, Any] = {
            "id": spec["id"],
            "name": spec["id"].replace("-", " ").capitalize(),
            "status": spec.get("status", "live"),
            "placements": spec.get("placements", ["epic", "banner"]),
            "priority": spec["prio"],
            "starts_at": ts(starts),
            "ends_at": ts(spec["ends"]) if "ends" in spec else ts(now + timedelta(days=90)),
            "targeting": {
                "sections": {
                    "include": spec.get("sections", []),
                    "exclude": spec.get("sections_out", []),
                },
                "tags": {"include": spec.get("tags", []), "exclude": spec.get("tags_out", [])},
                "countries": {
                    "include": spec.get("countries", []),
                    "exclude": spec.get("countries_out", []),
                },
                "languages": spec.get("languages", []),
                "articles_read": {"min": spec.get("min", 0), "max": spec.get("max")},
            },
            "frequency": {
                "max_impressions": rng.choice([3, 4, 5, 8]),
                "per_days": 30,
                "after_dismiss_days": rng.choice([7, 14, 30]),
            },
            "goal": {"amount": spec["goal"], "currency": "usd"} if "goal" in spec else None,
            "holdback": spec.get("holdback", 0.0),
            "variants": variants,
        }
        if spec["id"] == "evergreen":
            doc["ends_at"] = None
        docs.append(doc)
    return docs


def articles(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    """(article id, section, tags) of n articles."""
    out = []
    for i in range(n):
        section = rng.choice(SECTIONS)
        tags = rng.sample(TAGS, k=rng.choice([0, 1, 2, 2, 3, 4]))
        day = datetime(2026, 11, 1) + timedelta(days=rng.randint(0, 40))
        slug = "-".join(rng.sample(["budget", "vote", "storm", "court", "team", "plan", "rise",
                                    "talks", "report", "city", "new", "data"], k=3))  # fmt: skip
        out.append((f"{day:%Y/%m/%d}/{section}/{slug}-{1000 + i}", section, tags))
    return out


def appeal_queries(
    rng: random.Random, n: int, pool: Sequence[tuple[str, str, list[str]]], tokens: Sequence[str]
) -> list[str]:
    """n query strings as the widget sends them, for many readers on many articles."""
    live_ids = [
        "year-end-2026", "elections-2026", "climate-fund", "uk-readers", "europe-readers",
        "loyal-readers", "new-readers", "sport-fans", "not-opinion", "ai-reporting",
        "evergreen", "local-news",
    ]  # fmt: skip
    now = datetime.now(UTC)
    out = []
    for _ in range(n):
        article, section, tags = rng.choice(pool)
        q: dict[str, Any] = {"article": article}
        roll = rng.random()
        q["placement"] = "epic" if roll < 0.7 else ("banner" if roll < 0.95 else "gate")
        if rng.random() < 0.95:
            q["section"] = section
        if tags:
            q["tags"] = ",".join(tags)
        if rng.random() < 0.85:
            q["lang"] = rng.choice(LANGS)
        if rng.random() < 0.9:
            q["country"] = rng.choice(COUNTRIES)
        if rng.random() < 0.5:
            q["url"] = f"https://news.example.org/{article}"
        q["views"] = min(40, int(rng.expovariate(1 / 8)))
        if rng.random() < 0.9:
            q["rid"] = secrets.token_urlsafe(12)
        if rng.random() < 0.15:
            q["dismissed"] = ",".join(rng.sample(live_ids, k=rng.randint(1, 3)))
            if rng.random() < 0.8:
                ago = timedelta(days=rng.randint(0, 40), seconds=rng.randint(0, 86_399))
                q["last_dismissed"] = (now - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
        if rng.random() < 0.3:
            q["seen"] = ",".join(
                f"{c}:{rng.randint(0, 7)}" for c in rng.sample(live_ids, k=rng.randint(1, 4))
            )
        if rng.random() < 0.03:
            q["supporter"] = rng.choice(tokens)
        out.append(urlencode(q))
    return out


def event_bodies(
    rng: random.Random,
    n: int,
    docs: Sequence[dict[str, Any]],
    pool: Sequence[tuple],
    secret: str,
) -> list[str]:
    """n JSON bodies of BATCH events each (impressions mostly, as a widget sends them), each
    event with the impression token the service signs for its appeal."""
    live = [d for d in docs if d["status"] == "live"]
    kinds = ["impression"] * 6 + ["view"] * 4 + ["click", "dismiss"]
    tokens = ImpressionTokens(secret)
    now = time.time()
    out = []
    for _ in range(n):
        events = []
        for _ in range(BATCH):
            doc = rng.choice(live)
            variant = rng.choice(doc["variants"])["id"]
            placement = rng.choice(doc["placements"])
            article = rng.choice(pool)[0]
            events.append(
                {
                    "type": rng.choice(kinds),
                    "impression": tokens.issue(doc["id"], variant, placement, article, now=now),
                    "campaign": doc["id"],
                    "variant": variant,
                    "placement": placement,
                    "article": article,
                }
            )
        out.append(json.dumps({"events": events}, separators=(",", ":")))
    return out


# --- wrk --------------------------------------------------------------------------------------
LUA_COMMON = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local function load_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if #line > 0 then lines[#lines + 1] = line end
  end
  return lines
end

local function total(name)
  local sum = 0
  for _, t in ipairs(threads) do sum = sum + (t:get(name) or 0) end
  return sum
end

local function report(summary, latency, extra)
  local e = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"p50_us":%d', latency:percentile(50)),
    string.format('"p99_us":%d', latency:percentile(99)),
    string.format('"connect_errors":%d', e.connect),
    string.format('"read_errors":%d', e.read),
    string.format('"write_errors":%d', e.write),
    string.format('"timeouts":%d', e.timeout),
    string.format('"status_errors":%d', e.status),
  }
  for _, name in ipairs({"s200", "s202", "s204", "s2xx", "other", "sent", "sent_events",
                         "accepted"}) do
    parts[#parts + 1] = string.format('"%s":%d', name, total(name))
  end
  for k, v in pairs(extra or {}) do
    parts[#parts + 1] = string.format('"%s":%.6f', k, v)
  end
  io.write("BENCH_RESULT {" .. table.concat(parts, ",") .. "}\n")
end

local function count(status)
  if status == 200 then s200 = s200 + 1
  elseif status == 202 then s202 = s202 + 1
  elseif status == 204 then s204 = s204 + 1
  elseif status >= 200 and status < 300 then s2xx = s2xx + 1
  else other = other + 1 end
end

local function reset()
  s200, s202, s204, s2xx, other, sent, sent_events, accepted = 0, 0, 0, 0, 0, 0, 0, 0
  -- wrk 4 calls request() once on the first thread's state, right after init(), to check
  -- the request; that request is never sent.
  if tid == 1 then sent, sent_events = -1, -1 end
end
"""

# GET <prefix><query>, cycling through the query file (each thread from its own offset).
LUA_GET = r"""
function init(args)
  reset()
  local prefix = args[2]
  paths = {}
  for i, q in ipairs(load_lines(args[1])) do paths[i] = prefix .. q end
  idx = ((tid - 1) * 997) % #paths
end

function request()
  idx = idx % #paths + 1
  sent = sent + 1
  return wrk.format("GET", paths[idx])
end

function response(status, headers, body)
  count(status)
end

function done(summary, latency, requests)
  report(summary, latency)
end
"""

# POST batches until `window` seconds after the start, then GET /healthz until wrk stops, so
# that no batch is in flight when wrk cuts its connections: every batch sent is answered.
LUA_EVENTS = r"""
function init(args)
  reset()
  bodies = load_lines(args[1])
  window = tonumber(args[2])
  idx = ((tid - 1) * 97) % #bodies
  started = now()
  deadline = started + window
  last_event = started
  events_open = true
  clients = 0
end

-- Every batch from another reader: 10.x.y.z, unique per thread (TRUSTED_PROXIES=1).
local function client()
  clients = clients + 1
  local n = tid * 2097152 + clients
  return string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256,
                       n % 256)
end

function request()
  sent = sent + 1
  if events_open and now() < deadline then
    idx = idx % #bodies + 1
    sent_events = sent_events + 1
    return wrk.format("POST", "/api/v1/events", {["Content-Type"] = "text/plain;charset=UTF-8",
                      ["X-Forwarded-For"] = client()}, bodies[idx])
  end
  events_open = false
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  count(status)
  if status == 202 then
    last_event = now()
    accepted = accepted + (tonumber(string.match(body or "", '"accepted":%s*(%d+)')) or 0)
  end
end

function done(summary, latency, requests)
  local first, last = math.huge, 0
  for _, t in ipairs(threads) do
    first = math.min(first, t:get("started"))
    last = math.max(last, t:get("last_event"))
  end
  report(summary, latency, {events_seconds = last - first})
end
"""


@dataclass
class Load:
    """What one wrk run measured."""

    label: str
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    counts: dict[str, int] = field(default_factory=dict)
    events_seconds: float = 0.0
    error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    @property
    def socket_errors(self) -> int:
        c = self.counts
        return sum(c.get(k, 0) for k in ("connect_errors", "read_errors", "write_errors"))

    @property
    def non_2xx(self) -> int:
        return self.counts.get("other", 0)


def run_wrk(
    label: str,
    base: str,
    script: Path,
    args: Sequence[str],
    *,
    threads: int,
    connections: int,
    seconds: float,
    quiet: bool = False,
) -> Load:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base,
        "--",
        *args,
    ]
    if not quiet:
        say(f"    wrk -t{threads} -c{connections} -d{seconds:g}s: {label}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    load = Load(label)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        load.error = f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}"
        say(f"    {label}: {load.error}")
        return load
    data = json.loads(line.split(" ", 1)[1])
    load.counts = {k: int(v) for k, v in data.items() if k != "events_seconds"}
    load.requests = int(data["requests"])
    load.seconds = data["duration_us"] / 1e6
    load.p50_ms = data["p50_us"] / 1000
    load.p99_ms = data["p99_us"] / 1000
    load.events_seconds = float(data.get("events_seconds", 0.0))
    if not quiet:
        say(
            f"    {label}: {load.rate:,.0f} req/s, p50 {load.p50_ms:.2f} ms, "
            f"p99 {load.p99_ms:.2f} ms, 200={load.counts['s200']} 202={load.counts['s202']} "
            f"204={load.counts['s204']} other={load.counts['other']}, "
            f"socket errors {load.socket_errors}, timeouts {load.counts['timeouts']}"
        )
    return load


# --- servers ----------------------------------------------------------------------------------
class Server:
    """One WSGI server process (its own process group), stopped gracefully, then killed."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.env, self.log_path = name, cmd, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.graceful = False

    def start(self, base: str) -> None:
        say(f"  starting {self.name}")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=str(BENCH),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), 0.5):
                return True

        try:
            wait_until(up, 30, f"{self.name} to listen")
        except Exception:
            self.stop()
            say(self.tail())
            raise

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Ask the server to stop (its workers flush what they buffered), then insist."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                self.exit_code = proc.wait(timeout=STOP_TIMEOUT)
                self.graceful = True
            except subprocess.TimeoutExpired:
                say(f"  {self.name} did not exit within {STOP_TIMEOUT:.0f}s: killing it")
        # The process group: workers the master left behind, or all of it after a timeout.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def granian_cmd(target: str, port: int, workers: int, threads: int) -> list[str]:
    # Exactly what `donations serve` runs (donations.cli._granian_args), on another target.
    return [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--blocking-threads", str(threads),
        target,
    ]  # fmt: skip


def gunicorn_cmd(target: str, port: int, workers: int, kind: str, threads: int) -> list[str]:
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    if kind == "gthread":
        cmd += ["-k", "gthread", "--threads", str(threads)]
    return [*cmd, "--graceful-timeout", "10", target]


# --- the run ----------------------------------------------------------------------------------
@dataclass
class ServerResult:
    name: str
    bare: Load | None = None
    appeal: Load | None = None
    events: Load | None = None
    check: str = ""
    check_ok: bool | None = None
    notes: list[str] = field(default_factory=list)
    events_before: int = 0  # in event_counts before the events phase
    events_expected: int = 0  # events the answers said were counted
    events_in_flight: int = 0  # batches sent but unanswered when wrk stopped
    events_flushed: int = 0  # stored before the server was stopped


@dataclass
class Fixture:
    workdir: Path
    url: str
    env: dict[str, str]
    queries: Path
    bodies: Path
    get_lua: Path
    events_lua: Path


def prepare(workdir: Path, rng: random.Random, n_queries: int) -> Fixture:
    instance = workdir / "instance"
    instance.mkdir()
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    secret = secrets.token_hex(32)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DONATIONS_INSTANCE_PATH": str(instance),
        "SECRET_KEY": secret,
        "DONATIONS_ENV": "development",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p
        ),
        "PYTHONUNBUFFERED": "1",
        # As behind nginx: the events phase speaks for many readers through X-Forwarded-For.
        "TRUSTED_PROXIES": "1",
    }
    for key in ("REDIS_URL", "DONATIONS_COUNTRY_HEADER"):  # in-process counting, explicit country
        env.pop(key, None)

    say(f"creating the database and campaigns at {url}")
    migrate.upgrade(url)
    from donations.appeals.campaigns import save_campaign
    from donations.appeals.documents import CampaignDocument

    docs = campaign_documents(rng, datetime.now(UTC).replace(tzinfo=None))
    database = Database(url)
    try:
        with database.transaction() as session:
            for raw in docs:
                save_campaign(session, CampaignDocument().load(raw))
    finally:
        database.dispose()
    live = sum(d["status"] == "live" for d in docs)
    say(f"  {len(docs)} campaigns ({live} live), {sum(len(d['variants']) for d in docs)} variants")

    tokens = [supporters.issue(secret, kind) for kind in ("recurring", "one_off") * 3]
    tokens.append(supporters.issue("some-other-key", "recurring"))  # forged: counts as none
    pool = articles(rng, 600)
    queries = workdir / "queries.txt"
    queries.write_text("\n".join(appeal_queries(rng, n_queries, pool, tokens)) + "\n")
    bodies = workdir / "events.txt"
    bodies.write_text("\n".join(event_bodies(rng, 400, docs, pool, secret)) + "\n")
    get_lua = workdir / "get.lua"
    get_lua.write_text(LUA_COMMON + LUA_GET)
    events_lua = workdir / "events.lua"
    events_lua.write_text(LUA_COMMON + LUA_EVENTS)
    say(f"  {n_queries} reader queries, 400 event batches of {BATCH}")
    return Fixture(workdir, url, env, queries, bodies, get_lua, events_lua)


def event_total(url: str) -> int:
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            total = conn.execute(text("SELECT coalesce(sum(count), 0) FROM event_counts"))
            return int(total.scalar_one())
    finally:
        database.dispose()


def sanity(base: str, fx: Fixture, path: str, n: int = 300) -> Counter[int]:
    """Every query answers 2xx before we load it (a 422 would make the numbers meaningless)."""
    seen: Counter[int] = Counter()
    for q in fx.queries.read_text().splitlines()[:n]:
        status, body = http("GET", f"{base}{path}?{q}")
        seen[status] += 1
        if not 200 <= status < 300:
            raise RuntimeError(f"GET {path}?{q} answered {status}: {body[:300]!r}")
    return seen


load_seen: list[float] = []  # 1-minute load average before each measured phase


def measure_get(label: str, base: str, path: str, fx: Fixture, args: argparse.Namespace) -> Load:
    load_seen.append(os.getloadavg()[0])
    wrk_args = [str(fx.queries), f"{path}?"]
    run_wrk(f"{label} (warm-up)", base, fx.get_lua, wrk_args, threads=args.threads,
            connections=args.connections, seconds=args.warmup, quiet=True)  # fmt: skip
    return run_wrk(label, base, fx.get_lua, wrk_args, threads=args.threads,
                   connections=args.connections, seconds=args.duration)  # fmt: skip


def run_server_kind(kind: str, fx: Fixture, args: argparse.Namespace) -> ServerResult:
    if kind == "granian":
        name = f"granian {args.workers}w x {args.blocking_threads} blocking threads"

        def cmd(target: str, port: int) -> list[str]:
            return granian_cmd(target, port, args.workers, args.blocking_threads)
    else:
        extra = f" x {args.blocking_threads} threads" if kind == "gthread" else " (sync)"
        name = f"gunicorn {args.workers}w{extra}"

        def cmd(target: str, port: int) -> list[str]:
            return gunicorn_cmd(target, port, args.workers, kind, args.blocking_threads)

    result = ServerResult(name)
    say(f"\n== {name}")

    # 1. the bare Flask endpoint
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = Server(f"{name}: bare_app:app", cmd("bare_app:app", port), fx.env,
                    fx.workdir / f"{kind}-bare.log")  # fmt: skip
    try:
        server.start(base)
        sanity(base, fx, "/bare", n=20)
        result.bare = measure_get("GET /bare", base, "/bare", fx, args)
    finally:
        server.stop()

    # 2. the real app
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = Server(f"{name}: donations.wsgi:app", cmd("donations.wsgi:app", port), fx.env,
                    fx.workdir / f"{kind}-app.log")  # fmt: skip
    stop_signal = signal.SIGINT if kind == "granian" else signal.SIGTERM
    try:
        server.start(base)
        seen = sanity(base, fx, "/api/v1/appeal")
        say(f"    sanity: {dict(sorted(seen.items()))} for the first 300 queries")
        result.appeal = measure_get("GET /api/v1/appeal", base, "/api/v1/appeal", fx, args)
        if kind == "granian" and not args.no_events:
            run_events(base, fx, args, result)
            server.stop(stop_signal)
            finish_events_check(fx, result, server)
    finally:
        server.stop(stop_signal)
        if server.exit_code not in (None, 0) and kind == "granian":
            result.notes.append(f"server exited with {server.exit_code}")
    return result


def run_events(base: str, fx: Fixture, args: argparse.Namespace, result: ServerResult) -> None:
    before = event_total(fx.url)
    # Warm the events path (and each worker's flush thread) with a few known batches.
    bodies = fx.bodies.read_text().splitlines()
    warm_ok = 0
    for i, body in enumerate(bodies[: 4 * args.workers]):
        status, answer = http("POST", f"{base}/api/v1/events", body.encode(),
                              {"Content-Type": "text/plain;charset=UTF-8",
                               "X-Forwarded-For": f"10.255.0.{i}"})  # fmt: skip
        warm_ok += json.loads(answer)["accepted"] if status == 202 else 0
    window = args.duration
    load_seen.append(os.getloadavg()[0])
    load = run_wrk(
        f"POST /api/v1/events, {BATCH} per batch (then /healthz for the last "
        f"{args.events_tail:g}s)",
        base,
        fx.events_lua,
        [str(fx.bodies), f"{window:g}"],
        threads=args.threads,
        connections=args.connections,
        seconds=window + args.events_tail,
    )
    result.events = load
    accepted = load.counts.get("accepted", 0) + warm_ok
    in_flight = load.counts.get("sent_events", 0) - load.counts.get("s202", 0)
    result.events_expected = accepted
    result.events_before = before
    result.events_in_flight = in_flight
    say(f"    waiting {args.flush_wait:g}s for the in-process flush (every 2 s)")
    time.sleep(args.flush_wait)
    flushed = event_total(fx.url) - before
    result.events_flushed = flushed
    say(f"    event_counts after the flush wait: {flushed} of {accepted} accepted")


def finish_events_check(fx: Fixture, result: ServerResult, server: Server) -> None:
    expected = result.events_expected
    stored = event_total(fx.url) - result.events_before
    in_flight = result.events_in_flight
    flushed = result.events_flushed
    result.check_ok = stored == expected
    if in_flight:
        result.notes.append(
            f"{in_flight} event batches were still unanswered when wrk stopped: they may "
            "have been counted without wrk seeing the 202 (lengthen --events-tail)"
        )
    how = "gracefully" if server.graceful else "after a kill"
    result.check = (
        f"{'OK' if result.check_ok else 'MISMATCH'}: event_counts holds {stored:,} events, "
        f"{expected:,} were answered counted ({flushed:,} stored before the server stopped, "
        f"{stored - flushed:,} at exit; server stopped {how}, exit code {server.exit_code}; "
        f"{in_flight} batches unanswered when wrk stopped)"
    )
    say(f"    check: {result.check}")


# --- report -----------------------------------------------------------------------------------
def table(results: list[ServerResult], args: argparse.Namespace) -> str:
    def rate(load: Load | None) -> str:
        if load is None:
            return "-"
        return "ERROR" if load.error else f"{load.rate:,.0f} req/s"

    def lat(load: Load | None) -> str:
        if load is None or load.error:
            return "-"
        return f"{load.p50_ms:,.2f} / {load.p99_ms:,.2f}"

    def ratio(r: ServerResult) -> str:
        if not r.bare or not r.appeal or r.bare.error or r.appeal.error:
            return "-"
        value = r.appeal.rate / r.bare.rate
        return f"{value:.3f} ({'OK' if value >= TARGET_RATIO else 'BELOW'} {TARGET_RATIO})"

    def shares(r: ServerResult) -> str:
        a = r.appeal
        if a is None or a.error:
            return "-"
        total = max(1, a.requests)
        return f"{100 * a.counts['s200'] / total:.1f}% / {100 * a.counts['s204'] / total:.1f}%"

    def errors(load: Load | None) -> str:
        if load is None or load.error:
            return "-"
        return f"{load.non_2xx} / {load.socket_errors + load.counts.get('timeouts', 0)}"

    def ev_rate(r: ServerResult) -> str:
        e = r.events
        if e is None or e.error or not e.events_seconds:
            return "-"
        return f"{e.counts['s202'] / e.events_seconds:,.0f} req/s"

    def absorbed(r: ServerResult) -> str:
        e = r.events
        if e is None or e.error or not e.events_seconds or not r.appeal:
            return "-"
        value = e.counts.get("accepted", 0) / e.events_seconds
        verdict = "OK" if value >= r.appeal.rate else "BELOW"
        return f"{value:,.0f}/s ({verdict} >= appeal)"

    rows: list[tuple[str, Callable[[ServerResult], str]]] = [
        ("bare GET /bare", lambda r: rate(r.bare)),
        ("    p50 / p99 ms", lambda r: lat(r.bare)),
        ("    non-2xx / socket errors", lambda r: errors(r.bare)),
        ("GET /api/v1/appeal", lambda r: rate(r.appeal)),
        ("    p50 / p99 ms", lambda r: lat(r.appeal)),
        ("    200 / 204 share", shares),
        ("    non-2xx / socket errors", lambda r: errors(r.appeal)),
        ("appeal ÷ bare", ratio),
        (f"POST /api/v1/events ({BATCH}/batch)", ev_rate),
        ("    events absorbed", absorbed),
        ("    non-2xx / socket errors", lambda r: errors(r.events) if r.events else "-"),
        ("    event_counts check", lambda r: r.check.split(":")[0] if r.check else "-"),
    ]
    first = max(len(label) for label, _ in rows) + 2
    width = max([26, *(len(get(r)) + 2 for r in results for _, get in rows),
                 *(len(r.name) + 2 for r in results)])  # fmt: skip
    versions = [f"Python {platform.python_version()}", f"granian {metadata.version('granian')}",
                f"Flask {metadata.version('flask')}"]  # fmt: skip
    with contextlib.suppress(metadata.PackageNotFoundError):
        if any(r.name.startswith("gunicorn") for r in results):
            versions.append(f"gunicorn {metadata.version('gunicorn')}")
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                                 check=False).stdout.split()[1:2]  # fmt: skip
    out = [
        f"donations appeal benchmark: wrk {' '.join(wrk_version)} -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s per phase (after {args.warmup:g}s warm-up), "
        f"{args.queries} distinct reader queries, {os.cpu_count()} CPUs shared by wrk and "
        f"the server",
        ", ".join(versions) + "; SQLite, ~20 campaigns",
        "",
        " " * first + "".join(r.name.ljust(width) for r in results),
    ]
    out += [label.ljust(first) + "".join(get(r).ljust(width) for r in results)
            for label, get in rows]  # fmt: skip
    out.append("")
    if load_seen and max(load_seen) > 0.5 * (os.cpu_count() or 1):
        out.append(
            f"note: the machine was busy (1-minute load average up to {max(load_seen):.1f} on "
            f"{os.cpu_count()} CPUs before the phases): absolute figures are contended; the "
            "ratios, measured side by side, hold up better"
        )
    out += [f"{r.name}: {r.check}" for r in results if r.check]
    out += [f"{r.name}: note: {note}" for r in results for note in r.notes]
    for r in results:
        for load in (r.bare, r.appeal, r.events):
            if load is not None and load.error:
                out.append(f"{r.name}: {load.label}: {load.error}")
    return "\n".join(line.rstrip() for line in out)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per phase (15)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--queries", type=int, default=3000, help="distinct queries (3000)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--blocking-threads", type=int, default=DEFAULT_BLOCKING_THREADS)
    parser.add_argument(
        "--gunicorn",
        choices=["sync", "gthread", "both", "none"],
        default="sync",
        help="also measure bare and appeal under gunicorn (sync workers by default)",
    )
    parser.add_argument("--no-events", action="store_true", help="skip the events phase")
    parser.add_argument("--events-tail", type=float, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--flush-wait", type=float, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.threads < 1 or args.connections < args.threads:
        parser.error("--duration must be positive and --connections >= --threads >= 1")
    if shutil.which("wrk") is None:
        say("wrk is not installed: apt-get install wrk")
        return 2
    kinds = ["granian"]
    if args.gunicorn != "none":
        try:
            metadata.version("gunicorn")
        except metadata.PackageNotFoundError:
            say("gunicorn is not installed (pip install gunicorn): skipping it")
        else:
            kinds += ["sync", "gthread"] if args.gunicorn == "both" else [args.gunicorn]

    signal.signal(signal.SIGTERM, _interrupt)  # unwind like Ctrl+C, so every finally runs
    workdir = Path(tempfile.mkdtemp(prefix="donations-appeal-bench-"))
    results: list[ServerResult] = []
    started = time.perf_counter()
    try:
        fx = prepare(workdir, random.Random(args.seed), args.queries)
        for kind in kinds:
            try:
                results.append(run_server_kind(kind, fx, args))
            except Exception as exc:  # report it, and still run the other servers
                import traceback

                say(traceback.format_exc())
                results.append(ServerResult(kind, check=f"ERROR: {type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"\ndone in {time.perf_counter() - started:.0f}s\n")
    print(table(results, args), flush=True)
    granian = results[0] if results else None
    ok = (
        granian is not None
        and granian.check_ok is not False
        and all(
            load is not None and not load.error and load.non_2xx == 0
            for load in (granian.bare, granian.appeal)
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
