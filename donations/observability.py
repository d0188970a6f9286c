"""Logs and metrics: JSON log lines that carry the request id, and Prometheus at GET /metrics.

Logging. `LOG_FORMAT` chooses `json` (the production default: one JSON object a line, from
python-json-logger) or `text` (the development default). Under DONATIONS_ENV=test the app leaves
logging alone unless LOG_FORMAT is set (pytest captures it). A filter on the handler adds
`request_id`, `method` and `path` (never the query string) to every line logged inside a
request, and scrubs email addresses and Stripe/webhook/bearer secrets from every message. One
access line per request (logger `donations.access`, INFO) adds `status`, `duration_ms` and
`endpoint`.

Metrics (prometheus_client). One process: the default registry. Several processes
(`donations serve` runs granian's worker processes): when PROMETHEUS_MULTIPROC_DIR is set
before the first import of prometheus_client, each process writes its samples to files there
and a scrape answered by any worker adds them all up (prometheus_client's multiprocess mode);
`donations serve` creates a fresh directory for its workers and removes it on exit. Values
computed at scrape time (snapshot age, outbox backlog) come from the answering process.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import multiprocessing.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from time import perf_counter, time
from typing import IO, Any

from flask import Flask, Response, g, has_request_context, request
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)
access_log = logging.getLogger("donations.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FAST_PATH_ENDPOINT = "appeal_fastpath"
UNMATCHED = "unmatched"
ENDPOINT_KEY = "donations.endpoint"  # set in the WSGI environ by Flask's after_request
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LOG_FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"


# --- metrics ---------------------------------------------------------------------------------
REQUEST_DURATION = Histogram(
    "donations_http_request_duration_seconds",
    "Time to answer a request, by method, endpoint (the Flask URL rule, 'appeal_fastpath' or "
    "'unmatched') and status class.",
    ["method", "endpoint", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_EVENTS = Counter(
    "donations_webhook_events",
    "Stripe webhook events, by event type and outcome: received (stored in the inbox), "
    "duplicate, booked, deferred (a booking attempt failed; retried), dead, failed (refused).",
    ["type", "outcome"],
)
WEBHOOK_LAG = Histogram(
    "donations_webhook_lag_seconds",
    "Seconds from the event's `created` at Stripe to its booking here.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600),
)
WEBHOOK_FAILURES = Counter(
    "donations_webhook_failures",
    "Webhook deliveries answered with an error, by reason "
    "(signature, malformed, stripe_unreachable, error).",
    ["reason"],
)
EVENTS_COUNTED = Counter(
    "donations_appeal_events_counted",
    "Appeal events (impression, view, click, dismiss) accepted for counting.",
    ["type"],
)
EVENTS_REFUSED = Counter(
    "donations_appeal_events_refused",
    "Appeal events received but not counted, by reason: invalid (no impression token of this "
    "service for these fields), expired (token older than a day), unknown (campaign or variant "
    "not in the snapshot), limited (over the client's per-address or per-token limits).",
    ["reason"],
)
EVENT_ROWS_SET_ASIDE = Counter(
    "donations_appeal_event_rows_set_aside",
    "Event count rows a flush could not write (a value the database refuses) and kept aside "
    "instead of letting them block the others.",
)
SNAPSHOT_BUILT = Gauge(
    "donations_appeal_snapshot_built_timestamp_seconds",
    "When the appeal snapshot was built (Unix time); with several workers, the oldest live one.",
    multiprocess_mode="livemin",
)
INFO = Gauge(
    "donations_info",
    "The running service's version (value 1).",
    ["version"],
    multiprocess_mode="max",
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("donations")
    except metadata.PackageNotFoundError:
        return "unknown"


INFO.labels(_version()).set(1)
if multiprocess_dir():

    def _mark_dead() -> None:  # drops this process's live* gauge files on a clean exit
        from prometheus_client import multiprocess

        directory = multiprocess_dir()
        if directory and os.path.isdir(directory):
            multiprocess.mark_process_dead(os.getpid(), directory)

    multiprocessing.util.Finalize(None, _mark_dead, exitpriority=1)


# Hooks the rest of the service calls (each a few microseconds; never raises).
_EVENT_CHILDREN: dict[str, Any] = {}


def events_counted(types: Iterable[str]) -> None:
    tally: dict[str, int] = {}
    for t in types:
        tally[t] = tally.get(t, 0) + 1
    for t, n in tally.items():
        child = _EVENT_CHILDREN.get(t)
        if child is None:
            child = _EVENT_CHILDREN[t] = EVENTS_COUNTED.labels(t)
        child.inc(n)


def events_refused(reasons: dict[str, int]) -> None:
    for reason, n in reasons.items():
        if n:
            EVENTS_REFUSED.labels(reason).inc(n)


def event_rows_set_aside(n: int) -> None:
    EVENT_ROWS_SET_ASIDE.inc(n)


def snapshot_built(built_at: datetime) -> None:
    SNAPSHOT_BUILT.set(_unix(built_at))


def webhook_received(event: dict[str, Any], *, duplicate: bool) -> None:
    """An event stored in the inbox (or recognised as a duplicate) and acknowledged."""
    outcome = "duplicate" if duplicate else "received"
    WEBHOOK_EVENTS.labels(str(event.get("type", "")), outcome).inc()


def webhook_booked(event: dict[str, Any], outcome: str) -> None:
    """An inbox event booked: the lag is from Stripe's `created` to the booking."""
    WEBHOOK_EVENTS.labels(str(event.get("type", "")), "booked").inc()
    created = event.get("created")
    if isinstance(created, int | float) and created > 0:
        WEBHOOK_LAG.observe(max(0.0, time() - created))


def webhook_deferred(event_type: str, *, dead: bool) -> None:
    """A booking attempt that failed: the event waits (or is dead after its last attempt)."""
    WEBHOOK_EVENTS.labels(event_type, "dead" if dead else "deferred").inc()


def webhook_failed(reason: str, event_type: str | None = None) -> None:
    WEBHOOK_FAILURES.labels(reason).inc()
    if event_type is not None:
        WEBHOOK_EVENTS.labels(event_type, "failed").inc()


def _unix(naive_utc: datetime) -> float:
    from datetime import UTC

    return naive_utc.replace(tzinfo=UTC).timestamp()


class ServiceCollector:
    """Values read at scrape time from this app: the snapshot's age, the mail outbox's and
    the webhook inbox's backlogs."""

    def __init__(self, services: Any) -> None:
        self._s = services

    def collect(self) -> Iterator[Metric]:
        built = getattr(self._s.appeals, "built_at", None)
        if built is not None:
            yield GaugeMetricFamily(
                "donations_appeal_snapshot_age_seconds",
                "Seconds since the appeal snapshot this process serves was built "
                "(absent before the first appeal request).",
                value=max(0.0, time() - _unix(built)),
            )
        aside = getattr(self._s.events, "aside_count", None)
        if aside is not None:
            yield GaugeMetricFamily(
                "donations_appeal_event_rows_aside",
                "Event count rows kept aside because the database refused them (Redis hash "
                "donations:events:aside, plus this process's memory without Redis).",
                value=aside(),
            )
        try:
            from donations.mail.sender import waiting

            with self._s.db.sessions() as session:
                pending, given_up = waiting(session)
        except Exception:
            log.warning("metrics: the outbox could not be counted", exc_info=True)
            return
        yield GaugeMetricFamily(
            "donations_mail_outbox_pending", "Email waiting in the outbox to be sent.", pending
        )
        yield GaugeMetricFamily(
            "donations_mail_outbox_given_up",
            "Email not sent after the maximum number of attempts.",
            given_up,
        )
        try:
            from donations.webhooks.booker import inbox_counts

            with self._s.db.sessions() as session:
                inbox = inbox_counts(session)
        except Exception:
            log.warning("metrics: the webhook inbox could not be counted", exc_info=True)
            return
        yield GaugeMetricFamily(
            "donations_webhook_inbox_pending",
            "Stripe events stored and waiting to be booked.",
            inbox["pending"],
        )
        yield GaugeMetricFamily(
            "donations_webhook_inbox_dead",
            "Stripe events not booked after the maximum number of attempts (retry them: "
            "/admin/webhooks or `donations webhooks retry`).",
            inbox["dead"],
        )
        yield GaugeMetricFamily(
            "donations_webhook_inbox_oldest_pending_seconds",
            "How long the oldest event waiting to be booked has waited (the booking lag).",
            inbox["oldest_pending_seconds"],
        )


class _Default:
    """The process's default registry as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def _forget_dead_workers(directory: str) -> None:
    """A worker killed with SIGKILL (then respawned by granian) never marks itself dead: its
    `live*` gauge files would hold its last values for ever (a frozen snapshot age)."""
    from prometheus_client import multiprocess

    pids = set()
    for name in os.listdir(directory):
        stem = name.rsplit(".", 1)[0]
        if name.startswith("gauge_live") and stem.rsplit("_", 1)[-1].isdigit():
            pids.add(int(stem.rsplit("_", 1)[-1]))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            continue  # alive, another user's


def exposition(services: Any) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        _forget_dead_workers(directory)
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Default())
    registry.register(ServiceCollector(services))
    return generate_latest(registry)


# --- who may read /metrics -------------------------------------------------------------------
def metrics_allowed(
    remote_addr: str | None, authorization: str, forwarded: bool, token: str | None
) -> bool:
    """With METRICS_TOKEN: only `Authorization: Bearer <token>`. Without: only a direct
    (not proxied: no X-Forwarded-For) client on a loopback or private address."""
    if token:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
    if forwarded or not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


bp = Blueprint("operations", __name__, description="Operations: Prometheus metrics.")


@bp.route("/metrics")
class Metrics(MethodView):
    @bp.doc(
        responses={
            "200": {
                "description": "Prometheus text exposition (version 0.0.4).",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "403": {"description": "Not from a private network and no valid METRICS_TOKEN."},
        },
        security=[{}, {"bearerAuth": []}],
    )
    def get(self) -> Response:
        """Prometheus metrics.

        Without METRICS_TOKEN, readable only by a client on a loopback or private address
        that did not come through a proxy (no X-Forwarded-For); with METRICS_TOKEN, only with
        `Authorization: Bearer <METRICS_TOKEN>`. Anything else gets 403.
        """
        from donations.errors import problem
        from donations.services import services

        s = services()
        peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get(
            "REMOTE_ADDR", request.remote_addr
        )
        if not metrics_allowed(
            peer,
            request.headers.get("Authorization", ""),
            "X-Forwarded-For" in request.headers,
            s.settings.metrics_token,
        ):
            return problem(403, "Forbidden", "Metrics are for the monitoring network only.")
        return Response(exposition(s), content_type=CONTENT_TYPE_LATEST)


# --- logging ---------------------------------------------------------------------------------
SCRUB = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # email addresses
    r"|\b(?:sk|rk|pk)_(?:test|live)_\w+|\bwhsec_\w+"  # Stripe keys, webhook secrets
    r"|(?i:bearer)\s+[\w.~+/=-]+"  # bearer tokens
    r"|\bdnt_[\w-]+"  # admin API tokens
    r"|(?<=/account/sign-in/)[^/\s?\"]+"  # donors' single-use sign-in links
)


def scrub(text: str) -> str:
    return SCRUB.sub("[redacted]", text)


class RequestContextFilter(logging.Filter):
    """Adds request_id, method and path inside a request; scrubs emails and secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            if not hasattr(record, "request_id"):
                record.request_id = g.get("request_id")
            if not hasattr(record, "method"):
                record.method = request.method
                record.path = request.path
        elif not hasattr(record, "request_id"):
            record.request_id = None
        path = getattr(record, "path", None)
        if isinstance(path, str):
            record.path = scrub(path)
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestContextFilter())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"}, timestamp=True
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.donations = True  # type: ignore[attr-defined]
    return handler


def configure_logging(settings: Any) -> None:
    """One handler on the root logger in the chosen format (replacing one installed before)."""
    if settings.env == "test" and not settings.log_format:
        return
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "donations", False)]:
        root.removeHandler(old)
    root.addHandler(make_handler(settings.effective_log_format))
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


# --- per request: timing, the access line ----------------------------------------------------
StartResponse = Callable[..., Any]


class Instrumented:
    """The outermost WSGI layer: times every request (the appeal fast path included), records
    the histogram and writes the access line. The fast path costs it ~2 µs: a perf_counter
    pair, a dict lookup for the histogram child and one observe (its access line is DEBUG)."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], fast_paths: str | Mapping[str, str]
    ) -> None:
        self._app = app
        # path → the endpoint name its fast-path answers are counted under
        self._fast = (
            {fast_paths: FAST_PATH_ENDPOINT} if isinstance(fast_paths, str) else dict(fast_paths)
        )
        self._children: dict[tuple[str, str, str], Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = perf_counter()
        seen: list[Any] = []

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append(status)
            seen.append(headers)
            return start_response(status, headers, exc_info)

        try:
            return self._app(environ, _start)
        finally:
            self._record(environ, seen, perf_counter() - start)

    def _record(self, environ: dict[str, Any], seen: list[Any], seconds: float) -> None:
        try:
            method = environ.get("REQUEST_METHOD", "")
            if method not in METHODS:
                method = "other"
            endpoint = environ.get(ENDPOINT_KEY)
            path_info = str(environ.get("PATH_INFO", ""))
            fast = endpoint is None and path_info in self._fast
            if endpoint is None:
                endpoint = self._fast.get(path_info, UNMATCHED)
            status = seen[0][:3] if seen else "500"
            key = (method, endpoint, status[0] + "xx")
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = REQUEST_DURATION.labels(*key)
            child.observe(seconds)
            # The appeal fast path's answers (thousands a second, public, cacheable) are counted
            # above and logged only at DEBUG: an access line costs twice the answer itself.
            level = logging.DEBUG if fast else logging.INFO
            if access_log.isEnabledFor(level):
                request_id = next(
                    (v for k, v in (seen[1] if seen else ()) if k == "X-Request-ID"), None
                )
                path = scrub(environ.get("PATH_INFO", ""))  # sign-in links carry a token
                access_log.log(
                    level,
                    "%s %s %s %.1fms",
                    method,
                    path,
                    status,
                    seconds * 1000,
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "path": path,
                        "status": int(status),
                        "duration_ms": round(seconds * 1000, 2),
                        "endpoint": endpoint,
                    },
                )
        except Exception:  # metrics must never break a request
            log.debug("request metrics failed", exc_info=True)


def install(app: Flask, services: Any) -> None:
    """Logging, the endpoint label for the histogram, and the /metrics view."""
    configure_logging(services.settings)

    @app.after_request
    def _endpoint_label(response: Response) -> Response:
        rule = request.url_rule
        request.environ[ENDPOINT_KEY] = rule.rule if rule is not None else UNMATCHED
        return response
