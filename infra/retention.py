"""Idempotency keys are kept for a configurable time (LEDGER_IDEMPOTENCY_TTL_MS), then forgotten.

A retry after that answers as a new command would. The purge runs off the event
loop, once a minute, and never fails the service (a missed purge only keeps keys
a little longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from infra.store.backend import Backend

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 60.0


class IdempotencyRetention:
    def __init__(self, backend: Backend, ttl_ms: int, every: float = PURGE_EVERY_SECONDS) -> None:
        self._backend = backend
        self.ttl_seconds = ttl_ms / 1000
        self._every = every
        self._task: asyncio.Task[None] | None = None

    async def purge_once(self) -> int:
        return await asyncio.to_thread(self._backend.purge_idempotency, self.ttl_seconds)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="ledger-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                purged = await self.purge_once()
                if purged:
                    log.info(
                        "forgot %d idempotency keys older than %.0f s", purged, self.ttl_seconds
                    )
            except Exception as error:
                log.warning("idempotency purge failed: %s", error)
            await asyncio.sleep(self._every)
