"""A per-process background thread that does due work when woken and every few seconds.

Both queues of the service use it: the mail outbox (`mail.sender.MailSender`) and the Stripe
webhook inbox (`webhooks.booker.WebhookBooker`). The thread starts on the first `wake()`, so
importing or creating the app starts nothing; a forked server worker starts its own; `close()`
stops it and lets a batch in flight finish (what is left waits in its table).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import weakref
from typing import Any, ClassVar

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Subclasses implement `work()`: do what is due now; it must not raise for one item."""

    thread_name = "background"
    _every: ClassVar[weakref.WeakSet[BackgroundLoop]] = weakref.WeakSet()

    @classmethod
    def close_all(cls) -> None:
        """Stop every loop of this process (before its database goes away: the test suite)."""
        for loop in list(cls._every):
            loop.close()

    def __init__(self, *, poll_seconds: float) -> None:
        BackgroundLoop._every.add(self)
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        atexit.register(self.close)
        # Forked server workers end with os._exit: atexit never runs there (see appeals/events).
        multiprocessing.util.Finalize(None, self.close, exitpriority=10)

    def work(self) -> Any:
        raise NotImplementedError

    def wake(self) -> None:
        """Work soon: starts the thread on first use, then nudges it."""
        if self._stop.is_set():
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._thread = os.getpid(), None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name=self.thread_name
                )
                self._thread.start()
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                self.work()
            except Exception:
                log.exception("%s: batch failed; trying again at the next poll", self.thread_name)
            self._wakeup.wait(self.poll_seconds)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread, letting a batch in flight finish."""
        self._stop.set()
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.closed()

    def closed(self) -> None:
        """After the thread stopped (subclasses release what they hold)."""
