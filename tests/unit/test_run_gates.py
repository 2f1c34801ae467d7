"""Approval gates: requested when ready, approve / rework / deny, gate history and stale gates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from domain.run import Run
from domain.run_events import GateDecided, GateMarkedStale, GateRequested, NodeDispatched
from tests.unit.builders import T0, at
from tests.unit.run_builders import (
    chain,
    claim,
    finish,
    gate,
    lifecycle_names,
    new_run,
    pending_names,
    start,
    task,
    workflow,
)

DAY = timedelta(hours=24)


def build_then_review() -> Run:
    """``build → review (gate) → ship``, with build finished: the run awaits approval."""
    run = new_run(
        workflow([task("build"), gate("review"), task("ship")], chain("build", "review", "ship"))
    )
    start(run, "build")
    finish(run, "build", now=at(10))
    return run


def decide(run: Run, decision: str, task_id: str = "review", *, now: float = 20) -> None:
    run.decide_gate(
        task_id=task_id, decision=decision, reason="because", actor="alice", now=at(now)
    )


# requesting --------------------------------------------------------------------------------------


def test_a_gate_ready_at_creation_makes_the_new_run_await_approval() -> None:
    run = new_run(workflow([gate("review"), task("ship")], chain("review", "ship")))

    assert run.status == "awaiting_approval"
    assert run.awaiting_gate is not None
    assert run.awaiting_gate.task_id == "review"
    assert run.awaiting_gate.requested_at == T0
    assert pending_names(run) == ["RunCreated", "GateRequested"]
    assert claim(run) == {}


def test_a_gate_becomes_awaited_in_the_command_that_makes_it_ready() -> None:
    run = new_run(
        workflow([task("build"), gate("review"), task("ship")], chain("build", "review", "ship"))
    )
    start(run, "build")
    run.collect_events()

    finish(run, "build", now=at(10))

    assert run.status == "awaiting_approval"
    assert run.awaiting_gate is not None and run.awaiting_gate.requested_at == at(10)
    names = pending_names(run)
    assert names[-1] == "GateRequested"
    assert "NodeSucceeded" in names


def test_a_gate_node_is_never_dispatched() -> None:
    run = build_then_review()

    assert claim(run) == {}
    assert run.nodes["review"].status == "queued"
    assert run.has_ready_work() is False


def test_an_executor_may_request_a_gate_on_a_node() -> None:
    run = new_run(workflow([task("a"), task("b")], chain("a", "b")))
    start(run, "a")
    run.collect_events()

    run.request_gate(task_id="b", title="Check", instructions="look", now=at(3))

    assert run.status == "awaiting_approval"
    (requested,) = run.collect_events()
    assert isinstance(requested, GateRequested)
    assert (requested.title, requested.instructions, requested.requested_by) == (
        "Check",
        "look",
        "executor",
    )


def test_requesting_a_gate_twice_is_a_conflict() -> None:
    run = build_then_review()
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.request_gate(task_id="review", title=None, instructions=None, now=at(30))
    assert run.collect_events() == []


def test_requesting_a_gate_on_a_finished_node_is_a_conflict() -> None:
    run = build_then_review()

    with pytest.raises(LifecycleConflict):
        run.request_gate(task_id="build", title=None, instructions=None, now=at(30))


# deciding ----------------------------------------------------------------------------------------


def test_approve_succeeds_the_gate_node_and_the_run_continues() -> None:
    run = build_then_review()
    run.collect_events()

    decide(run, "approve")

    assert run.nodes["review"].status == "succeeded"
    assert run.awaiting_gate is None
    assert run.status == "running"
    assert list(claim(run)) == ["ship"]
    start_ship = run.nodes["ship"].dispatch_id
    run.acknowledge(task_id="ship", dispatch_id=str(start_ship), worker_id="w1", now=at(21))
    finish(run, "ship")
    assert run.status == "succeeded"


def test_approving_the_last_node_succeeds_the_run() -> None:
    run = new_run(workflow([task("build"), gate("review")], chain("build", "review")))
    start(run, "build")
    finish(run, "build")

    decide(run, "approve")

    assert run.status == "succeeded"
    assert run.finished_at == at(20)


def test_rework_requeues_the_upstream_node_with_one_more_attempt() -> None:
    run = build_then_review()
    run.collect_events()

    decide(run, "rework")

    assert run.nodes["build"].status == "queued"
    assert run.nodes["build"].attempts == 1
    assert run.nodes["review"].status == "queued"
    assert run.status in ("queued", "running")
    (decided,) = run.collect_events()
    assert isinstance(decided, GateDecided)
    assert decided.requeued == ["build"]
    assert list(claim(run)) == ["build"]


def test_after_rework_the_gate_is_requested_again_when_upstream_succeeds() -> None:
    run = build_then_review()
    decide(run, "rework")
    start(run, "build", now=at(30))

    finish(run, "build", now=at(40))

    assert run.status == "awaiting_approval"
    assert run.awaiting_gate is not None and run.awaiting_gate.requested_at == at(40)


def test_rework_of_a_gate_at_the_start_requeues_the_gate_node_itself() -> None:
    run = new_run(workflow([gate("review"), task("ship")], chain("review", "ship")))

    decide(run, "rework")

    assert run.nodes["review"].attempts == 1
    assert run.status == "awaiting_approval"
    assert [g.task_id for g in [run.awaiting_gate] if g] == ["review"]


def test_deny_blocks_the_run() -> None:
    run = build_then_review()
    run.collect_events()

    decide(run, "deny")

    assert run.status == "blocked"
    assert run.terminal
    assert run.finished_at == at(20)
    assert pending_names(run) == ["GateDecided", "RunBlocked"]
    assert claim(run) == {}


def test_each_decision_is_kept_in_gate_history() -> None:
    run = build_then_review()
    decide(run, "rework", now=20)
    start(run, "build", now=at(30))
    finish(run, "build", now=at(40))

    decide(run, "approve", now=50)

    assert [(h["node_id"], h["decision"], h["actor"]) for h in run.gate_history] == [
        ("review", "rework", "alice"),
        ("review", "approve", "alice"),
    ]
    assert run.gate_history[0]["requested_at_ms"] == int(at(10).timestamp() * 1000)
    assert run.gate_history[1]["decided_at_ms"] == int(at(50).timestamp() * 1000)
    assert run.gate_history[1]["reason"] == "because"
    assert "approval_gate_approved" in lifecycle_names(run)


def test_a_decision_on_a_node_without_a_pending_gate_is_not_found() -> None:
    run = build_then_review()

    with pytest.raises(NotFound):
        decide(run, "approve", task_id="ship")


def test_an_unknown_decision_is_refused_and_records_nothing() -> None:
    run = build_then_review()
    run.collect_events()

    with pytest.raises(InvalidCommand):
        decide(run, "maybe")
    assert run.collect_events() == []
    assert run.status == "awaiting_approval"


def test_two_gates_keep_the_run_awaiting_until_both_are_decided() -> None:
    run = new_run(
        workflow(
            [gate("g1"), gate("g2"), task("after")], [*chain("g1", "after"), *chain("g2", "after")]
        )
    )
    assert run.gate_queue == ["g1", "g2"]

    decide(run, "approve", "g1")
    assert run.status == "awaiting_approval"
    assert run.awaiting_gate is not None and run.awaiting_gate.task_id == "g2"

    decide(run, "approve", "g2")
    assert run.status == "running"
    assert list(claim(run)) == ["after"]


def test_a_decision_on_a_blocked_run_is_a_conflict() -> None:
    run = new_run(workflow([gate("g1"), gate("g2")]))
    decide(run, "deny", "g1")
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        decide(run, "approve", "g2")
    assert run.collect_events() == []


# stale gates -------------------------------------------------------------------------------------


def test_a_stale_gate_is_marked_once_with_its_five_metadata_keys() -> None:
    run = build_then_review()
    run.collect_events()
    marked_at = at(10) + DAY

    assert run.mark_gate_stale(task_id="review", stale_after=DAY, now=marked_at) is True
    assert run.mark_gate_stale(task_id="review", stale_after=DAY, now=marked_at + DAY) is False

    events = run.collect_events()
    assert len(events) == 1 and isinstance(events[0], GateMarkedStale)
    gate_state = run.gates["review"]
    assert gate_state.metadata == {
        "stale": True,
        "stale_policy": "manual_only_visible_status",
        "stale_after_ms": 86_400_000,
        "stale_marked_at_ms": int(marked_at.timestamp() * 1000),
        "requested_at_ms": int(at(10).timestamp() * 1000),
    }
    assert run.status == "awaiting_approval"
    assert "review" in (run.detail or "")
    entry = run.lifecycle[-1]
    assert entry["event"] == "approval_gate_marked_stale"
    assert "review" in (entry["detail"] or "")
    assert lifecycle_names(run).count("approval_gate_marked_stale") == 1


def test_a_gate_younger_than_the_age_is_not_marked() -> None:
    run = build_then_review()
    run.collect_events()

    assert run.mark_gate_stale(task_id="review", stale_after=DAY, now=at(9) + DAY) is False
    assert run.collect_events() == []


def test_marking_a_node_without_a_gate_does_nothing() -> None:
    run = build_then_review()
    run.collect_events()

    assert run.mark_gate_stale(task_id="ship", stale_after=DAY, now=at(10) + 2 * DAY) is False
    assert run.collect_events() == []


def test_a_stale_gate_keeps_its_metadata_in_gate_history_when_decided() -> None:
    run = build_then_review()
    run.mark_gate_stale(task_id="review", stale_after=DAY, now=at(10) + DAY)

    decide(run, "approve", now=10 + 2 * 86_400)

    assert run.gate_history[0]["metadata"]["stale"] is True
    assert run.status == "running"


def test_the_stale_gate_metadata_travels_in_the_event() -> None:
    run = build_then_review()
    run.collect_events()

    run.mark_gate_stale(task_id="review", stale_after=timedelta(minutes=5), now=at(10 + 300))

    (event,) = run.collect_events()
    assert isinstance(event, GateMarkedStale)
    assert event.metadata["stale_after_ms"] == 300_000
    assert set(event.metadata) == {
        "stale",
        "stale_policy",
        "stale_after_ms",
        "stale_marked_at_ms",
        "requested_at_ms",
    }


def test_dispatch_never_happens_while_awaiting_approval() -> None:
    run = new_run(workflow([gate("g"), task("free")]))

    assert run.status == "awaiting_approval"
    assert claim(run) == {}
    assert not any(isinstance(e, NodeDispatched) for e in run.collect_events())
