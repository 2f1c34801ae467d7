"""Readiness, claims, acknowledgement, ack-timeout requeue and retries (seed 001)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from domain.run import Run
from domain.run_events import NodeAckTimedOut, NodeDispatched, WorkerLaunchFailed
from tests.unit.builders import T0, at
from tests.unit.run_builders import (
    ACK_TIMEOUT,
    claim,
    edge,
    finish,
    linear,
    new_run,
    pending_names,
    start,
    task,
    workflow,
)


def diamond() -> Run:
    """``a → (b, c) → d``."""
    flow = workflow(
        [task("a"), task("b"), task("c"), task("d")],
        [edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")],
    )
    return new_run(flow)


# creation and readiness --------------------------------------------------------------------------


def test_a_new_run_is_queued_with_every_node_queued() -> None:
    run = new_run(linear("a", "b"))

    assert run.status == "queued"
    assert run.started_at is None and run.finished_at is None
    assert {n.status for n in run.nodes.values()} == {"queued"}
    assert run.created_at == T0
    assert pending_names(run) == ["RunCreated"]


def test_only_nodes_whose_dependencies_succeeded_are_dispatched() -> None:
    run = diamond()

    assert list(claim(run)) == ["a"]
    assert claim(run) == {}
    start_again = run.nodes["a"].dispatch_id
    run.acknowledge(task_id="a", dispatch_id=str(start_again), worker_id="w1", now=at(1))
    finish(run, "a")

    assert sorted(claim(run)) == ["b", "c"]
    finish(run, "b")
    assert claim(run) == {}
    finish(run, "c")
    assert list(claim(run)) == ["d"]


def test_a_dispatch_runs_the_node_pending_ack_and_starts_the_run_once() -> None:
    run = diamond()
    run.collect_events()

    dispatched = claim(run, "w1", now=at(3))

    node = run.nodes["a"]
    assert node.status == "running"
    assert node.pending_ack is True
    assert node.dispatch_id == dispatched["a"]
    assert node.worker_id == "w1"
    assert node.ack_deadline == at(3) + ACK_TIMEOUT
    assert run.status == "running"
    assert run.started_at == at(3)
    events = run.collect_events()
    assert len(events) == 1
    assert isinstance(events[0], NodeDispatched)
    assert (events[0].attempt, events[0].revision, events[0].worker_id) == (1, 1, "w1")

    finish(run, "a")
    claim(run, now=at(9))
    assert run.started_at == at(3)


def test_each_dispatch_bumps_the_run_revision() -> None:
    run = diamond()
    start(run, "a")
    finish(run, "a")

    claim(run)

    assert run.revision == 3
    assert sorted(n.revision for n in run.nodes.values() if n.revision) == [1, 2, 3]


def test_claim_respects_the_limit_and_leaves_the_rest_ready() -> None:
    run = new_run(workflow([task("a"), task("b"), task("c")]))

    first = claim(run, limit=2)
    second = claim(run, limit=2)

    assert list(first) == ["a", "b"]
    assert list(second) == ["c"]
    assert len({*first.values(), *second.values()}) == 3


def test_a_node_is_dispatched_to_exactly_one_worker() -> None:
    run = new_run(linear("a"))

    first = claim(run, "w1")
    second = claim(run, "w2")

    assert list(first) == ["a"]
    assert second == {}
    assert run.nodes["a"].worker_id == "w1"


def test_dispatch_ids_come_from_the_caller() -> None:
    run = new_run(linear("a"))

    run.claim(
        worker_id="w1", limit=1, ack_timeout=ACK_TIMEOUT, new_dispatch_id=lambda: "fixed", now=T0
    )

    assert run.nodes["a"].dispatch_id == "fixed"


def test_the_dispatch_carries_the_node_parameters() -> None:
    run = new_run(workflow([task("a", parameters={"k": [1, 2]})]))
    run.collect_events()

    claim(run)

    (dispatched,) = run.collect_events()
    assert isinstance(dispatched, NodeDispatched)
    assert dispatched.parameters == {"k": [1, 2]}


# preferred worker --------------------------------------------------------------------------------


def test_a_node_whose_resource_refs_name_one_worker_only_goes_to_that_worker() -> None:
    flow = workflow(
        [task("gpu", resourceRefs=[{"workerId": "w2"}]), task("any")],
    )
    run = new_run(flow)

    assert list(claim(run, "w1")) == ["any"]
    assert list(claim(run, "w2")) == ["gpu"]


def test_resource_refs_naming_two_workers_prefer_none() -> None:
    flow = workflow([task("a", resourceRefs=[{"workerId": "w2"}, {"workerId": "w3"}])])
    run = new_run(flow)

    assert list(claim(run, "w1")) == ["a"]


# acknowledgement ---------------------------------------------------------------------------------


def test_ack_with_the_matching_dispatch_id_clears_pending_ack() -> None:
    run = new_run(linear("a"))
    dispatch_id = claim(run)["a"]

    run.acknowledge(task_id="a", dispatch_id=dispatch_id, worker_id="w1", now=at(2))

    assert run.nodes["a"].pending_ack is False
    assert run.nodes["a"].ack_deadline is None
    assert run.nodes["a"].status == "running"


def test_ack_with_a_wrong_dispatch_id_is_a_conflict_and_records_nothing() -> None:
    run = new_run(linear("a"))
    claim(run)
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.acknowledge(task_id="a", dispatch_id="not-it", worker_id="w1", now=at(2))

    assert run.collect_events() == []
    assert run.nodes["a"].pending_ack is True


def test_a_second_ack_is_a_conflict() -> None:
    run = new_run(linear("a"))
    dispatch_id = start(run, "a")

    with pytest.raises(LifecycleConflict):
        run.acknowledge(task_id="a", dispatch_id=dispatch_id, worker_id="w1", now=at(2))


def test_ack_of_a_node_never_dispatched_is_a_conflict() -> None:
    run = new_run(linear("a", "b"))

    with pytest.raises(LifecycleConflict):
        run.acknowledge(task_id="b", dispatch_id="d", worker_id="w1", now=at(2))


def test_ack_of_an_unknown_node_is_not_found() -> None:
    run = new_run(linear("a"))

    with pytest.raises(NotFound):
        run.acknowledge(task_id="ghost", dispatch_id="d", worker_id="w1", now=at(2))


# ack timeout -------------------------------------------------------------------------------------


def test_a_missed_ack_deadline_requeues_the_node_with_one_more_attempt() -> None:
    run = new_run(linear("a"))
    claim(run, now=at(1))
    run.collect_events()

    assert run.time_out_ack(task_id="a", now=at(1) + ACK_TIMEOUT) is True

    node = run.nodes["a"]
    assert node.status == "queued"
    assert node.attempts == 1
    assert (node.pending_ack, node.dispatch_id, node.worker_id, node.ack_deadline) == (
        False,
        None,
        None,
        None,
    )
    assert run.status == "queued"
    (timed_out,) = run.collect_events()
    assert isinstance(timed_out, NodeAckTimedOut)
    assert (timed_out.attempts, timed_out.run_status) == (1, "queued")


def test_the_requeued_node_is_dispatched_again_as_the_next_attempt() -> None:
    run = new_run(linear("a"))
    first = claim(run, now=at(1))["a"]
    run.time_out_ack(task_id="a", now=at(100))
    run.collect_events()

    second = claim(run, "w2", now=at(101))["a"]

    assert second != first
    (dispatched,) = run.collect_events()
    assert isinstance(dispatched, NodeDispatched)
    assert dispatched.attempt == 2
    with pytest.raises(LifecycleConflict):
        run.acknowledge(task_id="a", dispatch_id=first, worker_id="w1", now=at(102))


def test_ack_timeout_keeps_the_run_running_while_another_node_is_started() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    claim(run, now=at(1))
    run.acknowledge(
        task_id="b", dispatch_id=str(run.nodes["b"].dispatch_id), worker_id="w1", now=at(2)
    )

    run.time_out_ack(task_id="a", now=at(60))

    assert run.nodes["a"].status == "queued"
    assert run.status == "running"


def test_ack_timeout_before_the_deadline_does_nothing() -> None:
    run = new_run(linear("a"))
    claim(run, now=at(1))
    run.collect_events()

    assert (
        run.time_out_ack(task_id="a", now=at(1) + ACK_TIMEOUT - timedelta(milliseconds=1)) is False
    )
    assert run.collect_events() == []


def test_ack_timeout_of_an_acknowledged_node_does_nothing() -> None:
    run = new_run(linear("a"))
    start(run, "a", now=at(1))
    run.collect_events()

    assert run.time_out_ack(task_id="a", now=at(1000)) is False
    assert run.time_out_ack(task_id="ghost", now=at(1000)) is False
    assert run.collect_events() == []


def test_ack_timeout_applied_twice_requeues_once() -> None:
    run = new_run(linear("a"))
    claim(run, now=at(1))
    run.time_out_ack(task_id="a", now=at(60))
    run.collect_events()

    assert run.time_out_ack(task_id="a", now=at(61)) is False
    assert run.collect_events() == []
    assert run.nodes["a"].attempts == 1


# retries -----------------------------------------------------------------------------------------


def test_a_failed_node_is_retried_until_max_attempts_then_fails_the_run() -> None:
    run = new_run(linear("a"), max_attempts=3)

    for attempt in (1, 2):
        start(run, "a")
        assert finish(run, "a", "failed", error={"code": "x", "message": "boom"}) == "queued"
        assert run.nodes["a"].attempts == attempt
        assert run.status in ("queued", "running")

    start(run, "a")
    assert finish(run, "a", "failed", error={"code": "x", "message": "boom"}) == "failed"
    assert run.nodes["a"].attempts == 3
    assert run.status == "failed"


def test_a_node_max_attempts_overrides_the_run_setting() -> None:
    run = new_run(workflow([task("a", maxAttempts=2)]), max_attempts=1)

    start(run, "a")
    assert finish(run, "a", "failed") == "queued"
    start(run, "a")
    assert finish(run, "a", "failed") == "failed"


def test_by_default_a_failure_is_final() -> None:
    run = new_run(linear("a"))

    start(run, "a")

    assert finish(run, "a", "failed") == "failed"
    assert run.status == "failed"


def test_a_retry_that_succeeds_lets_the_run_continue() -> None:
    run = new_run(linear("a", "b"), max_attempts=2)
    start(run, "a")
    finish(run, "a", "failed")

    start(run, "a")
    finish(run, "a")

    assert run.nodes["a"].status == "succeeded"
    assert run.nodes["a"].error is None
    assert list(claim(run)) == ["b"]


# worker lifecycle (seed 003) ---------------------------------------------------------------------


def test_a_worker_launch_failure_requeues_the_node_with_one_more_attempt() -> None:
    run = new_run(linear("a"))
    start(run, "a")

    run.record_worker_event(
        task_id="a",
        kind="launch_failed",
        worker_id=None,
        detail="no binary",
        outcome=None,
        data={},
        now=at(3),
    )

    assert run.nodes["a"].status == "queued"
    assert run.nodes["a"].attempts == 1
    assert run.nodes["a"].dispatch_id is None
    assert "WorkerLaunchFailed" in pending_names(run)


def test_worker_launch_update_and_finish_are_recorded_on_the_running_node() -> None:
    run = new_run(linear("a"))
    start(run, "a")
    run.collect_events()

    for kind, outcome in (("launched", None), ("update", None), ("finished", "succeeded")):
        run.record_worker_event(
            task_id="a",
            kind=kind,
            worker_id="w1",
            detail=kind,
            outcome=outcome,
            data={"pid": 7},
            now=at(3),
        )

    assert pending_names(run) == ["WorkerLaunched", "WorkerUpdated", "WorkerFinished"]
    assert run.nodes["a"].status == "running"
    assert run.nodes["a"].worker_detail == "finished"


def test_a_worker_abort_fails_the_node() -> None:
    run = new_run(linear("a"))
    start(run, "a")

    run.record_worker_event(
        task_id="a",
        kind="aborted",
        worker_id=None,
        detail="killed",
        outcome=None,
        data={},
        now=at(3),
    )

    assert run.nodes["a"].status == "failed"
    assert run.nodes["a"].error == {"code": "worker_aborted", "message": "killed"}
    assert run.status == "failed"


def test_an_unknown_worker_event_is_refused() -> None:
    run = new_run(linear("a"))
    start(run, "a")
    run.collect_events()

    with pytest.raises(InvalidCommand):
        run.record_worker_event(
            task_id="a",
            kind="exploded",
            worker_id=None,
            detail=None,
            outcome=None,
            data={},
            now=at(3),
        )
    assert run.collect_events() == []


def test_a_worker_event_for_a_node_not_running_is_a_conflict() -> None:
    run = new_run(linear("a"))

    with pytest.raises(LifecycleConflict):
        run.record_worker_event(
            task_id="a",
            kind="launched",
            worker_id=None,
            detail=None,
            outcome=None,
            data={},
            now=at(3),
        )


def test_worker_launch_timeout_requeues_a_launching_node_once() -> None:
    run = new_run(linear("a"))
    dispatch_id = claim(run, now=at(1))["a"]
    run.acknowledge(task_id="a", dispatch_id=dispatch_id, worker_id="w1", now=at(1), launching=True)
    timeout = timedelta(seconds=60)

    assert run.time_out_launch(task_id="a", timeout=timeout, now=at(30)) is False
    assert run.time_out_launch(task_id="a", timeout=timeout, now=at(61)) is True

    assert run.nodes["a"].status == "queued"
    assert run.nodes["a"].attempts == 1
    failed = [e for e in run.collect_events() if isinstance(e, WorkerLaunchFailed)]
    assert [e.detail for e in failed] == ["worker launch timed out after 60s"]
    assert run.time_out_launch(task_id="a", timeout=timeout, now=at(200)) is False


def test_a_launched_worker_is_not_timed_out() -> None:
    run = new_run(linear("a"))
    dispatch_id = claim(run, now=at(1))["a"]
    run.acknowledge(task_id="a", dispatch_id=dispatch_id, worker_id="w1", now=at(1), launching=True)
    run.record_worker_event(
        task_id="a", kind="launched", worker_id="w1", detail=None, outcome=None, data={}, now=at(2)
    )

    assert run.time_out_launch(task_id="a", timeout=timedelta(seconds=60), now=at(500)) is False
