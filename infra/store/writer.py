"""The one writer of a process: group commit over a backend.

Callers (asyncio handlers and the library's synchronous recorders alike) put a
:class:`Commit` on a queue and wait on a future. One thread takes everything
already queued, without waiting for more, and hands it to the backend as one
transaction. Each caller gets its own result or its own error; if the batch as
a whole fails, its commits are retried one by one, so one bad commit cannot
fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from infra.store.backend import Backend
from infra.store.batch import BatchPlan
from infra.store.errors import StoreError, StoreUnavailable
from infra.store.records import Commit, CommitResult

log = logging.getLogger(__name__)

_STOP = object()
MAX_BATCH = 1000


class GroupCommitWriter:
    """Serialises every append of this process through one thread and one connection."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._queue: queue.SimpleQueue[tuple[Commit, Future[CommitResult]] | object] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(max_position)`` on the writer thread after each commit with rows."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _committed(self, plan: BatchPlan) -> None:
        if plan.rows:
            for listener in list(self._listeners):
                listener(plan.rows[-1].position)

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._queue.put(_STOP)
        self._thread.join()

    def submit(self, commit: Commit) -> Future[CommitResult]:
        """Queue a commit; the future resolves once it is durable (or rejected)."""
        if not commit.parts or any(not part.events for part in commit.parts):
            raise ValueError("a commit needs at least one event in every part")
        future: Future[CommitResult] = Future()
        self.start()
        self._queue.put((commit, future))
        return future

    async def append(self, commit: Commit) -> CommitResult:
        """The asyncio face of :meth:`submit`: no thread-pool hop, one wake-up per result."""
        return await asyncio.wrap_future(self.submit(commit))

    def append_sync(self, commit: Commit) -> CommitResult:
        return self.submit(commit).result()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stopping = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)  # type: ignore[arg-type]
            if stopping:
                return

    def _write(self, batch: list[tuple[Commit, Future[CommitResult]]]) -> None:
        live = [
            (commit, future) for commit, future in batch if future.set_running_or_notify_cancel()
        ]
        if not live:
            return
        try:
            plan = self._backend.write_batch([commit for commit, _ in live])
        except Exception as error:  # the batch as a whole failed: isolate the culprit
            if len(live) > 1:
                for single in live:
                    self._write_alone(single)
                return
            _fail(live[0][1], error)
            return
        self._committed(plan)
        for (_, future), outcome in zip(live, plan.outcomes, strict=True):
            _settle(future, outcome)

    def _write_alone(self, item: tuple[Commit, Future[CommitResult]]) -> None:
        commit, future = item
        try:
            plan = self._backend.write_batch([commit])
        except Exception as error:
            _fail(future, error)
            return
        self._committed(plan)
        _settle(future, plan.outcomes[0])


def _settle(future: Future[CommitResult], outcome: CommitResult | StoreError) -> None:
    if isinstance(outcome, StoreError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _fail(future: Future[CommitResult], error: Exception) -> None:
    if isinstance(error, StoreError):
        future.set_exception(error)
        return
    log.warning("append failed: %s", error)
    wrapped = StoreUnavailable(f"the database did not accept the write: {error}")
    wrapped.__cause__ = error
    future.set_exception(wrapped)
