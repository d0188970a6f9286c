"""`GET /api/v1/appeals` and `/api/v1/appeals/version`: answers a cache can share between every
reader of an article (docs/appeals-in-the-browser.md).

The answer depends only on the page (its query), the reader's country (the CDN's header), the
campaign snapshot and the hour (the impression tokens'): each process keeps the bytes and the
ETag of the answers it made for the current snapshot and hour, so a repeated request costs a
dictionary lookup (bench/nginx_cache.py measures it against a raw WSGI callable).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from donations.appeals.impressions import BUCKET_SECONDS
from donations.appeals.service import answer_candidates
from donations.db import utcnow

# What a shared cache may keep, and for how long: the goal ticker in an answer is at most
# s-maxage old, plus stale-while-revalidate while one request refreshes it.
CANDIDATES_CACHE_CONTROL = "public, max-age=60, s-maxage=60, stale-while-revalidate=60"
VERSION_CACHE_CONTROL = "public, max-age=10, s-maxage=10, stale-while-revalidate=10"
# Per process, the least recently asked first out: ~2,000 articles × placements (× countries,
# with a country header) asked this hour, within 64 MB of answers.
MAX_ANSWERS = 20_000
MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Answer:
    body: bytes
    etag: str  # a strong validator: the answer's bytes, hashed


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (or is `*`)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


class CandidateAnswers:
    """This process's answers for the current snapshot and hour (a bounded LRU)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch: tuple[Any, ...] = ()
        self._answers: OrderedDict[tuple[Any, ...], Answer] = OrderedDict()
        self._bytes = 0  # the kept answers' bodies

    def get(self, services: Any, args: Mapping[str, str], header_country: str | None) -> Answer:
        """The answer for this query (raises service.InvalidInput for a bad one)."""
        epoch = self._now(services)
        key = (tuple(sorted(args.items())), header_country)
        return self._found(epoch, key) or self._make(services, epoch, key, args, header_country)

    def for_query(self, services: Any, query: str, header_country: str | None) -> Answer:
        """The answer for a raw query string, as the WSGI fast path has it: the widget asks
        the same bytes for the same page, so a repeated request is found without parsing."""
        epoch = self._now(services)
        raw = ("raw", query, header_country)
        found = self._found(epoch, raw)
        if found is not None:
            return found
        args: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            args.setdefault(name, value)  # the first value wins, as in Flask's request.args
        return self._make(services, epoch, raw, args, header_country)

    @staticmethod
    def _now(services: Any) -> tuple[Any, ...]:
        snapshot = services.appeals.current()
        return (snapshot.version, snapshot.built_at, int(utcnow().timestamp() // BUCKET_SECONDS))

    def _found(self, epoch: tuple[Any, ...], key: tuple[Any, ...]) -> Answer | None:
        with self._lock:
            if epoch != self._epoch:
                self._epoch, self._answers, self._bytes = epoch, OrderedDict(), 0
                return None
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
            return found

    def _make(
        self,
        services: Any,
        epoch: tuple[Any, ...],
        key: tuple[Any, ...],
        args: Mapping[str, str],
        header_country: str | None,
    ) -> Answer:
        _req, body = answer_candidates(services, args, header_country)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        answer = Answer(data, etag_of(data))
        self._keep(epoch, key, answer)
        return answer

    def _keep(self, epoch: tuple[Any, ...], key: tuple[Any, ...], answer: Answer) -> None:
        with self._lock:
            if epoch != self._epoch:
                return
            old = self._answers.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._answers[key] = answer
            self._bytes += len(answer.body)
            while len(self._answers) > MAX_ANSWERS or self._bytes > MAX_BYTES:
                _key, dropped = self._answers.popitem(last=False)
                self._bytes -= len(dropped.body)

    def version(self, services: Any) -> Answer:
        # A string: the version is a 64-bit number, beyond what JavaScript's numbers hold.
        data = json.dumps({"version": str(services.appeals.current().version)}).encode()
        return Answer(data, etag_of(data))


def shared_headers(settings: Any, origin: str | None) -> list[tuple[str, str]]:
    """Vary only on what changes the answer: the country header when one is configured, and
    Origin only when several newsroom origins are allowed (with one, the CORS answer is the
    same for every request)."""
    headers: list[tuple[str, str]] = []
    vary = [settings.country_header] if settings.country_header else []
    allowed = settings.allowed_origins
    if len(allowed) > 1:
        vary.append("Origin")
    if origin and origin in allowed:
        headers.append(("Access-Control-Allow-Origin", origin))
    elif len(allowed) == 1:
        headers.append(("Access-Control-Allow-Origin", allowed[0]))
    if vary:
        headers.append(("Vary", ", ".join(vary)))
    return headers
