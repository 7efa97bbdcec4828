"""`MicroBatcher`: the texts of concurrent requests gathered into one model call, on a thread of its own.

    request A ─┐                       ┌─> A's rows
    request B ─┼─> queue ─> worker ────┼─> B's rows      one predict([A..., B..., C...]) per batch
    request C ─┘   (≤ max_queue texts)  └─> C's rows

The worker takes the oldest waiting request, waits until `window` seconds have passed since it arrived,
or since the worker came free if that is later (or until `max_batch` texts are waiting), takes whole
requests up to `max_batch` texts, runs `predict` once and hands every request its own rows. While it runs,
the next requests queue up. The window after a batch lets the clients just answered send their next
requests into the next batch: counted from arrival, requests that came in during a batch ran at once
without them, and concurrent clients split into two cohorts that took turns in half-size batches for the
rest of the run (figures: benchmarks/README.md, "Batched serving").
A request that would take the queue over `max_queue` texts is refused at once
(`Unavailable`): a bounded queue bounds the wait, where an unbounded one lets latency grow without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The texts were not taken: the queue is full, or the batcher is shutting down. Try again later."""


@dataclass
class _Job:
    texts: Sequence[str]
    done: Callable[[np.ndarray | None, BaseException | None], None]
    key: Hashable = None  # requests with another key are predicted in a call of their own (`predict(texts, key)`)
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """`await batcher.predict(texts)` → the [len(texts), C] rows `predict(texts)` would give them alone.

    `predict` maps a list of texts to one row per text and must not depend on which other texts share the
    call (Classifier.predict_proba: the LSTM is exact under padding). Requests may carry a `key` that changes
    how their texts are predicted (the server's decision threshold): a batch's texts are predicted in one call
    per key, `predict(texts)` for the default None and `predict(texts, key)` for any other. An exception inside
    it fails the requests of that call only; the worker goes on with the next.
    """

    def __init__(self, predict: Callable[..., np.ndarray], max_batch: int = 64, window_ms: float = 5.0,
                 max_queue: int = 256):
        if max_batch <= 0 or max_queue <= 0 or window_ms < 0:
            raise ValueError("max_batch and max_queue must be > 0, window_ms >= 0")
        self._predict = predict
        self.max_batch, self.window, self.max_queue = max_batch, window_ms / 1000, max_queue
        self._jobs: deque[_Job] = deque()
        self.queued = 0  # texts waiting, not counting the batch the worker is running
        self.batches = 0  # predict calls so far
        self.texts = 0  # texts predicted so far (texts / batches: how well requests are being gathered)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._closed = False
            # a daemon, so that a server that never runs its shutdown (killed tests, a crash) can still exit
            self._thread = threading.Thread(target=self._run, name="textclf-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, refuse what still waits, end the worker."""
        with self._cond:
            self._closed = True
            left, self._jobs, self.queued = list(self._jobs), deque(), 0
            self._cond.notify_all()
        for job in left:
            job.done(None, Unavailable("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the batch worker did not stop within %.0f s", timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, texts: Sequence[str], done: Callable[[np.ndarray | None, BaseException | None], None],
               key: Hashable = None) -> None:
        """Queue `texts`; `done(rows, None)` or `done(None, error)` is called later from the worker thread.
        Raises `Unavailable` at once when they do not fit in the queue."""
        if not texts:
            raise ValueError("no texts to predict")
        if self._thread is None:
            self.start()  # an app run without its lifespan (e.g. httpx's ASGITransport) still gets a worker
        with self._cond:
            if self._closed:
                raise Unavailable("the server is shutting down")
            if self.queued + len(texts) > self.max_queue:
                raise Unavailable(f"the server is busy ({self.queued} texts waiting, at most {self.max_queue})")
            self._jobs.append(_Job(texts, done, key))
            self.queued += len(texts)
            self._cond.notify_all()

    async def predict(self, texts: Sequence[str], key: Hashable = None) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(rows: np.ndarray | None, error: BaseException | None) -> None:
            if future.done():  # the request was cancelled (its client went away)
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(rows)

        def done(rows: np.ndarray | None, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(settle, rows, error)

        self.submit(texts, done, key)
        return await future

    def _take(self) -> list[_Job] | None:
        """The next batch: whole requests, oldest first, up to max_batch texts (at least one request)."""
        free = time.monotonic()  # the previous batch's requests have just been answered
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = max(self._jobs[0].arrived, free) + self.window
            while self.queued < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed or not self._jobs:
                return None
            batch = [self._jobs.popleft()]
            size = len(batch[0].texts)
            while self._jobs and size + len(self._jobs[0].texts) <= self.max_batch:
                size += len(self._jobs[0].texts)
                batch.append(self._jobs.popleft())
            self.queued -= size
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            by_key: dict[Hashable, list[_Job]] = {}
            for job in batch:
                by_key.setdefault(job.key, []).append(job)
            for key, jobs in by_key.items():
                self._call(jobs, key)

    def _call(self, jobs: list[_Job], key: Hashable) -> None:
        """One model call for `jobs` (all with `key`), each job handed its own rows."""
        texts = [t for job in jobs for t in job.texts]
        self.batches += 1
        self.texts += len(texts)
        try:
            rows = np.asarray(self._predict(texts) if key is None else self._predict(texts, key))
            if len(rows) != len(texts):
                raise RuntimeError(f"the model gave {len(rows)} rows for {len(texts)} texts")
        except Exception as e:  # the requests of this call learn of it; the next call runs as usual
            log.exception("prediction failed for a batch of %d texts from %d requests", len(texts), len(jobs))
            for job in jobs:
                job.done(None, e)
            return
        start = 0
        for job in jobs:
            job.done(rows[start : start + len(job.texts)], None)
            start += len(job.texts)
