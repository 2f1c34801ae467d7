"""Handlers of executor commands: heartbeats, and recovery of the work an executor owned.

Recovery (seed 000's restart recovery) interrupts every active turn the executor
runs, each through the thread handlers' load/save path (their per-stream lock
and retry on a lost race), then records the recovery on the executor's stream.
Each step is idempotent, so a recovery applied twice (or by two Ledger instances)
appends nothing the second time.

Executor streams grow by a heartbeat every few seconds for as long as an executor
lives; the repository's aggregate cache keeps each one in memory once loaded and
brings it up to date by reading only the events after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from commands.ports import (
    Clock,
    CommandContext,
    ConcurrencyConflict,
    ExecutorReads,
    Repository,
    Saved,
)
from commands.stream_locks import StreamLocks
from commands.thread_handlers import MAX_ATTEMPTS, ThreadHandlers
from domain.errors import LifecycleConflict, NotFound
from domain.executor import Executor, RecoveryKind, executor_stream_id
from domain.thread import Thread

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class RunRecovery(Protocol):
    async def recover_for_executor(
        self, tenant: str, executor_id: str, *, shutdown: bool
    ) -> list[str]:
        """Seed 002's recovery of the runs the executor drives and the nodes it works on;
        the ids of the runs changed (none the second time)."""
        ...


class _NothingToInterrupt(Exception):
    """The thread has no active turn on the executor (any more): nothing to append."""


class ExecutorHandlers:
    """Heartbeats and recoveries, each load → one domain method → save."""

    def __init__(
        self,
        repository: Repository,
        threads: ThreadHandlers,
        reads: ExecutorReads,
        clock: Clock,
        lease: timedelta,
        runs: RunRecovery | None = None,
    ) -> None:
        self._runs = runs
        self._repository = repository
        self._threads = threads
        self._reads = reads
        self._clock = clock
        self._lease = lease
        self._locks = StreamLocks()

    async def heartbeat(self, executor_id: str, context: CommandContext) -> Saved:
        """Record that the executor is alive; the answer says until when its lease runs."""
        replayed = await self._repository.replay(context)
        if replayed is not None:
            return replayed

        def decide(executor: Executor) -> dict[str, Any]:
            now = self._clock()
            executor.record_heartbeat(now=now)
            expires = (now + self._lease).strftime(TIMESTAMP_FORMAT)
            return {"executor_id": executor_id, "lease_expires_at": expires}

        saved = await self._change(executor_id, context, decide)
        assert saved is not None  # a heartbeat is always recorded
        return saved

    async def recover(
        self,
        executor_id: str,
        reason: RecoveryKind,
        context: CommandContext,
        *,
        judged_at_position: int | None = None,
    ) -> Saved:
        """Interrupt the turns ``executor_id`` runs, then record the recovery as ``reason``.

        The answer names the threads interrupted now and whether the recovery was
        ``recorded``; when there was nothing new to record, nothing is appended and it
        carries the executor stream's current seq and position.
        ``judged_at_position`` is the last activity a lease expiry was judged on: if
        the executor has been seen since, it is alive and nothing is recovered.
        """
        replayed = await self._repository.replay(context)
        if replayed is not None:
            return replayed
        work = await self._reads.owned_work(context.tenant, executor_id)
        body: dict[str, Any] = {
            "executor_id": executor_id,
            "interrupted_threads": [],
            "recorded": False,
        }
        if judged_at_position is not None and work.last_seen_position != judged_at_position:
            return await self._unchanged(context.tenant, executor_id, body)
        # The interruptions are Ledger's doing, not the executor's: they renew no lease
        # and each thread's append stands alone (no idempotency key of the request).
        on_behalf = replace(context, idempotency=None, executor_id=None)
        interrupted = [
            thread_id
            for thread_id in work.thread_ids
            if await self._interrupt(thread_id, executor_id, on_behalf)
        ]
        body["interrupted_threads"] = interrupted
        runs: list[str] = []
        if self._runs is not None:
            runs = await self._runs.recover_for_executor(
                context.tenant, executor_id, shutdown=reason == "shut_down"
            )
        body["recovered_runs"] = runs

        def decide(executor: Executor) -> dict[str, Any] | None:
            recorded = executor.record_recovery(
                kind=reason,
                last_seen_position=work.last_seen_position,
                interrupted_thread_ids=interrupted + runs,
                now=self._clock(),
            )
            return {**body, "recorded": True} if recorded else None

        saved = await self._change(executor_id, replace(context, executor_id=None), decide)
        if saved is not None:
            return saved
        return await self._unchanged(context.tenant, executor_id, body)

    async def _interrupt(self, thread_id: str, executor_id: str, context: CommandContext) -> bool:
        def decide(thread: Thread) -> dict[str, Any]:
            if not thread.interrupt_for_restart(executor_id=executor_id, now=self._clock()):
                raise _NothingToInterrupt
            return {"thread_id": thread_id, "executor_id": executor_id}

        try:
            await self._threads._change(thread_id, context, decide)
        except (_NothingToInterrupt, NotFound):
            return False
        return True

    async def _change(
        self,
        executor_id: str,
        context: CommandContext,
        decide: Callable[[Executor], dict[str, Any] | None],
    ) -> Saved | None:
        """Decide on the executor (registered on first use) and save; None if nothing changed."""
        stream_id = executor_stream_id(executor_id)
        async with self._locks.hold(context.tenant, stream_id):
            for _ in range(MAX_ATTEMPTS):
                executor, registered = await self._checkout(context.tenant, executor_id)
                try:
                    body = decide(executor)
                    if body is None:
                        return None
                    try:
                        return await self._repository.save(executor, context, body)
                    except ConcurrencyConflict:
                        continue  # another Ledger instance appended first: decide again
                    except LifecycleConflict:
                        if not registered:
                            raise
                        continue  # another Ledger instance registered the executor first
                finally:
                    if not registered:
                        self._repository.give_back(context.tenant, executor)
        raise LifecycleConflict(f"executor {executor_id} is changing too fast; retry the command")

    async def _checkout(self, tenant: str, executor_id: str) -> tuple[Executor, bool]:
        """The executor, and whether it is new (registered now, not yet saved)."""
        stream_id = executor_stream_id(executor_id)
        aggregate = await self._repository.checkout(tenant, stream_id)
        if aggregate is None:
            return Executor.register(executor_id, now=self._clock()), True
        if not isinstance(aggregate, Executor):
            self._repository.give_back(tenant, aggregate)
            raise LifecycleConflict(f"{stream_id} is not an executor")
        return aggregate, False

    async def _unchanged(self, tenant: str, executor_id: str, body: dict[str, Any]) -> Saved:
        """The answer of a recovery that had nothing new to record: the stream as it is."""
        stream_id = executor_stream_id(executor_id)
        async with self._locks.hold(tenant, stream_id):
            executor = await self._repository.load(tenant, stream_id)
        seq = executor.version if isinstance(executor, Executor) else 0
        position = await self._reads.position_of(tenant, stream_id, seq) if seq else 0
        return Saved(seq, position, {**body, "seq": seq, "position": position})
