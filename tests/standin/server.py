"""StripeStandin: the stand-in served over real HTTP from this process, and its webhooks."""

from __future__ import annotations

import copy
import json
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import stripe
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .api import Api, Handlers
from .model import Obj


class _Handler(WSGIRequestHandler):
    protocol_version = "HTTP/1.0"  # a connection per request: stop() can join every thread
    timeout = 30

    def log_request(self, *args: Any) -> None:
        """Quiet: tests do not want a line per request."""


class StripeStandin(Handlers):
    """Stripe's API at 2026-10-28.endive, in process: start(), point the SDK at `base`."""

    def __init__(self, *, settlement_currency: str = "usd", latency: float = 0.0,
                 webhook_url: str | None = None, webhook_secret: str | None = None,
                 auto_deliver: bool = False) -> None:  # fmt: skip
        super().__init__(settlement_currency)
        self.latency, self.auto_deliver = latency, auto_deliver
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.deliveries: list[tuple[str, int]] = []  # (event id, HTTP status; 0: no answer)
        self.base = ""
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue[tuple[float, str]] = queue.Queue()
        self._stopping = threading.Event()

    def start(self) -> StripeStandin:
        if self._server is None:
            server = make_server("127.0.0.1", 0, Api(self), threaded=True, request_handler=_Handler)
            server.daemon_threads = False  # type: ignore[attr-defined]  # server_close() joins
            self._server, self.base = server, f"http://127.0.0.1:{server.server_port}"
            self._stopping.clear()
            self._spawn(server.serve_forever)
            self._spawn(self._deliver_automatically)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()  # joins the request threads
            for thread in self._threads:
                thread.join()
            self._threads.clear()
            self._server = None

    def __enter__(self) -> StripeStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._reset_state()
            self.deliveries.clear()
            while not self._queue.empty():
                self._queue.get_nowait()

    def _spawn(self, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=f"standin-{target.__name__}", daemon=True)
        self._threads.append(thread)
        thread.start()

    # webhooks --------------------------------------------------------------------------------
    def undelivered(self) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(e) for e in self.events if e["id"] not in self._delivered]

    def deliver(
        self,
        events: list[Obj] | None = None,
        *,
        url: str | None = None,
        secret: str | None = None,
        duplicates: int = 1,
        shuffle: random.Random | None = None,
        concurrent: bool = False,
    ) -> list[int]:
        """POST events (default: every undelivered one) as Stripe does, each `duplicates`
        times, shuffled, or all at once; the HTTP statuses in send order (0: no answer)."""
        url, secret = url or self.webhook_url, secret or self.webhook_secret
        if not url or not secret:
            raise ValueError("deliver() needs a url and a secret (or webhook_url/webhook_secret)")
        batch = self.undelivered() if events is None else list(events)
        with self._lock:
            self._delivered.update(e["id"] for e in batch)
        sends = [e for e in batch for _ in range(duplicates)]
        if shuffle is not None:
            shuffle.shuffle(sends)
        if not concurrent or not sends:
            return [self._post(e, url, secret) for e in sends]
        codes, start = [0] * len(sends), threading.Barrier(len(sends))

        def send(i: int) -> None:
            start.wait()
            codes[i] = self._post(sends[i], url, secret)

        threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(sends))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return codes

    def _post(self, event: Obj, url: str, secret: str) -> int:
        body = json.dumps(event)
        signature = stripe.WebhookSignature.generate_signature_header(body, secret)
        headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature}
        headers["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
        try:
            code = requests.post(url, data=body.encode(), headers=headers, timeout=30).status_code
        except requests.RequestException:
            code = 0
        with self._lock:
            self.deliveries.append((event["id"], code))
        return code

    def _on_event(self, event: Obj) -> None:
        if self.auto_deliver:
            self._queue.put((time.monotonic() + 0.05, event["id"]))

    def _deliver_automatically(self) -> None:
        """Each new event POSTed ~0.05 s after it happened, in order (auto_deliver=True)."""
        while not self._stopping.is_set():
            try:
                due, event_id = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            with self._lock:
                url, secret = self.webhook_url, self.webhook_secret
                event = self._objects.get(event_id)
                if event is None or event_id in self._delivered or not (url and secret):
                    continue
                self._delivered.add(event_id)
                event = copy.deepcopy(event)
            self._post(event, url, secret)
