"""Executor rules: heartbeats, recoveries recorded once, and when a lease has expired."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.base import fold
from domain.executor import Executor, RecoveryKind, executor_stream_id, lease_has_expired
from domain.executor_events import ExecutorLeaseExpired, ExecutorRestarted, ExecutorShutDown
from tests.unit.builders import T0, at

LEASE = timedelta(seconds=30)


def _types(executor: Executor) -> list[str]:
    return [type(e).__name__ for e in executor.collect_events()]


def _recover(
    executor: Executor,
    kind: RecoveryKind = "restarted",
    *,
    last_seen: int = 5,
    interrupted: list[str] | None = None,
) -> bool:
    return executor.record_recovery(
        kind=kind,
        last_seen_position=last_seen,
        interrupted_thread_ids=interrupted or [],
        now=at(10),
    )


def test_an_executor_lives_on_its_own_stream_that_no_client_id_can_name() -> None:
    executor = Executor.register("rt-1", now=T0)

    assert executor.id == executor_stream_id("rt-1") == "executor/rt-1"
    assert executor.stream_type == "executor"
    assert executor.executor_id == "rt-1"


def test_heartbeats_are_always_recorded_even_after_a_shutdown() -> None:
    executor = Executor.register("rt-1", now=T0)
    executor.record_heartbeat(now=at(1))
    assert _recover(executor, "shut_down")
    assert executor.shut_down

    executor.record_heartbeat(now=at(20))

    assert _types(executor) == [
        "ExecutorRegistered",
        "ExecutorHeartbeatRecorded",
        "ExecutorShutDown",
        "ExecutorHeartbeatRecorded",
    ]
    assert executor.last_heartbeat_at == at(20)
    assert not executor.shut_down


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("restarted", ExecutorRestarted),
        ("shut_down", ExecutorShutDown),
        ("lease_expired", ExecutorLeaseExpired),
    ],
)
def test_a_recovery_records_what_it_covered_and_interrupted(
    kind: RecoveryKind, event: type
) -> None:
    executor = Executor.register("rt-1", now=T0)
    executor.collect_events()

    assert _recover(executor, kind, last_seen=7, interrupted=["thr_1"])

    [recorded] = executor.collect_events()
    assert isinstance(recorded, event)
    assert recorded.model_dump(include={"last_seen_position", "interrupted_thread_ids"}) == {
        "last_seen_position": 7,
        "interrupted_thread_ids": ["thr_1"],
    }
    assert executor.recovered_through == 7
    assert executor.last_recovery == kind


@pytest.mark.parametrize("kind", ["restarted", "shut_down", "lease_expired"])
def test_the_same_recovery_again_with_nothing_new_appends_nothing(kind: RecoveryKind) -> None:
    executor = Executor.register("rt-1", now=T0)
    assert _recover(executor, kind, last_seen=7, interrupted=["thr_1"])
    executor.collect_events()

    assert not _recover(executor, kind, last_seen=7)
    assert not _recover(executor, kind, last_seen=6)
    assert executor.collect_events() == []


def test_a_recovery_is_recorded_again_after_new_activity_or_work_or_of_another_kind() -> None:
    executor = Executor.register("rt-1", now=T0)
    assert _recover(executor, "lease_expired", last_seen=7)

    assert _recover(executor, "lease_expired", last_seen=9)  # seen since
    assert _recover(executor, "lease_expired", last_seen=9, interrupted=["thr_2"])
    assert _recover(executor, "restarted", last_seen=9)  # it announced a restart

    assert executor.recovered_through == 9
    assert _types(executor)[1:] == ["ExecutorLeaseExpired"] * 3 + ["ExecutorRestarted"]


def test_replaying_the_stream_gives_the_live_executor() -> None:
    executor = Executor.register("rt-1", now=T0)
    executor.record_heartbeat(now=at(1))
    _recover(executor, "lease_expired", last_seen=3, interrupted=["thr_1"])
    _recover(executor, "shut_down", last_seen=4)
    events = executor.collect_events()

    replayed = fold(events)

    assert isinstance(replayed, Executor)
    assert vars(replayed) == vars(executor)


NOW = at(100)


@pytest.mark.parametrize(
    ("last_seen_at", "seen", "recovered", "started_at", "expired"),
    [
        (NOW - LEASE - timedelta(milliseconds=1), 5, 0, None, True),
        (NOW - LEASE, 5, 0, None, False),  # exactly a lease ago: not yet
        (NOW - LEASE + timedelta(seconds=1), 5, 0, None, False),
        (NOW - 3 * LEASE, 5, 5, None, False),  # already recovered
        (NOW - 3 * LEASE, 5, 9, None, False),  # recovered past it
        (NOW - 3 * LEASE, 9, 5, None, True),  # seen again since the recovery
        (None, 0, 0, None, False),  # never seen
        # this Ledger instance started recently: the executor gets a full lease
        (NOW - 3 * LEASE, 5, 0, NOW - LEASE + timedelta(seconds=1), False),
        (NOW - 3 * LEASE, 5, 0, NOW - LEASE, False),
        (NOW - 3 * LEASE, 5, 0, NOW - LEASE - timedelta(seconds=1), True),
        (NOW - LEASE - timedelta(seconds=1), 5, 0, NOW - 3 * LEASE, True),
    ],
)
def test_a_lease_expires_a_full_lease_after_the_later_of_last_activity_and_start_up(
    last_seen_at: datetime | None,
    seen: int,
    recovered: int,
    started_at: datetime | None,
    expired: bool,
) -> None:
    assert (
        lease_has_expired(
            last_seen_at=last_seen_at,
            last_seen_position=seen,
            recovered_position=recovered,
            now=NOW,
            lease=LEASE,
            started_at=started_at,
        )
        is expired
    )
