"""The read side recovery needs (:class:`commands.ports.ExecutorReads`), over the read models."""

from __future__ import annotations

from commands.ports import OwnedWork
from infra.projection_wait import CurrentReadModels
from queries.executor_work import lease_of, threads_run_by

READ_MODELS = ("thread_summaries", "executor_leases")


class ExecutorReadModels(CurrentReadModels):
    """Answers from ``thread_summaries`` and ``executor_leases`` once they reach the head."""

    names = READ_MODELS

    async def owned_work(self, tenant: str, executor_id: str) -> OwnedWork:
        await self.caught_up()
        thread_ids = await threads_run_by(self._store.fetch, tenant, executor_id)
        lease = await lease_of(self._store.fetch, tenant, executor_id)
        return OwnedWork(thread_ids, lease.last_seen_position if lease else 0)
