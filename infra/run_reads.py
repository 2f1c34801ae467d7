"""The read side run commands and policies need, over the ``run_summaries`` read model.

Each answer is read once the read model has applied every event appended so far, so a
claim sees every run created before it and a policy never acts on a stale picture.
"""

from __future__ import annotations

from infra.projection_runner import ProjectionService
from infra.projection_wait import wait_for_projections
from infra.store.eventstore import EventStore
from queries import run_list

READ_MODELS = ("run_summaries",)


class RunReadModels:
    def __init__(self, store: EventStore, projections: ProjectionService) -> None:
        self._store = store
        self._projections = projections

    async def caught_up(self) -> None:
        head = await self._store.max_position()
        await wait_for_projections(self._store, self._projections, READ_MODELS, head)

    async def claimable(self, tenant: str, limit: int) -> list[str]:
        await self.caught_up()
        return await run_list.claimable_runs(self._store.fetch, tenant, limit)

    async def driven_by(self, tenant: str, executor_id: str) -> list[str]:
        await self.caught_up()
        return await run_list.runs_driven_by(self._store.fetch, tenant, executor_id)

    async def with_worker(self, tenant: str, worker_id: str) -> list[str]:
        await self.caught_up()
        return await run_list.runs_with_worker(self._store.fetch, tenant, worker_id)

    async def position_of(self, tenant: str, stream_id: str, seq: int) -> int:
        if seq <= 0:
            return 0
        events = await self._store.read_stream(tenant, stream_id, after_seq=seq - 1, limit=1)
        return events[0].position if events else 0
