"""The aggregate cache: a command reads only newer events, stays correct when another
instance appends, and never caches what was refused or lost a race."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from commands.ports import CommandContext, ConcurrencyConflict
from commands.thread_commands import AddItem, CompleteTurn, StartThread, StartTurn
from domain.errors import LifecycleConflict
from domain.thread import Thread
from infra.bootstrap import Ledger
from infra.config import Settings
from queries.thread_view import thread_view

CTX = CommandContext(tenant="default", actor="test", correlation_id="c")


@pytest.fixture
async def two_instances(database_url: str) -> AsyncIterator[tuple[Ledger, Ledger]]:
    first, second = (
        Ledger(Settings(database_url=database_url)),
        Ledger(Settings(database_url=database_url)),
    )
    await first.start(policies=False)
    await second.start(policies=False)
    try:
        yield first, second
    finally:
        await second.stop()
        await first.stop()


async def _thread(ledger: Ledger, thread_id: str) -> Thread:
    loaded = await ledger.repository.load("default", thread_id)
    assert isinstance(loaded, Thread)
    return loaded


async def test_cached_thread_catches_up_with_another_instances_appends(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, b = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    await _thread(a, "thr_1")  # cached in a at version 2
    for n in range(3):
        await b.threads.add_item("thr_1", "t1", AddItem(item_id=f"i{n}", kind="message"), CTX)
    seen_by_a = await _thread(a, "thr_1")
    assert seen_by_a.version == 5
    full = a.repository.fold_records(await a.store.read_stream("default", "thr_1"))
    assert isinstance(full, Thread)
    assert thread_view(seen_by_a) == thread_view(full)
    await a.threads.add_item("thr_1", "t1", AddItem(item_id="i9", kind="message"), CTX)
    assert (await _thread(b, "thr_1")).version == 6


async def test_a_stale_cached_copy_cannot_append_over_newer_events(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, b = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    stale = await a.repository.checkout("default", "thr_1")
    assert isinstance(stale, Thread)
    await b.threads.add_item("thr_1", "t1", AddItem(item_id="i1", kind="message"), CTX)
    stale.add_item(
        turn_id="t1",
        item_id="i2",
        tool_name=None,
        kind="message",
        status=None,
        payload={},
        now=stale.modified_on,
    )
    with pytest.raises(ConcurrencyConflict):
        await a.repository.save(stale, CTX, {})
    a.repository.give_back("default", stale)
    fresh = await _thread(a, "thr_1")
    assert fresh.version == 3 and "i2" not in fresh.items


async def test_a_refused_command_leaves_the_cache_as_it_was(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, _ = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    with pytest.raises(LifecycleConflict):
        await a.threads.start_turn("thr_1", StartTurn(turn_id="t2"), CTX)
    loaded = await _thread(a, "thr_1")
    assert loaded.version == 2 and list(loaded.turns) == ["t1"]


async def test_a_checked_out_aggregate_is_nobody_elses_and_is_dropped_if_changed_unsaved(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, _ = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    cached = await _thread(a, "thr_1")
    owned = await a.repository.checkout("default", "thr_1")
    assert owned is cached and not a.repository.is_cached("default", "thr_1")
    assert isinstance(owned, Thread)
    owned.end_turn(turn_id="t1", status="completed", error=None, now=owned.modified_on)
    assert (await _thread(a, "thr_1")).turns["t1"].status == "in_progress"  # read elsewhere
    a.repository.give_back("default", owned)  # changed and not saved: discarded
    again = await _thread(a, "thr_1")
    assert again is not owned and again.turns["t1"].status == "in_progress"


async def test_an_unchanged_checkout_goes_back_to_the_cache_as_it_was(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, _ = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    owned = await a.repository.checkout("default", "thr_1")
    assert owned is not None
    a.repository.give_back("default", owned)
    assert a.repository.is_cached("default", "thr_1")
    assert await a.repository.checkout("default", "thr_1") is owned


async def test_a_command_on_a_cached_thread_reads_no_events(
    two_instances: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    reads: list[str] = []
    read_stream = a.store.read_stream

    async def counted(tenant: str, stream_id: str, **kwargs: object) -> object:
        reads.append(stream_id)
        return await read_stream(tenant, stream_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(a.store, "read_stream", counted)
    await a.threads.add_item("thr_1", "t1", AddItem(item_id="i1", kind="message"), CTX)
    assert reads == []  # the append at the cached version is the check
    assert (await _thread(a, "thr_1")).version == 3


async def test_a_command_refused_on_a_stale_cached_thread_is_decided_on_the_stored_one(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, b = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)  # cached in a: t1 active
    await b.threads.complete_turn("thr_1", "t1", CompleteTurn(status="completed"), CTX)
    saved = await a.threads.start_turn("thr_1", StartTurn(turn_id="t2"), CTX)
    assert saved.seq == 4
    with pytest.raises(LifecycleConflict):  # refused on the stored state too: refused
        await a.threads.start_turn("thr_1", StartTurn(turn_id="t3"), CTX)


async def test_a_command_on_a_stale_cached_thread_lands_after_the_other_instances_events(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, b = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    await b.threads.add_item("thr_1", "t1", AddItem(item_id="i1", kind="message"), CTX)
    saved = await a.threads.add_item("thr_1", "t1", AddItem(item_id="i2", kind="message"), CTX)
    assert saved.seq == 4
    assert list((await _thread(b, "thr_1")).items) == ["i1", "i2"]


async def test_a_read_never_shows_or_advances_an_aggregate_a_command_took_meanwhile(
    two_instances: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_instances
    await a.threads.start_thread(StartThread(thread_id="thr_1"), CTX)
    await a.threads.start_turn("thr_1", StartTurn(turn_id="t1"), CTX)
    cached = await _thread(a, "thr_1")
    await b.threads.add_item("thr_1", "t1", AddItem(item_id="i1", kind="message"), CTX)
    read_stream = a.store.read_stream
    taken: list[Thread] = []

    async def command_meanwhile(tenant: str, stream_id: str, **kwargs: object) -> object:
        found = await read_stream(tenant, stream_id, **kwargs)  # type: ignore[arg-type]
        if not taken:  # the reader's read: a command takes the thread and decides on it
            owned = await a.repository.checkout("default", "thr_1", verify=False)
            assert isinstance(owned, Thread)
            owned.end_turn(turn_id="t1", status="completed", error=None, now=owned.modified_on)
            taken.append(owned)
        return found

    monkeypatch.setattr(a.store, "read_stream", command_meanwhile)
    seen = await _thread(a, "thr_1")
    assert seen is not cached and taken == [cached]
    assert seen.version == 3 and "i1" in seen.items  # b's item, from the store
    assert seen.turns["t1"].status == "in_progress"  # not the undecided command's change
    assert cached.version == 3  # the command's own decision, nothing folded into it


async def test_saving_several_aggregates_lands_all_or_none_and_caches_only_what_landed(
    two_instances: tuple[Ledger, Ledger],
) -> None:
    a, b = two_instances
    for thread_id in ("thr_1", "thr_2"):
        await a.threads.start_thread(StartThread(thread_id=thread_id), CTX)
        await a.threads.start_turn(thread_id, StartTurn(turn_id="t1"), CTX)

    async def both_checked_out() -> list[Thread]:
        threads = []
        for thread_id in ("thr_1", "thr_2"):
            thread = await a.repository.checkout("default", thread_id)
            assert isinstance(thread, Thread)
            thread.end_turn(turn_id="t1", status="completed", error=None, now=thread.modified_on)
            threads.append(thread)
        return threads

    stale = await both_checked_out()
    await b.threads.add_item("thr_2", "t1", AddItem(item_id="i1", kind="message"), CTX)
    with pytest.raises(ConcurrencyConflict):
        await a.repository.save_all(list(stale), CTX, {"done": 2})
    for thread in stale:
        a.repository.give_back("default", thread)
    assert len(await a.store.read_stream("default", "thr_1")) == 2  # nothing of the commit
    assert len(await a.store.read_stream("default", "thr_2")) == 3
    assert not a.repository.is_cached("default", "thr_1")  # changed, not stored: dropped

    saved = await a.repository.save_all(await both_checked_out(), CTX, {"done": 2})
    first = await a.store.read_stream("default", "thr_1")
    second = await a.store.read_stream("default", "thr_2")
    assert (saved.seq, saved.position, saved.body) == (4, second[-1].position, {"done": 2})
    assert second[-1].position == first[-1].position + 1  # one commit: adjacent positions
    assert a.repository.is_cached("default", "thr_1") and a.repository.is_cached("default", "thr_2")
    for thread_id in ("thr_1", "thr_2"):
        cached = await _thread(a, thread_id)
        full = a.repository.fold_records(await a.store.read_stream("default", thread_id))
        assert isinstance(full, Thread) and thread_view(cached) == thread_view(full)
