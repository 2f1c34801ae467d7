"""The read side recovery needs (:class:`commands.ports.ExecutorReads`), over the read models."""

from __future__ import annotations

from commands.ports import OwnedWork
from infra.projection_runner import ProjectionService
from infra.projection_wait import wait_for_projections
from infra.store.eventstore import EventStore
from queries.executor_work import lease_of, threads_run_by

READ_MODELS = ("thread_summaries", "executor_leases")


class ExecutorReadModels:
    """Answers from ``thread_summaries`` and ``executor_leases`` once they reach the head."""

    def __init__(self, store: EventStore, projections: ProjectionService) -> None:
        self._store = store
        self._projections = projections

    async def caught_up(self) -> None:
        """Wait until the read models have applied every event appended so far."""
        head = await self._store.max_position()
        await wait_for_projections(self._store, self._projections, READ_MODELS, head)

    async def owned_work(self, tenant: str, executor_id: str) -> OwnedWork:
        await self.caught_up()
        thread_ids = await threads_run_by(self._store.fetch, tenant, executor_id)
        lease = await lease_of(self._store.fetch, tenant, executor_id)
        return OwnedWork(thread_ids, lease.last_seen_position if lease else 0)

    async def position_of(self, tenant: str, stream_id: str, seq: int) -> int:
        events = await self._store.read_stream(tenant, stream_id, after_seq=seq - 1, limit=1)
        return events[0].position if events else 0
