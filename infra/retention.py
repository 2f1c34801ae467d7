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
        self._stopping = asyncio.Event()
        self._purging: asyncio.Future[int] | None = None

    async def purge_once(self) -> int:
        # Cancelling an await of to_thread leaves the thread running; the purge is shielded and
        # kept so that stop() can wait for it before the store closes its connections.
        self._purging = asyncio.ensure_future(
            asyncio.to_thread(self._backend.purge_idempotency, self.ttl_seconds)
        )
        return await asyncio.shield(self._purging)

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="ledger-retention")

    async def stop(self) -> None:
        """Let a purge in flight finish (its thread cannot be cancelled), then end the loop."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                purged = await self.purge_once()
                if purged:
                    log.info(
                        "forgot %d idempotency keys older than %.0f s", purged, self.ttl_seconds
                    )
            except Exception as error:
                log.warning("idempotency purge failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._every)
