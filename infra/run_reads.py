"""The read side run commands and policies need, over the ``run_summaries`` read model.

Each answer is read once the read model has applied every event appended so far, so a
claim sees every run created before it and a policy never acts on a stale picture.
"""

from __future__ import annotations

from infra.projection_wait import CurrentReadModels
from queries import run_list

READ_MODELS = ("run_summaries",)


class RunReadModels(CurrentReadModels):
    names = READ_MODELS

    async def claimable(self, tenant: str, limit: int) -> list[str]:
        await self.caught_up()
        return await run_list.claimable_runs(self._store.fetch, tenant, limit)

    async def driven_by(self, tenant: str, executor_id: str) -> list[str]:
        await self.caught_up()
        return await run_list.runs_driven_by(self._store.fetch, tenant, executor_id)

    async def with_worker(self, tenant: str, worker_id: str) -> list[str]:
        await self.caught_up()
        return await run_list.runs_with_worker(self._store.fetch, tenant, worker_id)
