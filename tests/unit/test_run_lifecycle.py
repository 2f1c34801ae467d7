"""Run lifecycle: rollup, pause / resume / cancel / block, terminal runs, sessions and instances."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.errors import LifecycleConflict
from domain.run import Run
from domain.run_events import NodeCancelled, RunCancelled, RunFailed, RunSucceeded
from tests.unit.builders import at
from tests.unit.run_builders import (
    chain,
    claim,
    drive_to_end,
    feedback,
    finish,
    gate,
    lifecycle_names,
    linear,
    new_run,
    pending_names,
    start,
    task,
    workflow,
)


def running_run() -> Run:
    """``a → b`` with a dispatched and acknowledged."""
    run = new_run(linear("a", "b"))
    start(run, "a")
    return run


def blocked_run() -> Run:
    run = running_run()
    run.block(reason="policy", now=at(5))
    return run


# rollup and completion ---------------------------------------------------------------------------


def test_a_run_succeeds_once_every_node_succeeded_and_finished_at_is_set() -> None:
    run = new_run(linear("a", "b", "c"))

    drive_to_end(run)

    assert run.status == "succeeded"
    assert run.finished_at == at(2)
    assert sum(isinstance(e, RunSucceeded) for e in run.collect_events()) == 1
    assert lifecycle_names(run)[0] == "run_created"


def test_a_top_level_failure_fails_the_run_and_cancels_every_unfinished_node() -> None:
    run = new_run(workflow([task("a"), task("b"), task("c")], chain("a", "c")))
    claim(run)
    run.collect_events()

    finish(run, "a", "failed", error={"code": "E", "message": "bad"}, now=at(4))

    assert run.status == "failed"
    assert run.error == {"code": "E", "message": "bad"}
    assert {t: n.status for t, n in run.nodes.items()} == {
        "a": "failed",
        "b": "cancelled",
        "c": "cancelled",
    }
    assert run.finished_at == at(4)
    events = run.collect_events()
    assert sorted(e.task_id for e in events if isinstance(e, NodeCancelled)) == ["b", "c"]
    assert sum(isinstance(e, RunFailed) for e in events) == 1
    assert claim(run) == {}


def test_finished_at_is_set_once() -> None:
    run = running_run()
    run.cancel(reason="stop", now=at(7))

    with pytest.raises(LifecycleConflict):
        run.cancel(reason="again", now=at(9))

    assert run.finished_at == at(7)


# pause and resume --------------------------------------------------------------------------------


def test_pause_waits_in_pausing_while_a_node_is_in_flight() -> None:
    run = running_run()
    run.collect_events()

    run.pause(reason="lunch", now=at(3))

    assert run.status == "pausing"
    assert run.pause_reason == "lunch"
    assert pending_names(run) == ["RunPauseRequested"]
    assert claim(run) == {}


def test_a_pausing_run_pauses_once_nothing_is_in_flight() -> None:
    run = running_run()
    run.pause(reason="lunch", now=at(3))
    run.collect_events()

    finish(run, "a", now=at(4))

    assert run.status == "paused"
    assert run.nodes["b"].status == "queued"
    assert claim(run) == {}
    names = pending_names(run)
    assert names.count("RunPaused") == 1
    assert names[-1] == "RunPaused"


def test_pause_with_nothing_in_flight_pauses_at_once() -> None:
    run = new_run(linear("a"))
    run.collect_events()

    run.pause(reason=None, now=at(3))

    assert run.status == "paused"
    assert pending_names(run) == ["RunPauseRequested", "RunPaused"]


def test_the_rollup_never_overwrites_pausing() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    claim(run)
    run.pause(reason="x", now=at(3))

    finish(run, "a")

    assert run.status == "pausing"
    feedback(run, "b", progress=0.5)
    assert run.status == "pausing"


def test_resume_returns_a_paused_run_to_queued_and_dispatch_goes_on() -> None:
    run = running_run()
    run.pause(reason="lunch", now=at(3))
    finish(run, "a")

    run.resume(reason="back", now=at(9))

    assert run.status == "queued"
    assert run.pause_reason is None
    assert list(claim(run)) == ["b"]
    assert run.status == "running"


def test_pausing_twice_is_a_conflict() -> None:
    run = running_run()
    run.pause(reason=None, now=at(3))
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.pause(reason=None, now=at(4))
    assert run.collect_events() == []


def test_resuming_a_run_that_is_not_paused_is_a_conflict() -> None:
    run = running_run()
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.resume(reason=None, now=at(4))
    assert run.collect_events() == []


def test_a_paused_run_awaiting_a_gate_resumes_to_awaiting_approval() -> None:
    run = new_run(workflow([gate("g")]))
    run.pause(reason=None, now=at(1))
    assert run.status == "paused"

    run.resume(reason=None, now=at(2))

    assert run.status == "awaiting_approval"


def test_results_still_land_while_pausing() -> None:
    run = running_run()
    run.pause(reason=None, now=at(3))

    assert finish(run, "a", result={"v": 1}) == "succeeded"
    assert run.nodes["a"].result == {"v": 1}


# cancel and block --------------------------------------------------------------------------------


def test_cancel_cancels_every_unfinished_node_and_finishes_the_run() -> None:
    run = running_run()
    run.collect_events()

    run.cancel(reason="no longer needed", now=at(5))

    assert run.status == "cancelled"
    assert {n.status for n in run.nodes.values()} == {"cancelled"}
    assert run.finished_at == at(5)
    events = run.collect_events()
    assert isinstance(events[-1], RunCancelled)
    assert sorted(e.task_id for e in events if isinstance(e, NodeCancelled)) == ["a", "b"]


def test_a_queued_or_paused_run_can_be_cancelled() -> None:
    queued = new_run(linear("a"))
    queued.cancel(reason=None, now=at(1))
    paused = new_run(linear("a"))
    paused.pause(reason=None, now=at(1))
    paused.cancel(reason=None, now=at(2))

    assert (queued.status, paused.status) == ("cancelled", "cancelled")


def test_block_makes_the_run_blocked_and_terminal() -> None:
    run = blocked_run()

    assert run.status == "blocked"
    assert run.terminal
    assert run.finished_at == at(5)
    assert run.stop_reason == "policy"
    assert claim(run) == {}


@pytest.mark.parametrize(
    "command",
    [
        lambda run: run.pause(reason=None, now=at(9)),
        lambda run: run.resume(reason=None, now=at(9)),
        lambda run: run.cancel(reason=None, now=at(9)),
        lambda run: run.block(reason=None, now=at(9)),
        lambda run: run.stale_reap(detail="x", now=at(9)),
        lambda run: run.guardrail_stop(reason=None, now=at(9)),
        lambda run: run.request_gate(task_id="b", title=None, instructions=None, now=at(9)),
        lambda run: finish(run, "a", now=at(9)),
        lambda run: run.record_command_error(task_id="a", dispatch_id=None, message="x", now=at(9)),
        lambda run: run.attach_session(session_id="s9", now=at(9)),
    ],
    ids=[
        "pause",
        "resume",
        "cancel",
        "block",
        "stale_reap",
        "guardrail",
        "gate",
        "result",
        "error",
        "session",
    ],
)
def test_a_blocked_run_is_final_and_records_nothing(command: Callable[[Run], object]) -> None:
    run = blocked_run()
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        command(run)

    assert run.collect_events() == []
    assert run.status == "blocked"
    assert run.finished_at == at(5)


@pytest.mark.parametrize("ending", ["succeeded", "failed", "cancelled"])
def test_a_terminal_run_never_becomes_active_again(ending: str) -> None:
    run = new_run(linear("a"))
    start(run, "a")
    if ending == "cancelled":
        run.cancel(reason=None, now=at(3))
    else:
        finish(run, "a", ending)
    run.collect_events()

    commands: list[Callable[[], None]] = [
        lambda: run.pause(reason=None, now=at(9)),
        lambda: run.resume(reason=None, now=at(9)),
        lambda: run.cancel(reason=None, now=at(9)),
    ]
    for command in commands:
        with pytest.raises(LifecycleConflict):
            command()
    assert run.status == ending
    assert run.collect_events() == []
    assert run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(9)) is False
    assert run.auto_resume(window=at(1) - at(0), max_resumes=2, now=at(9)) is False
    assert run.collect_events() == []


# sessions and instances --------------------------------------------------------------------------


def test_sessions_are_deduplicated_and_the_latest_is_remembered() -> None:
    run = new_run(linear("a"))
    run.collect_events()

    assert run.attach_session(session_id="s1", now=at(1)) is True
    assert run.attach_session(session_id="s2", now=at(2)) is True
    assert run.attach_session(session_id="s2", now=at(3)) is False

    assert run.sessions == ["s1", "s2"]
    assert run.latest_session_id == "s2"
    assert pending_names(run) == ["SessionAttached", "SessionAttached"]


def test_detaching_a_session_keeps_the_latest_session_id() -> None:
    run = new_run(linear("a"))
    run.attach_session(session_id="s1", now=at(1))

    assert run.detach_session(session_id="s1", now=at(2)) is True
    assert run.detach_session(session_id="s1", now=at(3)) is False

    assert run.sessions == []
    assert run.latest_session_id == "s1"


def test_instances_are_deduplicated() -> None:
    run = new_run(linear("a"))
    run.collect_events()

    assert run.attach_instance(instance_id="i1", now=at(1)) is True
    assert run.attach_instance(instance_id="i1", now=at(2)) is False

    assert run.instances == ["i1"]
    assert pending_names(run) == ["InstanceAttached"]
