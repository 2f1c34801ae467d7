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
                raise ReadModelBehind(
                    f"read model {name} is at position {current}, not yet at {position}"
                )
            projections.wake()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
