"""Snapshots in the store: taken every N events, read as the start of a fold.

Writing one is a side job: it runs off the event loop and never fails a command
(a missing snapshot only means a longer fold). A snapshot that cannot be decoded
or was written for another state version is skipped.
"""

from __future__ import annotations

import asyncio
import logging

from domain.base import LedgerAggregate
from infra.projection_store import projection_transaction
from infra.snapshots import SNAPSHOT_VERSION, StateCodec
from infra.store.eventstore import EventStore

log = logging.getLogger(__name__)

SELECT_LATEST = (
    "SELECT seq, class_version, state FROM snapshots"
    " WHERE tenant = %s AND stream_id = %s AND seq <= %s ORDER BY seq DESC LIMIT 1"
)
INSERT = (
    "INSERT INTO snapshots (tenant, stream_id, seq, type, class_version, state)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant, stream_id, seq) DO NOTHING"
)
NO_LIMIT = 2**62


class Snapshots:
    def __init__(self, store: EventStore, codec: StateCodec, every: int) -> None:
        self._store = store
        self._codec = codec
        self.every = every
        self._writes: set[asyncio.Task[None]] = set()

    async def latest(
        self, tenant: str, stream_id: str, upto_seq: int | None
    ) -> LedgerAggregate | None:
        rows = await self._store.fetch(
            SELECT_LATEST,
            [tenant, stream_id, NO_LIMIT if upto_seq is None else upto_seq],
            binary=True,  # a state of a few MB: hex text would double it and cost its decoding
        )
        if not rows or rows[0][1] != SNAPSHOT_VERSION:
            return None
        try:
            aggregate = self._codec.decode(bytes(rows[0][2]))
        except (ValueError, KeyError, TypeError) as error:
            log.warning("snapshot of %s at %s skipped: %s", stream_id, rows[0][0], error)
            return None
        return aggregate if aggregate.version == rows[0][0] else None

    def maybe_take(self, tenant: str, aggregate: LedgerAggregate, previous_version: int) -> None:
        """Snapshot ``aggregate`` if its last append crossed a multiple of ``every``.

        Everything written is captured now; only the write runs later, off the loop,
        so a caller that goes on changing the aggregate cannot skew the snapshot.
        """
        if self.every <= 0 or aggregate.version // self.every == previous_version // self.every:
            return
        try:
            state = self._codec.encode(aggregate)
        except (ValueError, TypeError) as error:  # the command itself was committed
            log.warning(
                "snapshot of %s at %s not taken: %s", aggregate.id, aggregate.version, error
            )
            return
        row = (
            tenant,
            aggregate.id,
            aggregate.version,
            type(aggregate).__name__,
            SNAPSHOT_VERSION,
            state,
        )
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._write, row))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _write(self, row: tuple[str, str, int, str, int, bytes]) -> None:
        try:
            with projection_transaction(self._store.backend) as session:
                session.execute(INSERT, row)
        except Exception as error:  # a snapshot is an optimisation: never fail for it
            log.warning("snapshot of %s at %s not written: %s", row[1], row[2], error)

    async def drain(self) -> None:
        """Wait for snapshot writes in flight (before the store closes)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
