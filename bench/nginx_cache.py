"""`GET /api/v1/appeal` straight from the app against the same requests through nginx with
deploy/nginx/donations.conf (the cache), in one run.

    python bench/nginx_cache.py [--duration 10] [--urls 300] [--few-urls 30]
                                [--threads 2] [--connections 32] [--nginx-workers 1]

Starts the app under granian exactly as `donations serve` does (bench/appeal.py's database,
~20 campaigns and reader queries) and Debian's nginx in front of it (deploy/nginx/local.py),
then drives wrk (a Lua script that also counts nginx's X-Cache-Status) through:

1. the app directly, over a set of --urls distinct appeal URLs;
2. nginx, the same --urls URLs: what a CDN sees when readers share URLs (a coarse query);
3. nginx, only --few-urls distinct URLs: the effect of coarser queries on the hit ratio;
4. the app, then nginx, with every request a URL of its own (a fresh `rid`, as the widget
   sends it today): nothing is shared, every request is a miss; what the cache costs then.

Each phase has an unmeasured warm-up first (it also fills the cache, as steady traffic
would). Progress on stderr, a table on stdout: req/s, p50/p99, hit ratio, and cached ÷ direct.
Needs `wrk` and `nginx` (Debian packages). Exits 1 when an answer was not 2xx or a phase
failed. Every process it starts is stopped and every file removed on exit.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from appeal import (  # noqa: E402  (bench/appeal.py: data, wrk and server helpers)
    DEFAULT_BLOCKING_THREADS,
    DEFAULT_WORKERS,
    LUA_COMMON,
    Fixture,
    Load,
    Server,
    free_port,
    granian_cmd,
    prepare,
    run_wrk,
    sanity,
    say,
)

from deploy.nginx.local import LocalNginx, nginx_binary  # noqa: E402

# GET <prefix><query> cycling through the file; with args[3] == "unique" each request gets a
# rid of its own (appended: the query lines carry none). Counts X-Cache-Status values.
LUA_CACHE_GET = r"""
function init(args)
  reset()
  hit, miss, stale, other_cache = 0, 0, 0, 0
  local prefix = args[2]
  unique = args[3] == "unique"
  salt = args[4]  -- new for every wrk run: the warm-up's URLs are not the measured ones
  paths = {}
  for i, q in ipairs(load_lines(args[1])) do paths[i] = prefix .. q end
  idx = ((tid - 1) * 997) % #paths
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
  if c == "HIT" then hit = hit + 1
  elseif c == "MISS" or c == "EXPIRED" or c == "BYPASS" then miss = miss + 1
  elseif c == "STALE" or c == "UPDATING" or c == "REVALIDATED" then stale = stale + 1
  elseif c ~= nil then other_cache = other_cache + 1 end
end

function done(summary, latency, requests)
  report(summary, latency, {hit = total("hit"), miss = total("miss"), stale = total("stale"),
                            other_cache = total("other_cache")})
end
"""


@dataclass
class Phase:
    label: str
    target: str  # "app" or "nginx"
    urls: int | None  # distinct URLs; None: every request its own
    load: Load | None = None

    @property
    def hit_ratio(self) -> float | None:
        if self.load is None or self.load.error or self.target != "nginx":
            return None
        c = self.load.counts
        answered = c.get("hit", 0) + c.get("miss", 0) + c.get("stale", 0) + c.get("other_cache", 0)
        return (c.get("hit", 0) + c.get("stale", 0)) / answered if answered else None


def coarse_queries(fx: Fixture, n: int) -> list[str]:
    """n distinct reader queries without a rid (bench/appeal.py's, rid taken out)."""
    out: list[str] = []
    seen: set[str] = set()
    for line in fx.queries.read_text().splitlines():
        q = urlencode([(k, v) for k, v in parse_qsl(line) if k != "rid"])
        if q not in seen:
            seen.add(q)
            out.append(q)
        if len(out) == n:
            return out
    raise RuntimeError(f"only {len(out)} distinct queries; raise --queries")


def measure(phase: Phase, base: str, script: Path, urls: Path, args: argparse.Namespace) -> Load:
    mode = "unique" if phase.urls is None else "shared"
    wrk_args = [str(urls), "/api/v1/appeal?", mode, secrets.token_hex(4)]
    run_wrk(f"{phase.label} (warm-up)", base, script, wrk_args, threads=args.threads,
            connections=args.connections, seconds=args.warmup, quiet=True)  # fmt: skip
    wrk_args[-1] = secrets.token_hex(4)
    load = run_wrk(phase.label, base, script, wrk_args, threads=args.threads,
                   connections=args.connections, seconds=args.duration)  # fmt: skip
    phase.load = load
    if phase.hit_ratio is not None:
        c = load.counts
        say(f"    cache: {c.get('hit', 0)} HIT, {c.get('stale', 0)} STALE/UPDATING, "
            f"{c.get('miss', 0)} MISS -> hit ratio {100 * phase.hit_ratio:.1f}%")  # fmt: skip
    return load


def table(phases: list[Phase], args: argparse.Namespace) -> str:
    direct = phases[0].load
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                                 check=False).stdout.split()[1:2]  # fmt: skip
    nginx_version = subprocess.run([nginx_binary() or "nginx", "-v"], capture_output=True,
                                   text=True, check=False).stderr.strip()  # fmt: skip
    out = [
        f"donations appeal behind nginx: wrk {' '.join(wrk_version)} -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s per phase (after {args.warmup:g}s warm-up); "
        f"granian {args.workers}w x {args.blocking_threads} threads; {nginx_version}, "
        f"{args.nginx_workers} worker(s), cache {'on disk' if args.cache_disk else 'in /dev/shm'}; "
        f"{os.cpu_count()} CPUs shared by wrk, nginx and the app",
        "",
        f"{'phase':<44}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'hit ratio':>11}"
        f"{'÷ direct':>10}{'non-2xx':>9}",
    ]
    for p in phases:
        load = p.load
        if load is None or load.error:
            out.append(f"{p.label:<44}{'ERROR':>10}  {load.error if load else ''}")
            continue
        ratio = "-"
        if direct is not None and not direct.error and p is not phases[0]:
            ratio = f"{load.rate / direct.rate:.2f}x"
        hits = "-" if p.hit_ratio is None else f"{100 * p.hit_ratio:.1f}%"
        out.append(
            f"{p.label:<44}{load.rate:>10,.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}"
            f"{hits:>11}{ratio:>10}{load.non_2xx:>9}"
        )
    out += [
        "",
        "hit ratio: wrk asks each shared URL hundreds of times a minute, so any few hundred",
        "URLs end up all HITs; with real traffic, about 1 - (distinct URLs asked in 60 s) /",
        "(requests in 60 s) once a URL is asked more than once per max-age. A URL per reader",
        "(the widget's rid today) shares nothing: every request is a MISS and pays for nginx",
        "and a cache write on top of the app.",
    ]
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        out.append(f"note: 1-minute load average {os.getloadavg()[0]:.1f} at the end: contended")
    return "\n".join(out)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase (10)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--urls", type=int, default=300, help="distinct URLs (300)")
    parser.add_argument("--few-urls", type=int, default=30, help="fewer distinct URLs (30)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--blocking-threads", type=int, default=DEFAULT_BLOCKING_THREADS)
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx workers (1)")
    parser.add_argument(
        "--cache-disk",
        action="store_true",
        help="keep nginx's cache on disk under the temp dir (default: in /dev/shm, as the "
        "deploy README recommends; on disk every miss's file write cut misses to ~1/10 here)",
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.threads < 1 or args.connections < args.threads:
        parser.error("--duration must be positive and --connections >= --threads >= 1")
    for tool in ("wrk", "nginx"):
        if (shutil.which(tool) if tool == "wrk" else nginx_binary()) is None:
            say(f"{tool} is not installed: apt-get install {tool}")
            return 2

    signal.signal(signal.SIGTERM, _interrupt)  # unwind like Ctrl+C, so every finally runs
    workdir = Path(tempfile.mkdtemp(prefix="donations-nginx-bench-"))
    started = time.perf_counter()
    app: Server | None = None
    nginx: LocalNginx | None = None
    cleanup: list[Path] = [workdir]
    phases = [
        Phase(f"app directly, {args.urls} URLs", "app", args.urls),
        Phase(f"nginx cache, {args.urls} URLs", "nginx", args.urls),
        Phase(f"nginx cache, {args.few_urls} URLs", "nginx", args.few_urls),
        Phase("app directly, a URL per request (rid)", "app", None),
        Phase("nginx cache, a URL per request (rid)", "nginx", None),
    ]
    try:
        fx = prepare(workdir, random.Random(args.seed), max(3000, 4 * args.urls))
        script = workdir / "cache-get.lua"
        script.write_text(LUA_COMMON + LUA_CACHE_GET)
        files: dict[int | None, Path] = {}
        for n in (args.urls, args.few_urls):
            files[n] = workdir / f"urls-{n}.txt"
            files[n].write_text("\n".join(coarse_queries(fx, n)) + "\n")
        files[None] = files[args.urls]

        port = free_port()
        app_base = f"http://127.0.0.1:{port}"
        app = Server("donations serve (granian)",
                     granian_cmd("donations.wsgi:app", port, args.workers, args.blocking_threads),
                     fx.env, workdir / "app.log")  # fmt: skip
        app.start(app_base)
        site: dict[str, str] = {}
        if not args.cache_disk and Path("/dev/shm").is_dir():
            shm = Path(tempfile.mkdtemp(prefix="donations-nginx-cache-", dir="/dev/shm"))
            site["DONATIONS_CACHE_DIR"] = str(shm)
            cleanup.append(shm)
        nginx = LocalNginx(workdir / "nginx", f"127.0.0.1:{port}", free_port(),
                           workers=args.nginx_workers, access_log=False,
                           site_values=site)  # fmt: skip
        say("  starting nginx")
        nginx.start()
        seen = sanity(app_base, fx, "/api/v1/appeal", n=50)
        say(f"    sanity: {dict(sorted(seen.items()))} for 50 queries straight from the app")
        seen = sanity(nginx.url, fx, "/api/v1/appeal", n=50)
        say(f"    sanity: {dict(sorted(seen.items()))} for 50 queries through nginx")
        for phase in phases:
            say(f"\n== {phase.label}")
            base = app_base if phase.target == "app" else nginx.url
            measure(phase, base, script, files[phase.urls], args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if nginx is not None:
            nginx.stop()
        if app is not None:
            app.stop()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
    say(f"\ndone in {time.perf_counter() - started:.0f}s\n")
    print(table(phases, args), flush=True)
    ok = all(p.load is not None and not p.load.error and p.load.non_2xx == 0 for p in phases)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
