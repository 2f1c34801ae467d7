"""The one writer of a process: group commit over a backend.

Callers (asyncio handlers and the library's synchronous recorders alike) put a
:class:`Commit` on a queue and wait on a future. One thread takes everything
already queued, without waiting for more, and hands it to the backend as one
transaction. Each caller gets its own result or its own error; if the batch as
a whole fails, its commits are retried one by one, so one bad commit cannot
fail its neighbours.

asyncio callers wait on a future of their own loop, and the writer resolves a
whole batch's futures with one ``call_soon_threadsafe`` per loop: one wake-up
of the loop per batch instead of one per caller, so the callers resume
together and queue their next commits together, which keeps batches full (and
the writer thread, which shares the GIL with the loop, does less per event).
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

Outcome = CommitResult | StoreError


class _Waiter:
    """An asyncio caller: its loop and the future it awaits there."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[CommitResult] = loop.create_future()


_Caller = Future[CommitResult] | _Waiter
_Item = tuple[Commit, _Caller]


class GroupCommitWriter:
    """Serialises every append of this process through one thread and one connection."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
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
        if plan.last_position is not None:
            for listener in list(self._listeners):
                listener(plan.last_position)

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
        future: Future[CommitResult] = Future()
        self._put(commit, future)
        return future

    async def append(self, commit: Commit) -> CommitResult:
        """The asyncio face of :meth:`submit`: no thread-pool hop, one wake-up per batch."""
        waiter = _Waiter(asyncio.get_running_loop())
        self._put(commit, waiter)
        return await waiter.future

    def _put(self, commit: Commit, caller: _Caller) -> None:
        if not commit.parts or any(not part.events for part in commit.parts):
            raise ValueError("a commit needs at least one event in every part")
        if not self._started:
            self.start()
        self._queue.put((commit, caller))

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

    def _write(self, batch: list[_Item]) -> None:
        live = [item for item in batch if _claim(item[1])]
        if not live:
            return
        try:
            plan = self._backend.write_batch([commit for commit, _ in live])
        except Exception as error:  # the batch as a whole failed: isolate the culprit
            if len(live) > 1:
                for single in live:
                    self._write_alone(single)
                return
            _settle_all([(live[0][1], _failure(error))])
            return
        self._committed(plan)
        _settle_all(
            [(caller, outcome) for (_, caller), outcome in zip(live, plan.outcomes, strict=True)]
        )

    def _write_alone(self, item: _Item) -> None:
        commit, caller = item
        try:
            plan = self._backend.write_batch([commit])
        except Exception as error:
            _settle_all([(caller, _failure(error))])
            return
        self._committed(plan)
        _settle_all([(caller, plan.outcomes[0])])


def _claim(caller: _Caller) -> bool:
    """Whether the caller still waits (a cancelled caller's commit is not written)."""
    if isinstance(caller, _Waiter):
        return not caller.future.cancelled()
    return caller.set_running_or_notify_cancel()


def _settle_all(settled: list[tuple[_Caller, Outcome]]) -> None:
    """Resolve every caller: synchronous futures at once, each loop's futures in one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[CommitResult], Outcome]]]
    by_loop = {}
    for caller, outcome in settled:
        if isinstance(caller, _Waiter):
            by_loop.setdefault(caller.loop, []).append((caller.future, outcome))
        elif isinstance(outcome, StoreError):
            caller.set_exception(outcome)
        else:
            caller.set_result(outcome)
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, pairs)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.warning("%d append results had no event loop to go to", len(pairs))


def _resolve(pairs: list[tuple[asyncio.Future[CommitResult], Outcome]]) -> None:
    """On the caller's loop: hand each waiting future its outcome."""
    for future, outcome in pairs:
        if future.done():  # cancelled while its commit was being written
            continue
        if isinstance(outcome, StoreError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _failure(error: Exception) -> StoreError:
    if isinstance(error, StoreError):
        return error
    log.warning("append failed: %s", error)
    wrapped = StoreUnavailable(f"the database did not accept the write: {error}")
    wrapped.__cause__ = error
    return wrapped
