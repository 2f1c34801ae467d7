"""Snapshots: loading from one and folding the rest equals folding the whole stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from commands.ports import CommandContext
from commands.thread_commands import (
    AddItem,
    CompleteTurn,
    RecordUsage,
    RequestApproval,
    SetItemStatus,
    StartThread,
    StartTurn,
)
from domain.thread import Thread
from infra.bootstrap import Ledger
from infra.config import Settings
from infra.projection_store import projection_transaction
from infra.snapshots import SNAPSHOT_VERSION

CTX = CommandContext(tenant="default", actor="test", correlation_id="c")
EVERY = 3


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    service = Ledger(Settings(database_url=database_url, snapshot_every=EVERY))
    await service.start(policies=False)
    try:
        yield service
    finally:
        await service.stop()


async def _history(ledger: Ledger) -> int:
    h = ledger.threads
    await h.start_thread(StartThread(thread_id="thr_1", title="snap"), CTX)
    for t in range(4):
        turn = f"t{t}"
        await h.start_turn("thr_1", StartTurn(turn_id=turn, input=f"in {t}"), CTX)
        for i in range(3):
            item = f"i{t}{i}"
            await h.add_item("thr_1", turn, AddItem(item_id=item, tool_name="exec_shell"), CTX)
            await h.set_item_status("thr_1", turn, item, SetItemStatus(status="completed"), CTX)
        await h.request_approval(
            "thr_1", RequestApproval(approval_id=f"a{t}", turn_id=turn, approval_key="k"), CTX
        )
        await h.record_usage(
            "thr_1", turn, RecordUsage(input_tokens=10 * t, output_tokens=t, model="m"), CTX
        )
        await h.complete_turn("thr_1", turn, CompleteTurn(status="completed"), CTX)
    await ledger.snapshots.drain()
    return (await ledger.store.stream_head("default", "thr_1")).version  # type: ignore[union-attr]


def _snapshot_seqs(ledger: Ledger) -> list[int]:
    with projection_transaction(ledger.backend) as session:
        rows = session.fetchall("SELECT seq FROM snapshots WHERE stream_id = %s", ("thr_1",))
    return sorted(int(r[0]) for r in rows)


def _due_seqs(ledger: Ledger, last: int) -> list[int]:
    """Where snapshots belong in a history of one-event commands."""
    return [seq for seq in range(1, last + 1) if ledger.snapshots.due("thr_1", seq, seq - 1)]


async def test_time_travel_from_a_snapshot_equals_a_full_fold_at_every_seq(
    ledger: Ledger,
) -> None:
    last = await _history(ledger)
    seqs = _snapshot_seqs(ledger)
    assert seqs and seqs == _due_seqs(ledger, last), seqs
    records = await ledger.store.read_stream("default", "thr_1")
    for seq in range(1, last + 1):
        from_snapshot = await ledger.repository.load("default", "thr_1", upto_seq=seq)
        full = ledger.repository.fold_records(records[:seq])
        assert isinstance(from_snapshot, Thread) and isinstance(full, Thread)
        assert vars(from_snapshot) == vars(full), f"seq {seq}"


async def test_a_cold_load_starts_from_the_latest_snapshot(database_url: str) -> None:
    writer = Ledger(Settings(database_url=database_url, snapshot_every=EVERY))
    await writer.start(policies=False)
    try:
        last = await _history(writer)
    finally:
        await writer.stop()
    reader = Ledger(Settings(database_url=database_url, snapshot_every=EVERY))
    await reader.start(policies=False)
    try:
        snapshot = await reader.snapshots.latest("default", "thr_1", None)
        assert snapshot is not None and snapshot.version == _due_seqs(reader, last)[-1]
        cold = await reader.repository.load("default", "thr_1")
        full = reader.repository.fold_records(await reader.store.read_stream("default", "thr_1"))
        assert cold is not None and vars(cold) == vars(full)
    finally:
        await reader.stop()


async def test_a_snapshot_of_another_state_version_is_ignored(ledger: Ledger) -> None:
    await _history(ledger)
    with projection_transaction(ledger.backend) as session:
        session.execute(
            "UPDATE snapshots SET class_version = %s, state = %s",
            (SNAPSHOT_VERSION + 1, b"not json"),
        )
    assert await ledger.snapshots.latest("default", "thr_1", None) is None
    loaded = await ledger.repository.load("default", "thr_1", upto_seq=7)
    full = ledger.repository.fold_records((await ledger.store.read_stream("default", "thr_1"))[:7])
    assert loaded is not None and vars(loaded) == vars(full)
