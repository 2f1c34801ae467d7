"""plan_batch: the store's rules for a batch of commits, without a database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from infra.store.batch import (
    EventRow,
    StoredIdempotency,
    decide_batch,
    idempotency_keys,
    plan_batch,
    stream_keys,
)
from infra.store.errors import (
    IdempotencyKeyReused,
    StreamTypeClash,
    WrongExpectedVersion,
)
from infra.store.hashing import chain_hash
from infra.store.records import (
    GENESIS_HASH,
    AppendResult,
    Commit,
    CommitResult,
    IdempotencyKey,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    StreamHead,
)
from infra.store.rows import EVENT_COLUMNS

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
TENANT = "default"


def events(count: int, *, label: str = "e") -> tuple[NewEvent, ...]:
    return tuple(
        NewEvent(
            type="TurnStarted",
            data=f'{{"turn_id":"{label}{n}"}}'.encode(),
            recorded_at=NOW + timedelta(milliseconds=n),
        )
        for n in range(count)
    )


def commit(
    stream_id: str,
    expected_version: int | None,
    count: int = 1,
    *,
    stream_type: str = "thread",
    key: IdempotencyKey | None = None,
    response: bytes | None = None,
) -> Commit:
    return Commit(
        parts=(
            StreamAppend(
                tenant=TENANT,
                stream_type=stream_type,
                stream_id=stream_id,
                expected_version=expected_version,
                events=events(count, label=stream_id),
            ),
        ),
        idempotency=key,
        response=response,
    )


def head(version: int, hash_: str = "a" * 64, stream_type: str = "thread") -> StreamHead:
    return StreamHead(stream_type=stream_type, version=version, hash=hash_)


def test_a_wrong_expected_version_rejects_that_commit_alone() -> None:
    heads = {(TENANT, "thr_a"): head(3), (TENANT, "thr_b"): head(5)}
    batch = [commit("thr_a", 3), commit("thr_b", 4), commit("thr_c", 0, 2)]

    plan = plan_batch(batch, heads, {}, max_position=10, now=NOW)

    first, second, third = plan.outcomes
    assert isinstance(first, CommitResult)
    assert isinstance(second, WrongExpectedVersion)
    assert (second.stream_id, second.expected, second.actual) == ("thr_b", 4, 5)
    assert isinstance(third, CommitResult)
    assert [(row.stream_id, row.seq, row.position) for row in plan.rows] == [
        ("thr_a", 4, 11),
        ("thr_c", 1, 12),
        ("thr_c", 2, 13),
    ]
    assert first.parts == (AppendResult("thr_a", 4, 4, 11, 11),)
    assert third.parts == (AppendResult("thr_c", 1, 2, 12, 13),)
    assert heads[(TENANT, "thr_b")] == head(5)


def test_a_new_stream_expected_at_zero_that_exists_is_refused() -> None:
    heads = {(TENANT, "thr_a"): head(2)}

    plan = plan_batch([commit("thr_a", 0)], heads, {}, max_position=7, now=NOW)

    [outcome] = plan.outcomes
    assert isinstance(outcome, WrongExpectedVersion)
    assert "already exists" in str(outcome)
    assert plan.rows == []


def test_two_commits_on_one_stream_in_a_batch_both_land_in_order() -> None:
    heads = {(TENANT, "thr_a"): head(2)}
    batch = [commit("thr_a", 2, 2), commit("thr_a", 4, 1)]

    plan = plan_batch(batch, heads, {}, max_position=40, now=NOW)

    assert all(isinstance(outcome, CommitResult) for outcome in plan.outcomes)
    assert [(row.seq, row.position) for row in plan.rows] == [(3, 41), (4, 42), (5, 43)]
    assert plan.rows[2].prev_hash == plan.rows[1].hash
    assert heads[(TENANT, "thr_a")] == StreamHead("thread", 5, plan.rows[2].hash)


def test_a_decided_batch_builds_the_same_rows_as_they_are_asked_for() -> None:
    # the bulk path decides first and builds each row as COPY sends it
    def batch() -> list[Commit]:
        return [
            commit("thr_a", 2, 2),
            commit("thr_b", 0, 3),
            commit("thr_a", 9),
            commit("thr_a", 4),
        ]

    eager_heads = {(TENANT, "thr_a"): head(2)}
    eager = plan_batch(batch(), eager_heads, {}, max_position=40, now=NOW)
    heads = {(TENANT, "thr_a"): head(2)}

    plan = decide_batch(batch(), heads, {}, max_position=40, now=NOW)

    assert [repr(o) for o in plan.outcomes] == [repr(o) for o in eager.outcomes]
    assert isinstance(plan.outcomes[2], WrongExpectedVersion) and plan.last_position == 46
    assert plan.rows == []
    assert heads[(TENANT, "thr_a")].version == 5  # decided; its hash comes with the rows
    built = plan.rows_as_built()
    first = next(built)
    assert plan.rows == [first] == eager.rows[:1]
    assert [first, *built] == plan.rows == eager.rows
    assert heads == eager_heads


def test_second_commit_expecting_the_old_version_is_refused_after_the_first_lands() -> None:
    heads = {(TENANT, "thr_a"): head(2)}
    batch = [commit("thr_a", 2), commit("thr_a", 2)]

    plan = plan_batch(batch, heads, {}, max_position=0, now=NOW)

    assert isinstance(plan.outcomes[0], CommitResult)
    assert isinstance(plan.outcomes[1], WrongExpectedVersion)
    assert [row.seq for row in plan.rows] == [3]


def test_positions_continue_from_the_max_position_without_gaps() -> None:
    batch = [
        commit("thr_a", 0, 3),
        commit("thr_b", 99),  # refused: must not use up a position
        commit("thr_c", 0, 2),
        commit("thr_d", None, 1),
    ]

    plan = plan_batch(batch, {}, {}, max_position=1000, now=NOW)

    assert [row.position for row in plan.rows] == [1001, 1002, 1003, 1004, 1005, 1006]
    landed = [o for o in plan.outcomes if isinstance(o, CommitResult)]
    assert [(r.last.first_position, r.last.position) for r in landed] == [
        (1001, 1003),
        (1004, 1005),
        (1006, 1006),
    ]


def test_an_append_without_expected_version_lands_at_the_head() -> None:
    heads = {(TENANT, "thr_a"): head(7)}

    plan = plan_batch([commit("thr_a", None, 2)], heads, {}, max_position=3, now=NOW)

    assert [(row.seq, row.position) for row in plan.rows] == [(8, 4), (9, 5)]
    assert plan.rows[0].prev_hash == "a" * 64


def test_a_new_stream_chains_from_64_zeros() -> None:
    plan = plan_batch([commit("thr_a", 0, 3)], {}, {}, max_position=0, now=NOW)

    rows = plan.rows
    assert rows[0].prev_hash == GENESIS_HASH == "0" * 64
    assert rows[1].prev_hash == rows[0].hash
    assert rows[2].prev_hash == rows[1].hash
    assert len({row.hash for row in rows}) == 3


def test_each_row_hash_is_the_chain_hash_of_its_envelope() -> None:
    plan = plan_batch([commit("thr_a", 0, 2)], {}, {}, max_position=0, now=NOW)

    for row in plan.rows:
        assert row.hash == chain_hash(
            row.prev_hash,
            stream_id=row.stream_id,
            seq=row.seq,
            type=row.type,
            data=row.data,
            metadata=row.metadata,
            recorded_at=row.recorded_at,
        )


def test_an_existing_stream_chains_from_its_head_hash() -> None:
    heads = {(TENANT, "thr_a"): head(1, "b" * 64)}

    plan = plan_batch([commit("thr_a", 1)], heads, {}, max_position=1, now=NOW)

    assert plan.rows[0].prev_hash == "b" * 64


def test_rows_carry_the_envelope_of_their_events() -> None:
    new = NewEvent(
        type="ThreadStarted", data=b'{"title":"x"}', metadata=b'{"a":1}', class_version=3
    )
    batch = [Commit(parts=(StreamAppend(TENANT, "thread", "thr_a", 0, (new,)),), response=b"{}")]

    plan = plan_batch(batch, {}, {}, max_position=0, now=NOW)

    [row] = plan.rows
    assert isinstance(row, EventRow)
    assert (row.tenant, row.stream_type, row.stream_id, row.type, row.class_version) == (
        TENANT,
        "thread",
        "thr_a",
        "ThreadStarted",
        3,
    )
    assert (row.data, row.metadata) == (b'{"title":"x"}', b'{"a":1}')
    assert row.recorded_at == NOW  # no time of its own: the batch's clock
    assert plan.outcomes[0] == CommitResult(
        parts=(AppendResult("thr_a", 1, 1, 1, 1),), response=b"{}"
    )


def test_a_row_is_the_events_table_s_columns_in_order() -> None:
    # COPY and executemany take the rows as they are
    columns = tuple(name.strip() for name in EVENT_COLUMNS.split(","))

    assert EventRow._fields == columns
    assert tuple(f.name for f in dataclasses.fields(RecordedEvent)) == columns


def test_a_known_idempotency_key_replays_without_rows() -> None:
    key = IdempotencyKey("k-1", "fp-1")
    first_result = AppendResult("thr_a", 1, 1, 5, 5)
    known = {(TENANT, "k-1"): StoredIdempotency(TENANT, "k-1", "fp-1", first_result, b'{"r":1}')}
    heads = {(TENANT, "thr_a"): head(1)}

    plan = plan_batch([commit("thr_a", 0, key=key)], heads, known, max_position=5, now=NOW)

    assert plan.rows == []
    assert plan.idempotency_rows == []
    assert plan.outcomes == [
        CommitResult(parts=(first_result,), replayed=True, response=b'{"r":1}')
    ]


def test_a_known_idempotency_key_with_another_fingerprint_is_refused() -> None:
    known = {
        (TENANT, "k-1"): StoredIdempotency(
            TENANT, "k-1", "fp-1", AppendResult("thr_a", 1, 1, 5, 5), None
        )
    }

    plan = plan_batch(
        [commit("thr_b", 0, key=IdempotencyKey("k-1", "fp-2"))], {}, known, max_position=5, now=NOW
    )

    [outcome] = plan.outcomes
    assert isinstance(outcome, IdempotencyKeyReused)
    assert outcome.key == "k-1"
    assert plan.rows == []


def test_a_new_idempotency_key_is_recorded_and_replays_later_in_the_same_batch() -> None:
    key = IdempotencyKey("k-1", "fp-1")
    known: dict[tuple[str, str], StoredIdempotency] = {}
    batch = [
        commit("thr_a", 0, key=key, response=b'{"ok":1}'),
        commit("thr_a", 0, key=key, response=b'{"ok":2}'),
        commit("thr_b", 0, key=IdempotencyKey("k-1", "other")),
    ]

    plan = plan_batch(batch, {}, known, max_position=0, now=NOW)

    first, retry, reused = plan.outcomes
    assert isinstance(first, CommitResult)
    assert not first.replayed
    assert retry == CommitResult(parts=first.parts, replayed=True, response=b'{"ok":1}')
    assert isinstance(reused, IdempotencyKeyReused)
    assert len(plan.rows) == 1
    assert [(s.key, s.fingerprint, s.result) for s in plan.idempotency_rows] == [
        ("k-1", "fp-1", first.last)
    ]
    assert known[(TENANT, "k-1")].response == b'{"ok":1}'


def test_a_stream_id_of_another_stream_type_clashes() -> None:
    heads = {(TENANT, "shared_1"): head(1, stream_type="run")}

    plan = plan_batch(
        [commit("shared_1", 1, stream_type="thread"), commit("thr_ok", 0)],
        heads,
        {},
        max_position=9,
        now=NOW,
    )

    clash, ok = plan.outcomes
    assert isinstance(clash, StreamTypeClash)
    assert clash.stream_id == "shared_1"
    assert isinstance(ok, CommitResult)
    assert [(row.stream_id, row.position) for row in plan.rows] == [("thr_ok", 10)]


def test_a_stream_type_clash_within_one_batch_is_refused() -> None:
    plan = plan_batch(
        [commit("x_1", 0, stream_type="run"), commit("x_1", None, stream_type="thread")],
        {},
        {},
        max_position=0,
        now=NOW,
    )

    assert isinstance(plan.outcomes[0], CommitResult)
    assert isinstance(plan.outcomes[1], StreamTypeClash)
    assert len(plan.rows) == 1


def test_a_multi_part_commit_lands_whole_or_not_at_all() -> None:
    heads = {(TENANT, "thr_b"): head(4)}
    bad = Commit(
        parts=(
            StreamAppend(TENANT, "thread", "thr_a", 0, events(2)),
            StreamAppend(TENANT, "thread", "thr_b", 1, events(1)),
        )
    )
    good = Commit(
        parts=(
            StreamAppend(TENANT, "thread", "thr_a", 0, events(1)),
            StreamAppend(TENANT, "thread", "thr_b", 4, events(1)),
        )
    )

    plan = plan_batch([bad, good], heads, {}, max_position=0, now=NOW)

    assert isinstance(plan.outcomes[0], WrongExpectedVersion)
    assert isinstance(plan.outcomes[1], CommitResult)
    assert [(row.stream_id, row.seq, row.position) for row in plan.rows] == [
        ("thr_a", 1, 1),
        ("thr_b", 5, 2),
    ]
    assert plan.outcomes[1].parts == (
        AppendResult("thr_a", 1, 1, 1, 1),
        AppendResult("thr_b", 5, 5, 2, 2),
    )


def test_streams_are_keyed_by_tenant() -> None:
    heads = {("other", "thr_a"): head(9)}
    batch = [commit("thr_a", 0)]

    plan = plan_batch(batch, heads, {}, max_position=0, now=NOW)

    assert isinstance(plan.outcomes[0], CommitResult)
    assert plan.rows[0].seq == 1


def test_stream_and_idempotency_keys_of_a_batch() -> None:
    batch = [
        commit("thr_a", 0, key=IdempotencyKey("k-1", "f")),
        commit("thr_b", 0),
        commit("thr_a", 1),
    ]

    assert stream_keys(batch) == {(TENANT, "thr_a"), (TENANT, "thr_b")}
    assert idempotency_keys(batch) == {(TENANT, "k-1")}


@pytest.mark.parametrize("max_position", [0, 1, 12345])
def test_an_empty_batch_plans_nothing(max_position: int) -> None:
    plan = plan_batch([], {}, {}, max_position=max_position, now=NOW)

    assert (plan.rows, plan.idempotency_rows, plan.outcomes) == ([], [], [])
