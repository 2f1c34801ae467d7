"""Waiting for read models to apply a position of the log (bounded, never sleeping blindly)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from commands.ports import ReadModelBehind
from infra.projection_runner import ProjectionService
from infra.store.eventstore import EventStore

WAIT_SECONDS = 5.0


async def projection_position(store: EventStore, name: str) -> int:
    rows = await store.fetch("SELECT position FROM projection_positions WHERE name = %s", [name])
    return int(rows[0][0]) if rows else 0


async def wait_for_projections(
    store: EventStore,
    projections: ProjectionService,
    names: Iterable[str],
    position: int,
    *,
    within: float = WAIT_SECONDS,
) -> None:
    """Return once every projection in ``names`` has applied ``position``.

    Wakes this process's runners while waiting (on PostgreSQL another Ledger
    instance may be the one running them); raises :class:`ReadModelBehind` after
    ``within`` seconds.
    """
    deadline = time.monotonic() + within
    delay = 0.005
    for name in names:
        while (current := await projection_position(store, name)) < position:
            if time.monotonic() >= deadline:
                raise ReadModelBehind(name, current, position)
            projections.hurry()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


class CurrentReadModels:
    """Reads of some read models, each made once they have applied every event appended so
    far (``names``); what :class:`infra.executor_reads.ExecutorReadModels` and
    :class:`infra.run_reads.RunReadModels` share."""

    names: tuple[str, ...] = ()

    def __init__(self, store: EventStore, projections: ProjectionService) -> None:
        self._store = store
        self._projections = projections

    async def caught_up(self) -> None:
        """Wait until the read models have applied every event appended so far."""
        head = await self._store.max_position()
        await wait_for_projections(self._store, self._projections, self.names, head)

    async def position_of(self, tenant: str, stream_id: str, seq: int) -> int:
        """The global position of event ``seq`` of a stream (0 for seq 0 or none)."""
        if seq <= 0:
            return 0
        events = await self._store.read_stream(tenant, stream_id, after_seq=seq - 1, limit=1)
        return events[0].position if events else 0
