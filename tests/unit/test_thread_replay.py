"""Replaying a thread's events rebuilds exactly the state the live aggregate had."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.base import LedgerAggregate, fold
from domain.errors import DomainError
from domain.thread import Thread
from tests.unit.builders import T0, add_item, at, new_thread, observable, start_turn


def replay(events: list[LedgerAggregate.Event]) -> Thread:
    folded = fold(events)
    assert isinstance(folded, Thread)
    return folded


def scripted_thread() -> Thread:
    thread = new_thread(now=T0)
    start_turn(thread, "t1", now=at(1))
    add_item(thread, "i1", tool_name="exec_shell", payload={"cmd": ["ls", "-l"]}, now=at(2))
    add_item(thread, "i2", tool_name=None, kind="message", status="in_progress", now=at(2))
    thread.set_item_status(turn_id="t1", item_id="i1", status="completed", now=at(3))
    thread.end_turn(turn_id="t1", status="interrupted", error="stop", now=at(4))
    start_turn(thread, "t2", now=at(5))
    add_item(thread, "i3", turn_id="t2", tool_name="apply_patch", now=at(6))
    return thread


def test_folding_the_events_rebuilds_the_live_thread() -> None:
    live = scripted_thread()
    events = live.collect_events()

    assert observable(replay(events)) == observable(live)


def test_chaining_mutate_rebuilds_the_live_thread() -> None:
    live = scripted_thread()
    events = live.collect_events()

    rebuilt: Any = None
    for domain_event in events:
        rebuilt = domain_event.mutate(rebuilt)

    assert isinstance(rebuilt, Thread)
    assert observable(rebuilt) == observable(live)


def test_folding_nothing_gives_nothing() -> None:
    assert fold([]) is None


def test_folding_twice_gives_independent_threads() -> None:
    events = scripted_thread().collect_events()
    first = replay(events)
    second = replay(events)

    first.items["i1"].payload["cmd"] = "changed"
    first.turns["t2"].item_ids.append("x")

    assert second.items["i1"].payload == {"cmd": ["ls", "-l"]}
    assert second.turns["t2"].item_ids == ["i3"]


def test_every_prefix_folds_to_the_state_at_that_version() -> None:
    live = new_thread(now=T0)
    snapshots = {live.version: observable(live)}
    steps: list[Callable[[], object]] = [
        lambda: start_turn(live, "t1", now=at(1)),
        lambda: add_item(live, "i1", now=at(2)),
        lambda: live.set_item_status(turn_id="t1", item_id="i1", status="in_progress", now=at(3)),
        lambda: add_item(live, "i2", tool_name="WriteFile", now=at(3)),
        lambda: live.end_turn(turn_id="t1", status="interrupted", error=None, now=at(4)),
        lambda: start_turn(live, "t2", now=at(5)),
        lambda: live.end_turn(turn_id="t2", status="completed", error=None, now=at(6)),
    ]
    for step in steps:
        step()
        snapshots[live.version] = observable(live)
    events = live.collect_events()

    assert len(events) == len(snapshots) == 8
    for version, snapshot in snapshots.items():
        assert observable(replay(events[:version])) == snapshot


# property: any sequence of commands --------------------------------------------------

ITEM_STATUSES = ("queued", "in_progress", "completed", "failed", "declined", "interrupted", "x")
TURN_END_STATUSES = ("completed", "failed", "interrupted", "bogus")
TOOLS = (None, "exec_shell", "apply_patch", "web_search", "")
KINDS = (None, "message", "reasoning")
FRESH_TURN_IDS = ("t1", "t2", "t3", "t4")
FRESH_ITEM_IDS = ("i1", "i2", "i3", "i4", "i5", "i6")


def command_for(thread: Thread) -> st.SearchStrategy[tuple[Any, ...]]:
    """A command aimed mostly at what exists (the active turn, known items), sometimes not."""
    active = [thread.active_turn_id] if thread.active_turn_id else []
    turn_ids = st.sampled_from([*active, *thread.turns, *FRESH_TURN_IDS])
    item_ids = st.sampled_from([*reversed(thread.items), *FRESH_ITEM_IDS])
    return st.one_of(
        st.tuples(st.just("start_turn"), st.sampled_from(FRESH_TURN_IDS), st.booleans()),
        st.tuples(
            st.just("add_item"),
            turn_ids,
            st.sampled_from(FRESH_ITEM_IDS),
            st.sampled_from(TOOLS),
            st.sampled_from(KINDS),
            st.sampled_from((None, *ITEM_STATUSES)),
        ),
        st.tuples(st.just("set_item_status"), item_ids, st.sampled_from(ITEM_STATUSES)),
        st.tuples(
            st.just("end_turn"),
            turn_ids,
            st.sampled_from(TURN_END_STATUSES),
            st.sampled_from((None, "boom")),
        ),
    )


def apply(thread: Thread, command: tuple[Any, ...], now: datetime) -> None:
    name, *args = command
    if name == "start_turn":
        turn_id, auto_approve = args
        thread.start_turn(
            turn_id=turn_id,
            input=f"input {turn_id}",
            executor_id=None,
            auto_approve=auto_approve,
            trust_mode=False,
            now=now,
        )
    elif name == "add_item":
        turn_id, item_id, tool_name, kind, status = args
        thread.add_item(
            turn_id=turn_id,
            item_id=item_id,
            tool_name=tool_name,
            kind=kind,
            status=status,
            payload={"n": item_id, "nested": {"k": [1, 2]}},
            now=now,
        )
    elif name == "set_item_status":
        item_id, status = args
        known = thread.items.get(item_id)
        turn_id = known.turn_id if known else (thread.active_turn_id or "t1")
        thread.set_item_status(turn_id=turn_id, item_id=item_id, status=status, now=now)
    else:
        turn_id, status, error = args
        thread.end_turn(turn_id=turn_id, status=status, error=error, now=now)


@settings(max_examples=100, deadline=None, database=None)
@given(st.data())
def test_any_prefix_of_the_events_folds_to_the_state_after_that_command(
    data: st.DataObject,
) -> None:
    live = new_thread(now=T0)
    snapshots = [observable(live)]
    now = T0
    for _ in range(data.draw(st.integers(min_value=0, max_value=40), label="steps")):
        command = data.draw(command_for(live), label="command")
        now += timedelta(milliseconds=data.draw(st.integers(0, 5000), label="ms later"))
        version_before = live.version
        try:
            apply(live, command, now)
        except DomainError:
            assert live.version == version_before
            continue
        assert live.version == version_before + 1
        snapshots.append(observable(live))
    events = live.collect_events()

    assert len(events) == len(snapshots)
    for count, snapshot in enumerate(snapshots, start=1):
        assert snapshot["version"] == count
        assert observable(replay(events[:count])) == snapshot
    assert live.collect_events() == []
