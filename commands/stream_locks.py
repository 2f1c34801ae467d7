"""One asyncio lock per stream, so a process decides commands on one stream one at a time.

Without it, concurrent commands on a hot stream all load the same version and
all but one lose at append time, over and over. With it, losing a race only
happens between processes (several Ledger instances on one database), where the
handlers' retry on the fresh state takes over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class StreamLocks:
    """Keyed locks that exist only while someone holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, tenant: str, stream_id: str) -> AsyncIterator[None]:
        key = (tenant, stream_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
