"""Recovery of an executor's work, through the real handlers over an in-memory repository."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import pytest

from commands.executor_handlers import ExecutorHandlers
from commands.ports import CommandContext, OwnedWork
from commands.thread_commands import AddItem, SetItemStatus, StartThread, StartTurn
from commands.thread_handlers import ThreadHandlers
from domain.executor import RecoveryKind
from domain.thread import RESTART_REASON, Thread
from infra.workspace import WorkspaceRoot
from tests.unit.fake_repository import InMemoryRepository, TickingClock, context


@dataclass
class FakeReads:
    """Owned work folded straight from the repository (``last_seen`` set by the test), and
    the tail of a stream."""

    repository: InMemoryRepository
    last_seen: dict[str, int] = field(default_factory=dict)

    async def owned_work(self, tenant: str, executor_id: str) -> OwnedWork:
        owned = []
        for stream_tenant, stream_id in self.repository.streams:
            thread = await self.repository.load(stream_tenant, stream_id)
            owns = isinstance(thread, Thread) and thread.active_turn_of(executor_id) is not None
            if stream_tenant == tenant and owns:
                owned.append(stream_id)
        return OwnedWork(owned, self.last_seen.get(executor_id, 0))

    async def position_of(self, tenant: str, stream_id: str, seq: int) -> int:
        return 1000 + seq


@dataclass
class World:
    repository: InMemoryRepository
    threads: ThreadHandlers
    executors: ExecutorHandlers
    reads: FakeReads

    async def thread_with_turn(self, thread_id: str, executor_id: str) -> None:
        ctx = context()
        await self.threads.start_thread(StartThread(thread_id=thread_id), ctx)
        await self.threads.start_turn(
            thread_id, StartTurn(turn_id="t1", executor_id=executor_id), ctx
        )
        for item_id in ("done", "running", "waiting"):
            await self.threads.add_item(
                thread_id, "t1", AddItem(item_id=item_id, kind="message"), ctx
            )
        await self.threads.set_item_status(
            thread_id, "t1", "done", SetItemStatus(status="completed"), ctx
        )
        await self.threads.set_item_status(
            thread_id, "t1", "running", SetItemStatus(status="in_progress"), ctx
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    repository = InMemoryRepository()
    clock = TickingClock()
    threads = ThreadHandlers(repository, clock, WorkspaceRoot(tmp_path))
    reads = FakeReads(repository)
    executors = ExecutorHandlers(repository, threads, reads, clock, lease=timedelta(seconds=30))
    return World(repository, threads, executors, reads)


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("restarted", "ExecutorRestarted"),
        ("shut_down", "ExecutorShutDown"),
        ("lease_expired", "ExecutorLeaseExpired"),
    ],
)
async def test_recovery_interrupts_the_turns_the_executor_runs_and_no_other(
    world: World, kind: RecoveryKind, event: str
) -> None:
    await world.thread_with_turn("thr_1", "rt-1")
    await world.thread_with_turn("thr_2", "rt-2")
    world.reads.last_seen["rt-1"] = 4

    saved = await world.executors.recover("rt-1", kind, context())

    assert saved.body["interrupted_threads"] == ["thr_1"]
    assert saved.body["recorded"] is True
    thread = await world.threads.load("default", "thr_1")
    turn = thread.turns["t1"]
    assert (turn.status, turn.error) == ("interrupted", RESTART_REASON)
    assert turn.duration_ms is not None and turn.duration_ms > 0
    statuses = {i: thread.items[i].status for i in turn.item_ids}
    assert statuses == {"done": "completed", "running": "interrupted", "waiting": "interrupted"}
    assert (await world.threads.load("default", "thr_2")).turns["t1"].status == "in_progress"
    assert world.repository.types("executor/rt-1") == ["ExecutorRegistered", event]
    recorded = world.repository.events("executor/rt-1")[-1].event
    assert recorded.model_dump(include={"last_seen_position", "interrupted_thread_ids"}) == {
        "last_seen_position": 4,
        "interrupted_thread_ids": ["thr_1"],
    }


async def test_a_second_recovery_appends_nothing_and_answers_with_the_stream_as_it_is(
    world: World,
) -> None:
    await world.thread_with_turn("thr_1", "rt-1")
    first = await world.executors.recover("rt-1", "restarted", context())
    appended = world.repository.position

    again = await world.executors.recover("rt-1", "restarted", context())

    assert world.repository.position == appended
    assert again.body["interrupted_threads"] == []
    assert again.body["recorded"] is False
    assert (again.seq, again.body["seq"]) == (first.seq, first.seq)


async def test_interruptions_renew_no_lease_and_carry_no_request_idempotency_key(
    world: World,
) -> None:
    await world.thread_with_turn("thr_1", "rt-1")
    await world.thread_with_turn("thr_2", "rt-1")
    sent = replace(context(), executor_id="rt-1")

    await world.executors.recover("rt-1", "restarted", sent)

    for stream in ("thr_1", "thr_2", "executor/rt-1"):
        last = world.repository.events(stream)[-1]
        assert last.context.executor_id is None
        assert "executor_id" not in last.context.metadata()
        assert last.context.idempotency is None or stream == "executor/rt-1"


async def test_a_lease_expiry_judged_on_stale_activity_recovers_nothing(world: World) -> None:
    await world.thread_with_turn("thr_1", "rt-1")
    world.reads.last_seen["rt-1"] = 9  # the executor was seen again after the judgement

    saved = await world.executors.recover("rt-1", "lease_expired", context(), judged_at_position=5)

    assert saved.body == {
        "executor_id": "rt-1",
        "interrupted_threads": [],
        "recorded": False,
        "seq": 0,
        "position": 0,
    }
    assert (await world.threads.load("default", "thr_1")).turns["t1"].status == "in_progress"
    assert world.repository.types("executor/rt-1") == []


async def test_a_heartbeat_registers_the_executor_and_names_when_its_lease_runs_out(
    world: World,
) -> None:
    first = await world.executors.heartbeat("rt-1", context())
    second = await world.executors.heartbeat("rt-1", context())

    assert world.repository.types("executor/rt-1") == [
        "ExecutorRegistered",
        "ExecutorHeartbeatRecorded",
        "ExecutorHeartbeatRecorded",
    ]
    assert (first.seq, second.seq) == (2, 3)
    assert second.body["lease_expires_at"] > first.body["lease_expires_at"]
    assert second.body["lease_expires_at"].endswith("Z")


def test_a_command_names_its_executor_in_metadata_only_when_it_has_one() -> None:
    plain = CommandContext(tenant="default", actor="a", correlation_id="c")

    assert "executor_id" not in plain.metadata()
    assert replace(plain, executor_id="rt-1").metadata()["executor_id"] == "rt-1"
