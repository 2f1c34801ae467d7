"""A separate process that appends through its own writer (for the two-process test).

Usage: python -m tests.integration.append_worker URL NAME COUNT
Appends COUNT single-event commits, alternating between two streams of its own
and one stream shared with the other process (appended at whatever its head is).
"""

from __future__ import annotations

import asyncio
import sys

from infra.store.records import Commit, StreamAppend
from tests.integration.store_helpers import event, opened_store


async def main(url: str, name: str, count: int) -> None:
    store = await opened_store(url)
    try:
        pending = []
        for i in range(count):
            stream = ("shared", f"{name}-a", f"{name}-b")[i % 3]
            commit = Commit(
                parts=(StreamAppend("default", "test", stream, None, (event(n=i, by=name),)),)
            )
            pending.append(store.writer.append(commit))
            if len(pending) == 32:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
