"""Work done after the answer: one daemon thread per process runs jobs that requests queue.

Asking for a sign-in link must take as long for an email we know as for one we don't (the
answer is the same; its timing must not tell who has given). So the request only queues the
lookup, the link's row and its email, and answers at once; this thread does them once the
answer has gone out (so they don't compete with it for the interpreter either).

Bounded: when the queue is full (a flood the per-address and per-email limits let through)
a job is dropped and logged, and that reader asks again. Jobs still queued when the process
exits get two seconds to finish.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import queue
import threading
from collections.abc import Callable

from werkzeug.wrappers import Response

log = logging.getLogger(__name__)
SENT_WAIT = 1.0  # seconds a job waits for its answer to go out


class AfterAnswer:
    def __init__(self, name: str, maxsize: int = 1000) -> None:
        self.name = name
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue `job`; False (and a warning) when the queue is full."""
        self._start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            log.warning("%s: %d jobs waiting; one dropped", self.name, self._jobs.qsize())
            return False
        return True

    def after(self, response: Response, job: Callable[[], None]) -> bool:
        """Queue `job` to run once `response` has gone out (the server closes it after
        sending the body), or a second after it was queued if the server never says so."""
        sent = threading.Event()
        response.call_on_close(sent.set)

        def once_sent() -> None:
            sent.wait(SENT_WAIT)
            job()

        return self.submit(once_sent)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued job has run (tests; exit). True if they all did."""
        done = threading.Event()

        def wait() -> None:
            self._jobs.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _start(self) -> None:
        # Started at the first job, not at creation: a server that forks workers after
        # building the app gets a thread in each worker.
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            first = self._thread is None
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
            if first:
                atexit.register(self.drain, 2.0)
                # Forked server workers end with os._exit, where atexit never runs.
                multiprocessing.util.Finalize(None, self.drain, args=(2.0,), exitpriority=10)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # one failed job must not stop the others
                log.exception("%s: a job failed", self.name)
            finally:
                self._jobs.task_done()
