"""Thread aggregate rules: what each command may do, and what it must refuse."""

from __future__ import annotations

import pytest

from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from domain.thread import Thread
from domain.thread_events import (
    ItemAdded,
    ItemStatusChanged,
    ThreadStarted,
    TurnCompleted,
    TurnFailed,
    TurnInterrupted,
    TurnStarted,
)
from tests.unit.builders import T0, add_item, at, new_thread, start_turn


def event_types(thread: Thread) -> list[type]:
    """The classes (as declared in domain.thread_events) of the events still pending."""
    declared = (
        ThreadStarted,
        TurnStarted,
        ItemAdded,
        ItemStatusChanged,
        TurnCompleted,
        TurnFailed,
        TurnInterrupted,
    )
    found = []
    for pending in thread.collect_events():
        found.append(next(cls for cls in declared if isinstance(pending, cls)))
    return found


@pytest.fixture
def thread() -> Thread:
    return new_thread()


@pytest.fixture
def thread_with_turn(thread: Thread) -> Thread:
    start_turn(thread, "t1", now=at(1))
    return thread


# starting -----------------------------------------------------------------------------


def test_starting_a_thread_records_thread_started_and_leaves_it_idle() -> None:
    thread = Thread(id="thr_1", workspace="/w", title="demo", metadata={"k": "v"}, timestamp=T0)

    events = thread.collect_events()

    assert len(events) == 1
    assert isinstance(events[0], ThreadStarted)
    assert events[0].originator_id == "thr_1"
    assert events[0].originator_version == 1
    assert events[0].timestamp == T0
    assert (events[0].workspace, events[0].title, events[0].metadata) == ("/w", "demo", {"k": "v"})
    assert thread.thread_id == "thr_1"
    assert thread.version == 1
    assert thread.status == "idle"
    assert thread.turns == {}
    assert thread.items == {}
    assert thread.created_on == T0


def test_starting_a_turn_makes_the_thread_active(thread: Thread) -> None:
    thread.start_turn(
        turn_id="t1",
        input="fix the bug",
        executor_id="rt-1",
        auto_approve=True,
        trust_mode=True,
        now=at(5),
    )

    assert thread.status == "active"
    assert thread.active_turn_id == "t1"
    turn = thread.turn("t1")
    assert turn.status == "in_progress"
    assert turn.started_at == at(5)
    assert (turn.input, turn.executor_id, turn.auto_approve, turn.trust_mode) == (
        "fix the bug",
        "rt-1",
        True,
        True,
    )
    assert turn.ended_at is None
    assert turn.duration_ms is None
    assert event_types(thread) == [ThreadStarted, TurnStarted]


def test_second_turn_while_one_is_active_is_refused(thread_with_turn: Thread) -> None:
    with pytest.raises(LifecycleConflict) as refused:
        start_turn(thread_with_turn, "t2", now=at(2))

    assert refused.value.details == {"active_turn_id": "t1"}
    assert "t2" not in thread_with_turn.turns
    assert thread_with_turn.active_turn_id == "t1"
    assert thread_with_turn.version == 2


def test_refused_command_leaves_nothing_pending(thread_with_turn: Thread) -> None:
    with pytest.raises(LifecycleConflict):
        start_turn(thread_with_turn, "t2", now=at(2))

    assert event_types(thread_with_turn) == [ThreadStarted, TurnStarted]
    assert thread_with_turn.collect_events() == []


def test_every_kind_of_refusal_leaves_only_the_events_of_successful_calls(
    thread_with_turn: Thread,
) -> None:
    add_item(thread_with_turn, "i1")
    refusals = [
        lambda: start_turn(thread_with_turn, "t2"),
        lambda: add_item(thread_with_turn, "i1"),
        lambda: add_item(thread_with_turn, "i2", tool_name=None, kind=None),
        lambda: add_item(thread_with_turn, "i3", turn_id="nope"),
        lambda: thread_with_turn.set_item_status(
            turn_id="t1", item_id="i1", status="queued", now=at(3)
        ),
        lambda: thread_with_turn.set_item_status(
            turn_id="t1", item_id="i1", status="bogus", now=at(3)
        ),
        lambda: thread_with_turn.end_turn(turn_id="t1", status="bogus", error=None, now=at(3)),
    ]
    for refusal in refusals:
        with pytest.raises((InvalidCommand, LifecycleConflict, NotFound)):
            refusal()

    assert event_types(thread_with_turn) == [ThreadStarted, TurnStarted, ItemAdded]
    assert thread_with_turn.version == 3
    assert list(thread_with_turn.items) == ["i1"]


def test_a_turn_id_already_used_in_the_thread_is_refused(thread_with_turn: Thread) -> None:
    thread_with_turn.end_turn(turn_id="t1", status="completed", error=None, now=at(2))

    with pytest.raises(LifecycleConflict):
        start_turn(thread_with_turn, "t1", now=at(3))

    assert thread_with_turn.status == "idle"
    assert thread_with_turn.turn("t1").status == "completed"


def test_a_new_turn_may_start_after_the_previous_one_ended(thread_with_turn: Thread) -> None:
    thread_with_turn.end_turn(turn_id="t1", status="failed", error="boom", now=at(2))

    start_turn(thread_with_turn, "t2", now=at(3))

    assert thread_with_turn.active_turn_id == "t2"
    assert list(thread_with_turn.turns) == ["t1", "t2"]


def test_looking_up_an_unknown_turn_is_not_found(thread: Thread) -> None:
    with pytest.raises(NotFound) as missing:
        thread.turn("nope")
    assert missing.value.details == {"turn_id": "nope"}


# items --------------------------------------------------------------------------------


def test_item_is_added_to_the_active_turn(thread_with_turn: Thread) -> None:
    kind = add_item(
        thread_with_turn, "i1", tool_name="exec_shell", payload={"cmd": "ls"}, now=at(2)
    )

    assert kind == "command_execution"
    item = thread_with_turn.item("t1", "i1")
    assert (item.turn_id, item.kind, item.tool_name, item.payload) == (
        "t1",
        "command_execution",
        "exec_shell",
        {"cmd": "ls"},
    )
    assert item.created_at == item.updated_at == at(2)
    assert thread_with_turn.turn("t1").item_ids == ["i1"]


def test_item_on_a_completed_turn_is_refused(thread_with_turn: Thread) -> None:
    thread_with_turn.end_turn(turn_id="t1", status="completed", error=None, now=at(2))

    with pytest.raises(LifecycleConflict):
        add_item(thread_with_turn, "i1", now=at(3))

    assert thread_with_turn.items == {}


def test_item_on_an_unknown_turn_is_not_found(thread_with_turn: Thread) -> None:
    with pytest.raises(NotFound):
        add_item(thread_with_turn, "i1", turn_id="t9")

    assert thread_with_turn.items == {}


def test_item_on_an_idle_thread_is_not_found(thread: Thread) -> None:
    with pytest.raises(NotFound):
        add_item(thread, "i1", turn_id="t1")


def test_duplicate_item_id_is_refused(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1", tool_name="exec_shell")

    with pytest.raises(LifecycleConflict):
        add_item(thread_with_turn, "i1", tool_name="apply_patch")

    assert thread_with_turn.item("t1", "i1").tool_name == "exec_shell"
    assert thread_with_turn.turn("t1").item_ids == ["i1"]


def test_item_id_used_in_an_earlier_turn_is_refused(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1")
    thread_with_turn.end_turn(turn_id="t1", status="completed", error=None, now=at(3))
    start_turn(thread_with_turn, "t2", now=at(4))

    with pytest.raises(LifecycleConflict):
        add_item(thread_with_turn, "i1", turn_id="t2", now=at(5))

    assert thread_with_turn.turn("t2").item_ids == []


def test_item_without_tool_name_or_kind_is_invalid(thread_with_turn: Thread) -> None:
    with pytest.raises(InvalidCommand):
        add_item(thread_with_turn, "i1", tool_name=None, kind=None)
    with pytest.raises(InvalidCommand):
        add_item(thread_with_turn, "i1", tool_name="", kind="")

    assert thread_with_turn.items == {}


def test_item_starts_queued_when_no_status_is_given(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1", status=None)

    assert thread_with_turn.item("t1", "i1").status == "queued"


@pytest.mark.parametrize("status", ["queued", "in_progress", "completed", "failed", "declined"])
def test_item_starts_in_the_status_given(thread_with_turn: Thread, status: str) -> None:
    add_item(thread_with_turn, "i1", status=status)

    assert thread_with_turn.item("t1", "i1").status == status


@pytest.mark.parametrize("status", ["interrupted", "done", "QUEUED"])
def test_item_cannot_start_in_an_unknown_or_interrupted_status(
    thread_with_turn: Thread, status: str
) -> None:
    with pytest.raises(InvalidCommand):
        add_item(thread_with_turn, "i1", status=status)

    assert thread_with_turn.items == {}


def test_item_of_another_turn_is_not_found(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1")
    thread_with_turn.end_turn(turn_id="t1", status="completed", error=None, now=at(3))
    start_turn(thread_with_turn, "t2", now=at(4))

    with pytest.raises(NotFound) as missing:
        thread_with_turn.item("t2", "i1")
    assert missing.value.details == {"item_id": "i1"}
    with pytest.raises(NotFound):
        thread_with_turn.set_item_status(turn_id="t2", item_id="i1", status="failed", now=at(5))


# item status --------------------------------------------------------------------------


def test_item_moves_from_queued_to_in_progress_to_completed(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1", now=at(2))

    thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status="in_progress", now=at(3))
    assert thread_with_turn.item("t1", "i1").status == "in_progress"
    thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status="completed", now=at(4))

    item = thread_with_turn.item("t1", "i1")
    assert item.status == "completed"
    assert item.created_at == at(2)
    assert item.updated_at == at(4)
    changes = [e for e in thread_with_turn.collect_events() if isinstance(e, ItemStatusChanged)]
    assert [(c.previous_status, c.status) for c in changes] == [
        ("queued", "in_progress"),
        ("in_progress", "completed"),
    ]


@pytest.mark.parametrize("final", ["completed", "failed", "declined"])
def test_queued_item_may_go_straight_to_a_final_status(
    thread_with_turn: Thread, final: str
) -> None:
    add_item(thread_with_turn, "i1")

    thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status=final, now=at(3))

    assert thread_with_turn.item("t1", "i1").status == final


@pytest.mark.parametrize("final", ["completed", "failed", "declined"])
@pytest.mark.parametrize("then", ["in_progress", "completed", "failed", "declined"])
def test_a_final_item_status_is_final(thread_with_turn: Thread, final: str, then: str) -> None:
    add_item(thread_with_turn, "i1")
    thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status=final, now=at(3))

    with pytest.raises(LifecycleConflict) as refused:
        thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status=then, now=at(4))

    assert refused.value.details == {"status": final}
    assert thread_with_turn.item("t1", "i1").status == final
    assert thread_with_turn.item("t1", "i1").updated_at == at(3)


def test_setting_the_same_status_again_is_a_conflict(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1")
    thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status="in_progress", now=at(3))

    with pytest.raises(LifecycleConflict):
        thread_with_turn.set_item_status(
            turn_id="t1", item_id="i1", status="in_progress", now=at(4)
        )

    assert thread_with_turn.version == 4


@pytest.mark.parametrize("status", ["queued", "interrupted", "bogus", ""])
def test_item_status_that_cannot_be_set_is_invalid(thread_with_turn: Thread, status: str) -> None:
    add_item(thread_with_turn, "i1")
    thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status="in_progress", now=at(3))

    with pytest.raises(InvalidCommand):
        thread_with_turn.set_item_status(turn_id="t1", item_id="i1", status=status, now=at(4))

    assert thread_with_turn.item("t1", "i1").status == "in_progress"


def test_interrupted_cannot_be_set_on_a_queued_item(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1")

    with pytest.raises(InvalidCommand):
        thread_with_turn.set_item_status(
            turn_id="t1", item_id="i1", status="interrupted", now=at(3)
        )

    assert thread_with_turn.item("t1", "i1").status == "queued"


def test_item_status_on_an_ended_turn_is_refused(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "i1")
    thread_with_turn.end_turn(turn_id="t1", status="completed", error=None, now=at(3))

    with pytest.raises(LifecycleConflict):
        thread_with_turn.set_item_status(
            turn_id="t1", item_id="i1", status="in_progress", now=at(4)
        )

    assert thread_with_turn.item("t1", "i1").status == "queued"


def test_status_of_an_unknown_item_is_not_found(thread_with_turn: Thread) -> None:
    with pytest.raises(NotFound):
        thread_with_turn.set_item_status(turn_id="t1", item_id="i9", status="failed", now=at(3))
    with pytest.raises(NotFound):
        thread_with_turn.set_item_status(turn_id="t9", item_id="i9", status="failed", now=at(3))


# ending a turn ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "event_class"),
    [("completed", TurnCompleted), ("failed", TurnFailed), ("interrupted", TurnInterrupted)],
)
def test_turn_ends_with_its_status_and_duration(
    thread: Thread, status: str, event_class: type
) -> None:
    start_turn(thread, "t1", now=at(10))

    thread.end_turn(turn_id="t1", status=status, error="why", now=at(12, ms=345))

    turn = thread.turn("t1")
    assert turn.status == status
    assert turn.ended_at == at(12, ms=345)
    assert turn.duration_ms == 2345
    assert turn.error == "why"
    assert thread.status == "idle"
    assert thread.active_turn_id is None
    assert event_types(thread)[-1] is event_class


def test_duration_is_whole_milliseconds_between_start_and_end(thread: Thread) -> None:
    start_turn(thread, "t1", now=at(0))

    thread.end_turn(turn_id="t1", status="completed", error=None, now=at(90, ms=1))

    assert thread.turn("t1").duration_ms == 90_001


def test_duration_of_a_turn_ended_at_its_start_is_zero(thread: Thread) -> None:
    start_turn(thread, "t1", now=at(7))

    thread.end_turn(turn_id="t1", status="completed", error=None, now=at(7))

    assert thread.turn("t1").duration_ms == 0


@pytest.mark.parametrize("second", ["completed", "failed", "interrupted"])
def test_ending_a_turn_twice_is_refused(thread_with_turn: Thread, second: str) -> None:
    thread_with_turn.end_turn(turn_id="t1", status="completed", error=None, now=at(2))

    with pytest.raises(LifecycleConflict):
        thread_with_turn.end_turn(turn_id="t1", status=second, error=None, now=at(3))

    turn = thread_with_turn.turn("t1")
    assert (turn.status, turn.ended_at) == ("completed", at(2))


def test_ending_an_unknown_turn_is_not_found(thread: Thread) -> None:
    with pytest.raises(NotFound):
        thread.end_turn(turn_id="t1", status="completed", error=None, now=at(2))


@pytest.mark.parametrize("status", ["in_progress", "cancelled", "COMPLETED", ""])
def test_ending_a_turn_with_an_unknown_status_is_invalid(
    thread_with_turn: Thread, status: str
) -> None:
    with pytest.raises(InvalidCommand):
        thread_with_turn.end_turn(turn_id="t1", status=status, error=None, now=at(2))

    assert thread_with_turn.status == "active"
    assert thread_with_turn.turn("t1").status == "in_progress"


def test_interrupting_a_turn_interrupts_its_open_items_only(thread_with_turn: Thread) -> None:
    add_item(thread_with_turn, "queued", now=at(2))
    add_item(thread_with_turn, "running", now=at(2))
    add_item(thread_with_turn, "done", now=at(2))
    add_item(thread_with_turn, "refused", status="declined", now=at(2))
    thread_with_turn.set_item_status(
        turn_id="t1", item_id="running", status="in_progress", now=at(3)
    )
    thread_with_turn.set_item_status(turn_id="t1", item_id="done", status="completed", now=at(3))

    thread_with_turn.end_turn(turn_id="t1", status="interrupted", error="stop", now=at(4))

    statuses = {item_id: item.status for item_id, item in thread_with_turn.items.items()}
    assert statuses == {
        "queued": "interrupted",
        "running": "interrupted",
        "done": "completed",
        "refused": "declined",
    }
    assert thread_with_turn.item("t1", "queued").updated_at == at(4)
    assert thread_with_turn.item("t1", "done").updated_at == at(3)
    ended = thread_with_turn.collect_events()[-1]
    assert isinstance(ended, TurnInterrupted)
    assert ended.interrupted_item_ids == ["queued", "running"]


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_completing_or_failing_a_turn_interrupts_no_item(
    thread_with_turn: Thread, status: str
) -> None:
    add_item(thread_with_turn, "i1")

    thread_with_turn.end_turn(turn_id="t1", status=status, error=None, now=at(4))

    ended = thread_with_turn.collect_events()[-1]
    assert isinstance(ended, TurnCompleted | TurnFailed)
    assert ended.interrupted_item_ids == []
    assert thread_with_turn.item("t1", "i1").status == "queued"


# thread status ------------------------------------------------------------------------


def test_thread_is_idle_then_active_then_idle_again(thread: Thread) -> None:
    assert thread.status == "idle"
    start_turn(thread, "t1", now=at(1))
    assert thread.status == "active"
    thread.end_turn(turn_id="t1", status="completed", error=None, now=at(2))
    assert thread.status == "idle"
    start_turn(thread, "t2", now=at(3))
    assert thread.status == "active"
