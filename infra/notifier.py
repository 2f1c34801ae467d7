"""One listener per process that learns when the log grows, and wakes asyncio waiters.

On PostgreSQL every commit sends ``NOTIFY ledger_events, '<max position>'`` in its
transaction, so one asyncio LISTEN connection per process hears the commits of
every instance. On SQLite this process's writer reports its commits directly.
Either way a slow poll of the max position backs it up (a dropped LISTEN
connection, or another process writing the same SQLite file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from infra.store.eventstore import EventStore
from infra.store.postgres import PostgresBackend
from infra.store.schema import EVENTS_CHANNEL

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class PositionNotifier:
    """The highest position this process knows of, and a way to wait for a higher one."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.head = 0
        self._grew = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def publish(self, position: int) -> None:
        """Record a new head (call on the event loop's thread)."""
        if position > self.head:
            self.head = position
            self._grew.set()
            self._grew = asyncio.Event()

    def publish_threadsafe(self, position: int) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, position)

    async def wait_beyond(self, position: int, seconds: float) -> bool:
        """Wait until the head passes ``position``; False if ``seconds`` passed first."""
        if self.head > position:
            return True
        grew = self._grew
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(grew.wait(), seconds)
        return self.head > position

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.publish(await self._store.max_position())
        self._store.writer.add_listener(self.publish_threadsafe)
        self._tasks.append(asyncio.create_task(self._poll(), name="ledger-notifier-poll"))
        backend = self._store.backend
        if isinstance(backend, PostgresBackend):
            self._tasks.append(
                asyncio.create_task(self._listen(backend), name="ledger-notifier-listen")
            )

    async def stop(self) -> None:
        self._store.writer.remove_listener(self.publish_threadsafe)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                self.publish(await self._store.max_position())
            except Exception as error:  # the database is away; keep trying
                log.debug("notifier poll failed: %s", error)

    async def _listen(self, backend: PostgresBackend) -> None:
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(backend.url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    delay = 0.5
                    async for notice in conn.notifies():
                        if notice.payload.isdigit():
                            self.publish(int(notice.payload))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("LISTEN %s lost (%s); reconnecting", EVENTS_CHANNEL, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
