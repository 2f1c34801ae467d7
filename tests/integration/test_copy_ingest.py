"""Large batches on PostgreSQL go in by COPY, each row hashed as it is sent: the same rules
and the same stored bytes as every other append."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.log_import import import_export
from infra.store.errors import IdempotencyKeyReused, WrongExpectedVersion
from infra.store.postgres import COPY_FROM, PostgresBackend
from infra.store.records import Commit, CommitResult, IdempotencyKey, NewEvent, StreamAppend
from infra.store.verify import verify_store
from tests import pg
from tests.integration.store_helpers import event, export_line


@pytest.fixture
def backend(pg_url: str) -> PostgresBackend:
    backend = PostgresBackend(pg_url)
    backend.migrate()
    return backend


def _part(stream: str, version: int | None, count: int) -> StreamAppend:
    return StreamAppend(
        "default", "thread", stream, version, tuple(event(n=i) for i in range(count))
    )


def test_a_large_commit_lands_gap_free_and_verifies(backend: PostgresBackend) -> None:
    try:
        backend.write_batch([Commit(parts=(_part("before", 0, 3),))])
        size = COPY_FROM + 50
        plan = backend.write_batch([Commit(parts=(_part("a", 0, size), _part("b", 0, 7)))])
        result = plan.outcomes[0]
        assert isinstance(result, CommitResult)
        assert [(p.first_position, p.position) for p in result.parts] == [
            (4, size + 3),
            (size + 4, size + 10),
        ]
        events = backend.read_all(limit=10_000)
        assert [e.position for e in events] == list(range(1, size + 11))
        assert [e.seq for e in backend.read_stream("default", "a")] == list(range(1, size + 1))
        assert verify_store(backend).ok
    finally:
        backend.close()


def test_a_conflicting_commit_in_a_copied_batch_fails_alone(backend: PostgresBackend) -> None:
    try:
        backend.write_batch([Commit(parts=(_part("busy", 0, 1),))])
        plan = backend.write_batch(
            [
                Commit(parts=(_part("a", 0, COPY_FROM),)),
                Commit(parts=(_part("busy", 0, 5),)),  # stale
                Commit(parts=(_part("busy", 1, 5),)),
            ]
        )
        assert isinstance(plan.outcomes[1], WrongExpectedVersion)
        assert backend.max_position() == 1 + COPY_FROM + 5
        assert [e.seq for e in backend.read_stream("default", "busy")] == list(range(1, 7))
        assert verify_store(backend).ok
    finally:
        backend.close()


def test_idempotency_keys_hold_on_the_copy_path(backend: PostgresBackend) -> None:
    key = IdempotencyKey("bulk-1", "fingerprint")
    commit = Commit(parts=(_part("a", 0, COPY_FROM),), idempotency=key, response=b"{}")
    try:
        first = backend.write_batch([commit]).outcomes[0]
        again = backend.write_batch([commit]).outcomes[0]
        assert isinstance(first, CommitResult) and isinstance(again, CommitResult)
        assert again.replayed and again.last == first.last and again.response == b"{}"
        other = Commit(
            parts=(_part("a", COPY_FROM, COPY_FROM),),
            idempotency=IdempotencyKey("bulk-1", "another request"),
        )
        assert isinstance(backend.write_batch([other]).outcomes[0], IdempotencyKeyReused)
        assert backend.max_position() == COPY_FROM
        assert backend.read_idempotency("default", "bulk-1") is not None
    finally:
        backend.close()


def test_an_import_larger_than_a_copy_batch_verifies(
    backend: PostgresBackend, tmp_path: Path
) -> None:
    export = tmp_path / "export.jsonl"
    target_name = pg.create_database()
    target = PostgresBackend(pg.url_for(target_name))
    try:
        for stream in ("x", "y", "z"):
            backend.write_batch([Commit(parts=(_part(stream, 0, COPY_FROM),))])
        export.write_bytes(b"".join(export_line(e) for e in backend.read_all(limit=10_000)))
        target.migrate()
        target.write_batch([Commit(parts=(_part("already-there", 0, 2),))])
        summary = import_export(target, export, batch=COPY_FROM * 2)
        assert summary.events == 3 * COPY_FROM
        assert (summary.first_position, summary.last_position) == (3, 3 * COPY_FROM + 2)
        assert [e.hash for e in target.read_stream("default", "y")] == [
            e.hash for e in backend.read_stream("default", "y")
        ]
        report = verify_store(target)
        assert report.ok and report.events == 3 * COPY_FROM + 2
    finally:
        target.close()
        pg.drop_database(target_name)
        backend.close()


AWKWARD_IDS = ["tab\there", "new\nline \\ back", 'quote " ☃ \U0001f600', "\\N", "cr\r"]
"""Stream ids COPY's text format must escape (``\\N`` would read as NULL unescaped)."""


def _awkward_part(stream: str, version: int, count: int, first: int = 0) -> StreamAppend:
    events = tuple(
        NewEvent(
            type=f"Kind\t{n % 3}",
            data=b'{"raw":"\\t\\n\\\\","n":%d}' % n + bytes([9, 10, 92, 0, 255]),
            metadata=b'{"actor":"t\xc3\xabster"}',
            recorded_at=datetime(2026, 1, 2, 3, 4, 5, n, tzinfo=UTC) if n % 2 else None,
        )
        for n in range(first, first + count)
    )
    return StreamAppend("default", "thread", stream, version, events)


def test_a_copied_batch_stores_exactly_what_was_appended(backend: PostgresBackend) -> None:
    # streams that existed before, several commits and parts on one stream in one batch:
    # each row's hash chains onto the one built before it, and the writer remembers the
    # new heads for the next (small, one round trip) batch
    try:
        backend.write_batch([Commit(parts=(_awkward_part(AWKWARD_IDS[0], 0, 2),))])
        commits = [
            Commit(parts=(_awkward_part(AWKWARD_IDS[0], 2, COPY_FROM, 2),)),
            Commit(
                parts=(
                    _awkward_part(AWKWARD_IDS[1], 0, 3),
                    _awkward_part(AWKWARD_IDS[2], 0, 4),
                    _awkward_part(AWKWARD_IDS[1], 3, 2, 3),
                )
            ),
            Commit(parts=(_awkward_part(AWKWARD_IDS[0], 2, 1),)),  # stale: rejected alone
            Commit(parts=(_awkward_part(AWKWARD_IDS[0], COPY_FROM + 2, 5, COPY_FROM + 2),)),
            Commit(
                parts=(_awkward_part(AWKWARD_IDS[3], 0, 2), _awkward_part(AWKWARD_IDS[4], 0, 1))
            ),
        ]
        plan = backend.write_batch(commits)
        assert isinstance(plan.outcomes[2], WrongExpectedVersion)
        assert plan.last_position == 2 + COPY_FROM + 5 + 5 + 4 + 3
        backend.write_batch([Commit(parts=(_awkward_part(AWKWARD_IDS[1], 5, 1, 5),))])

        appended = {stream: [] for stream in AWKWARD_IDS}  # type: dict[str, list[NewEvent]]
        for commit in [Commit(parts=(_awkward_part(AWKWARD_IDS[0], 0, 2),)), *commits]:
            if commit is commits[2]:
                continue
            for part in commit.parts:
                appended[part.stream_id].extend(part.events)
        appended[AWKWARD_IDS[1]].extend(_awkward_part(AWKWARD_IDS[1], 5, 1, 5).events)
        for stream, events in appended.items():
            stored = backend.read_stream("default", stream)
            assert [e.seq for e in stored] == list(range(1, len(events) + 1)), stream
            for new, row in zip(events, stored, strict=True):
                assert (row.type, row.data, row.metadata) == (new.type, new.data, new.metadata)
                if new.recorded_at is not None:
                    assert row.recorded_at == new.recorded_at
        assert [e.position for e in backend.read_all(limit=10_000)] == list(
            range(1, 2 + COPY_FROM + 5 + 5 + 4 + 3 + 1 + 1)
        )
        assert verify_store(backend).ok
    finally:
        backend.close()
