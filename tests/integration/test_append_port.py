"""The append port on real PostgreSQL and real SQLite files."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from infra.store.errors import IdempotencyKeyReused, StreamTypeClash, WrongExpectedVersion
from infra.store.hashing import chain_hash
from infra.store.records import GENESIS_HASH, IdempotencyKey
from infra.store.verify import verify_store
from tests.integration.store_helpers import event, migrated, opened_store

ROOT = Path(__file__).resolve().parents[2]


async def test_append_returns_seq_and_position_and_reads_back(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        first = await store.append("default", "thread", "thr_1", 0, [event(a=1), event(b=2)])
        assert (first.last.first_seq, first.last.seq, first.last.position) == (1, 2, 2)
        second = await store.append("default", "thread", "thr_1", 2, [event(c=3)])
        assert (second.last.seq, second.last.position) == (3, 3)
        events = await store.read_stream("default", "thr_1")
        assert [e.seq for e in events] == [1, 2, 3]
        assert [e.data for e in events] == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    finally:
        await store.close()


async def test_stale_expected_version_conflicts_and_writes_nothing(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        await store.append("default", "thread", "thr_1", 0, [event()])
        with pytest.raises(WrongExpectedVersion):
            await store.append("default", "thread", "thr_1", 0, [event()])
        with pytest.raises(WrongExpectedVersion):
            await store.append("default", "thread", "thr_1", 5, [event()])
        assert await store.max_position() == 1
        assert len(await store.read_stream("default", "thr_1")) == 1
    finally:
        await store.close()


async def test_an_id_is_one_stream_whatever_its_type(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        await store.append("default", "thread", "x_1", 0, [event()])
        with pytest.raises(StreamTypeClash):
            await store.append("default", "run", "x_1", None, [event()])
        other_tenant = await store.append("other", "run", "x_1", 0, [event()])
        assert other_tenant.last.seq == 1
    finally:
        await store.close()


async def test_idempotent_retry_returns_first_result_and_appends_nothing(
    database_url: str,
) -> None:
    store = await opened_store(database_url)
    try:
        key = IdempotencyKey("retry-1", "fingerprint-a")
        first = await store.append("default", "thread", "thr_1", 0, [event()], key, response=b"{}")
        again = await store.append("default", "thread", "thr_1", 0, [event()], key)
        assert again.replayed and not first.replayed
        assert again.last == first.last
        assert again.response == b"{}"
        assert await store.max_position() == 1
        with pytest.raises(IdempotencyKeyReused):
            await store.append(
                "default", "thread", "thr_1", 1, [event()], IdempotencyKey("retry-1", "other")
            )
        assert await store.max_position() == 1
    finally:
        await store.close()


async def test_concurrent_same_key_appends_once(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        key = IdempotencyKey("k", "f")
        results = await asyncio.gather(
            *[store.append("default", "thread", "thr_1", None, [event()], key) for _ in range(10)]
        )
        assert sum(not r.replayed for r in results) == 1
        assert {r.last.position for r in results} == {1}
        assert await store.max_position() == 1
    finally:
        await store.close()


async def test_one_conflicting_commit_in_a_batch_fails_alone(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        await store.append("default", "thread", "busy", 0, [event()])
        # Submitted together, these land in one batch of the group-commit writer.
        outcomes = await asyncio.gather(
            store.append("default", "thread", "a", 0, [event()]),
            store.append("default", "thread", "busy", 0, [event()]),  # stale: conflicts
            store.append("default", "thread", "b", 0, [event()]),
            store.append("default", "thread", "busy", 1, [event()]),
            store.append("default", "thread", "busy", 2, [event()]),  # after the one above
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], WrongExpectedVersion)
        landed = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(landed) == 4
        assert await store.max_position() == 5
        assert [e.seq for e in await store.read_stream("default", "busy")] == [1, 2, 3]
    finally:
        await store.close()


async def test_hash_chain_links_every_event_of_a_stream(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        for version in range(5):
            await store.append("default", "thread", "thr_1", version, [event(n=version)])
        events = await store.read_stream("default", "thr_1")
        previous = GENESIS_HASH
        for stored in events:
            assert stored.prev_hash == previous
            assert stored.hash == chain_hash(
                previous,
                stream_id=stored.stream_id,
                seq=stored.seq,
                type=stored.type,
                data=stored.data,
                metadata=stored.metadata,
                recorded_at=stored.recorded_at,
            )
            previous = stored.hash
        assert verify_store(store.backend).ok
    finally:
        await store.close()


def test_positions_are_gap_free_across_two_writing_processes(database_url: str) -> None:
    migrated(database_url).close()
    count = 300
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.append_worker",
                database_url,
                name,
                str(count),
            ],
            cwd=ROOT,
        )
        for name in ("p1", "p2")
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    backend = migrated(database_url)
    try:
        events = backend.read_all(limit=10 * count)
        assert [e.position for e in events] == list(range(1, 2 * count + 1))
        assert backend.max_position() == 2 * count
        shared = backend.read_stream("default", "shared")
        assert [e.seq for e in shared] == list(range(1, len(shared) + 1))
        assert verify_store(backend).ok
    finally:
        backend.close()


async def test_idempotency_keys_are_forgotten_after_their_retention(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        key = IdempotencyKey("old", "f")
        first = await store.append("default", "thread", "thr_1", 0, [event()], key)
        assert store.backend.purge_idempotency(3600) == 0  # younger than an hour: kept
        assert (await store.append("default", "thread", "thr_1", 0, [event()], key)).replayed
        await asyncio.sleep(0.05)
        assert store.backend.purge_idempotency(0.01) == 1
        again = await store.append("default", "thread", "thr_1", 1, [event()], key)
        assert not again.replayed and again.last.seq == first.last.seq + 1
    finally:
        await store.close()
