"""The group-commit writer's batches, and writers of two processes on one database."""

from __future__ import annotations

import asyncio
import threading

import pytest

from infra.store.backend import Backend
from infra.store.batch import BatchPlan
from infra.store.errors import WrongExpectedVersion
from infra.store.eventstore import EventStore
from infra.store.records import Commit, StreamAppend
from infra.store.verify import verify_store
from infra.store.writer import GroupCommitWriter
from tests.integration.store_helpers import event, migrated, opened_store


class _HeldBackend:
    """A backend whose first batch waits until the test lets it go; records batch sizes."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.sizes: list[int] = []
        self.writing = threading.Event()
        self.release = threading.Event()

    def write_batch(self, commits: list[Commit]) -> BatchPlan:
        if not self.sizes:
            self.writing.set()
            self.release.wait(timeout=10)
        self.sizes.append(len(commits))
        return self.backend.write_batch(commits)


def _commit(stream: str, version: int) -> Commit:
    return Commit(parts=(StreamAppend("default", "thread", stream, version, (event(),)),))


async def test_appends_queued_during_a_batch_land_together_in_the_next(database_url: str) -> None:
    backend = migrated(database_url)
    held = _HeldBackend(backend)
    writer = GroupCommitWriter(held)  # type: ignore[arg-type]
    try:
        first = asyncio.ensure_future(writer.append(_commit("first", 0)))
        await asyncio.to_thread(held.writing.wait, 10)
        queued = [asyncio.ensure_future(writer.append(_commit(f"s{i}", 0))) for i in range(12)]
        stale = asyncio.ensure_future(writer.append(_commit("first", 0)))
        await asyncio.sleep(0)
        held.release.set()
        results = await asyncio.gather(first, *queued)
        with pytest.raises(WrongExpectedVersion):
            await stale
        assert held.sizes == [1, 13]
        assert sorted(r.last.position for r in results) == list(range(1, 14))
    finally:
        writer.stop()
        backend.close()


async def test_a_caller_cancelled_while_queued_appends_nothing(database_url: str) -> None:
    backend = migrated(database_url)
    held = _HeldBackend(backend)
    writer = GroupCommitWriter(held)  # type: ignore[arg-type]
    try:
        first = asyncio.ensure_future(writer.append(_commit("first", 0)))
        await asyncio.to_thread(held.writing.wait, 10)
        cancelled = asyncio.ensure_future(writer.append(_commit("gone", 0)))
        kept = asyncio.ensure_future(writer.append(_commit("kept", 0)))
        await asyncio.sleep(0)
        cancelled.cancel()
        held.release.set()
        await first
        assert (await kept).last.position == 2
        assert cancelled.cancelled()
        assert backend.stream_head("default", "gone") is None
        assert backend.max_position() == 2
    finally:
        writer.stop()
        backend.close()


async def test_two_writers_on_one_database_see_each_others_commits(database_url: str) -> None:
    one = await opened_store(database_url)
    other = EventStore(migrated(database_url))
    await other.open()
    try:
        for version in range(0, 6, 2):
            await one.append("default", "thread", "shared", version, [event(by="one")])
            await other.append("default", "thread", "shared", version + 1, [event(by="other")])
            await other.append("default", "thread", f"other-{version}", 0, [event()])
        with pytest.raises(WrongExpectedVersion):
            await one.append("default", "thread", "shared", 5, [event()])
        landed = await one.append("default", "thread", "shared", 6, [event(by="one")])
        assert (landed.last.seq, landed.last.position) == (7, 10)
        events = one.backend.read_all(limit=100)
        assert [e.position for e in events] == list(range(1, 11))
        assert verify_store(one.backend).ok
    finally:
        await other.close()
        await one.close()


async def test_a_writer_continues_a_stream_it_has_never_seen(database_url: str) -> None:
    first = await opened_store(database_url)
    await first.append("default", "thread", "old", 0, [event()])
    await first.close()
    store = await opened_store(database_url)
    try:
        await store.append("default", "thread", "new", 0, [event()])  # the writer knows the log
        landed = await store.append("default", "thread", "old", 1, [event()])
        assert (landed.last.seq, landed.last.position) == (2, 3)
        with pytest.raises(WrongExpectedVersion):
            await store.append("default", "thread", "old", 1, [event()])
        assert verify_store(store.backend).ok
    finally:
        await store.close()
