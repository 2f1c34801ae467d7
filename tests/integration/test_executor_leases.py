"""Executor leases on real PostgreSQL and SQLite: the read model, recovery and lease expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commands.executor_handlers import ExecutorHandlers
from commands.ports import CommandContext
from commands.thread_commands import StartThread, StartTurn
from commands.thread_handlers import ThreadHandlers
from infra.bootstrap import Ledger
from infra.config import Settings
from infra.policies import LeaseExpiryPolicy
from infra.projection_runner import ProjectionRunner
from infra.workspace import WorkspaceRoot
from projections.executor_leases import ExecutorLeases

LEASE = timedelta(seconds=30)


def _context(executor_id: str | None = None) -> CommandContext:
    return CommandContext(
        tenant="default", actor="test", correlation_id="c", executor_id=executor_id
    )


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    service = Ledger(Settings(database_url=database_url, executor_lease_ms=30_000))
    await service.start(policies=False)
    try:
        yield service
    finally:
        await service.stop()


async def _leases(ledger: Ledger) -> dict[str, tuple[int, int, bool]]:
    """executor id -> (last_seen_position, recovered_position, seen at all)."""
    await ledger.executor_reads.caught_up()
    rows = await ledger.store.fetch(
        "SELECT executor_id, last_seen_position, recovered_position, last_seen_at"
        " FROM executor_leases WHERE tenant = %s",
        ["default"],
    )
    return {row[0]: (int(row[1]), int(row[2]), row[3] is not None) for row in rows}


async def _turn(ledger: Ledger, thread_id: str, owner: str, sender: str | None) -> int:
    await ledger.threads.start_thread(StartThread(thread_id=thread_id), _context())
    saved = await ledger.threads.start_turn(
        thread_id, StartTurn(turn_id="t1", executor_id=owner), _context(sender)
    )
    return saved.position


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Handlers:
    threads: ThreadHandlers
    executors: ExecutorHandlers
    policy: LeaseExpiryPolicy


def _on_clock(ledger: Ledger, clock: Clock) -> Handlers:
    """The ledger's handlers and lease policy, deciding on ``clock``'s time."""
    threads = ThreadHandlers(ledger.repository, clock, WorkspaceRoot(Path(".")))
    executors = ExecutorHandlers(ledger.repository, threads, ledger.executor_reads, clock, LEASE)
    policy = LeaseExpiryPolicy(ledger.store, ledger.executor_reads, executors, clock, LEASE)
    return Handlers(threads, executors, policy)


async def test_commands_heartbeats_and_turns_renew_leases_and_recoveries_cover_them(
    ledger: Ledger,
) -> None:
    started = await _turn(ledger, "thr_1", owner="rt-1", sender="rt-1")
    named = await _turn(ledger, "thr_2", owner="rt-3", sender="router")
    beat = await ledger.executors.heartbeat("rt-2", _context("rt-2"))

    assert await _leases(ledger) == {
        "rt-1": (started, 0, True),
        "rt-2": (beat.position, 0, True),
        "rt-3": (named, 0, True),
        "router": (named, 0, True),
    }

    restarted = await ledger.executors.recover("rt-1", "restarted", _context("rt-1"))

    assert restarted.body["interrupted_threads"] == ["thr_1"]
    leases = await _leases(ledger)
    assert leases["rt-1"] == (started, started, True)  # the recovery renewed nothing
    assert leases["rt-3"] == (named, 0, True)


async def test_a_recovery_for_an_executor_never_seen_is_recorded_without_a_lease(
    ledger: Ledger,
) -> None:
    saved = await ledger.executors.recover("rt-9", "shut_down", _context())

    assert saved.body["recorded"] is True
    assert await _leases(ledger) == {"rt-9": (0, 0, False)}


async def test_the_policy_expires_a_silent_executor_once_and_a_live_one_never(
    ledger: Ledger,
) -> None:
    clock = Clock()
    handlers = _on_clock(ledger, clock)
    for thread_id, executor_id in (("thr_1", "rt-1"), ("thr_2", "rt-2")):
        await handlers.threads.start_thread(StartThread(thread_id=thread_id), _context())
        turn = StartTurn(turn_id="t1", executor_id=executor_id)
        await handlers.threads.start_turn(thread_id, turn, _context(executor_id))
    clock.now += LEASE * 2 / 3
    await handlers.executors.heartbeat("rt-2", _context("rt-2"))
    clock.now += LEASE * 2 / 3  # rt-1 silent for longer than a lease, rt-2 not

    in_grace = await handlers.policy.run_once(started_at=clock.now - LEASE / 2)
    [recovery] = await handlers.policy.run_once(started_at=None)
    head = await ledger.store.max_position()
    again = await handlers.policy.run_once(started_at=None)

    assert in_grace == []
    assert (recovery.executor_id, recovery.interrupted_threads) == ("rt-1", ["thr_1"])
    assert recovery.recorded
    assert again == []
    assert await ledger.store.max_position() == head
    thr_1 = await ledger.threads.load("default", "thr_1")
    thr_2 = await ledger.threads.load("default", "thr_2")
    assert thr_1.turns["t1"].status == "interrupted"
    assert thr_1.turns["t1"].duration_ms == LEASE * 4 / 3 // timedelta(milliseconds=1)
    assert thr_2.turns["t1"].status == "in_progress"

    clock.now += LEASE  # now rt-2 has been silent for longer than a lease too
    [late] = await handlers.policy.run_once(started_at=None)
    assert (late.executor_id, late.interrupted_threads) == ("rt-2", ["thr_2"])


async def test_a_recovery_applied_twice_appends_nothing(ledger: Ledger) -> None:
    await _turn(ledger, "thr_1", owner="rt-1", sender="rt-1")
    first = await ledger.executors.recover("rt-1", "restarted", _context("rt-1"))
    head = await ledger.store.max_position()

    second = await ledger.executors.recover("rt-1", "restarted", _context("rt-1"))

    assert await ledger.store.max_position() == head
    assert (second.seq, second.position) == (first.seq, first.position)
    assert second.body["interrupted_threads"] == []


async def test_rebuilding_the_leases_gives_the_live_rows(ledger: Ledger) -> None:
    await _turn(ledger, "thr_1", owner="rt-1", sender="rt-1")
    await ledger.executors.heartbeat("rt-2", _context("rt-2"))
    await ledger.executors.recover("rt-1", "lease_expired", _context())
    live = await _leases(ledger)

    ledger.projections.stop()
    ProjectionRunner(ledger.backend, ExecutorLeases()).rebuild()

    assert await _leases(ledger) == live


async def test_an_executor_id_in_the_header_lands_in_event_metadata(ledger: Ledger) -> None:
    await ledger.threads.start_thread(StartThread(thread_id="thr_1"), _context("rt-1"))
    await ledger.threads.start_thread(StartThread(thread_id="thr_2"), _context())

    events = await ledger.store.read_all()

    assert [b'"executor_id":"rt-1"' in e.metadata for e in events] == [True, False]
