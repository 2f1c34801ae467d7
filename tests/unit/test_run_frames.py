"""Subgraph frames (seed 001): nested frames, task ids, one stack, and failures inside a frame."""

from __future__ import annotations

import pytest

from domain.errors import LifecycleConflict
from domain.run import Run
from domain.run_events import FrameClosed, FrameOpened, NodeCancelled, NodeFailed, RunFailed
from domain.run_state import FINAL_NODE_STATUSES
from tests.unit.builders import at
from tests.unit.run_builders import (
    chain,
    claim,
    container,
    drive_to_end,
    edge,
    finish,
    nested_three_levels,
    new_run,
    start,
    subgraph,
    task,
    workflow,
)

L1 = "wf::c1::sg1"
L2 = f"{L1}::c2::sg2"
L3 = f"{L2}::c3::sg3"
ERROR = {"code": "E_BOOM", "message": "boom"}


def frame_with_siblings() -> Run:
    """``before → c → after``; c runs sg: ``x → z`` and ``y`` beside them."""
    flow = workflow(
        [task("before"), container("c", "sg"), task("after")],
        chain("before", "c", "after"),
        [subgraph("sg", [task("x"), task("y"), task("z")], [edge("x", "z")])],
    )
    run = new_run(flow)
    start(run, "before")
    finish(run, "before")
    return run


# a 3-level nested workflow -----------------------------------------------------------------------


def test_a_three_level_nested_workflow_runs_to_success_in_frame_order() -> None:
    run = new_run(nested_three_levels())

    order = drive_to_end(run)

    assert order == ["start", f"{L1}::x", f"{L2}::y", f"{L3}::p", f"{L3}::q", "end"]
    assert run.status == "succeeded"
    assert all(node.status == "succeeded" for node in run.nodes.values())
    assert run.frame_stack == []
    assert run.finished_at is not None


def test_nested_frames_open_as_one_stack_and_close_innermost_first() -> None:
    run = new_run(nested_three_levels())

    drive_to_end(run)

    frames = [
        (type(e).__name__, e.frame_id)
        for e in run.collect_events()
        if isinstance(e, FrameOpened | FrameClosed)
    ]
    assert frames == [
        ("FrameOpened", L1),
        ("FrameOpened", L2),
        ("FrameOpened", L3),
        ("FrameClosed", L3),
        ("FrameClosed", L2),
        ("FrameClosed", L1),
    ]


def test_nodes_inside_frames_are_addressed_by_frame_id_and_node_id() -> None:
    run = new_run(nested_three_levels())
    complete_start = claim(run)
    assert list(complete_start) == ["start"]

    assert set(run.nodes) == {
        "start",
        "c1",
        "end",
        f"{L1}::x",
        f"{L1}::c2",
        f"{L2}::y",
        f"{L2}::c3",
        f"{L3}::p",
        f"{L3}::q",
    }


def test_a_ready_container_opens_its_frame_in_the_same_command() -> None:
    run = new_run(nested_three_levels())
    start(run, "start")

    finish(run, "start")

    assert run.frame_stack == [L1]
    assert run.nodes["c1"].status == "running"
    assert run.nodes["c1"].metadata["frameId"] == L1
    assert list(claim(run)) == [f"{L1}::x"]


def test_a_container_first_in_the_workflow_opens_its_frame_at_creation() -> None:
    flow = workflow([container("c", "sg")], subgraphs=[subgraph("sg", [task("x")])])

    run = new_run(flow)

    assert run.frame_stack == ["wf::c::sg"]
    assert run.status == "running"
    assert list(claim(run)) == ["wf::c::sg::x"]


def test_only_the_innermost_frame_is_dispatched() -> None:
    flow = workflow(
        [container("c", "sg"), task("beside")],
        subgraphs=[subgraph("sg", [task("x")])],
    )
    run = new_run(flow)

    assert list(claim(run)) == ["wf::c::sg::x"]
    finish_x = run.nodes["wf::c::sg::x"].dispatch_id
    run.acknowledge(task_id="wf::c::sg::x", dispatch_id=str(finish_x), worker_id="w1", now=at(1))
    finish(run, "wf::c::sg::x")

    assert run.frame_stack == []
    assert run.nodes["c"].status == "succeeded"
    assert list(claim(run)) == ["beside"]


def test_nested_frames_stack_in_order_while_open() -> None:
    run = new_run(nested_three_levels())
    start(run, "start")
    finish(run, "start")
    start(run, f"{L1}::x")
    finish(run, f"{L1}::x")
    start(run, f"{L2}::y")
    finish(run, f"{L2}::y")

    assert run.frame_stack == [L1, L2, L3]
    assert sorted(run.in_flight()) == []


# a failing node inside a frame -------------------------------------------------------------------


def test_a_failed_node_in_a_frame_cancels_its_siblings_and_fails_the_container() -> None:
    run = frame_with_siblings()
    x, y = "wf::c::sg::x", "wf::c::sg::y"
    dispatched = claim(run)
    assert sorted(dispatched) == [x, y]
    for task_id, dispatch_id in dispatched.items():
        run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id="w1", now=at(1))
    run.collect_events()

    finish(run, x, "failed", error=ERROR, now=at(5))

    assert run.nodes[x].status == "failed"
    assert run.nodes[y].status == "cancelled"
    assert run.nodes["wf::c::sg::z"].status == "cancelled"
    assert run.nodes["c"].status == "failed"
    assert run.nodes["c"].error == ERROR
    assert run.nodes["after"].status == "cancelled"
    assert run.nodes["before"].status == "succeeded"
    assert run.status == "failed"
    assert run.error == ERROR
    assert run.finished_at == at(5)
    assert run.frame_stack == []
    events = run.collect_events()
    closed = [e for e in events if isinstance(e, FrameClosed)]
    assert [(e.frame_id, e.status, e.error) for e in closed] == [("wf::c::sg", "failed", ERROR)]
    assert sum(isinstance(e, RunFailed) for e in events) == 1
    cancelled = {e.task_id for e in events if isinstance(e, NodeCancelled)}
    assert cancelled == {y, "wf::c::sg::z", "after"}


def test_the_container_takes_the_first_error_and_nothing_else_is_dispatched() -> None:
    run = frame_with_siblings()
    x, y = "wf::c::sg::x", "wf::c::sg::y"
    dispatched = claim(run)
    for task_id, dispatch_id in dispatched.items():
        run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id="w1", now=at(1))
    finish(run, x, "failed", error=ERROR, now=at(5))

    with pytest.raises(LifecycleConflict):
        run.record_result(
            task_id=y,
            dispatch_id=dispatched[y],
            status="failed",
            result=None,
            error={"code": "E2", "message": "second"},
            metadata={},
            artifacts=[],
            duration_ms=None,
            usage=None,
            now=at(9),
        )
    assert run.nodes["c"].error == ERROR
    assert run.finished_at == at(5)
    assert claim(run) == {}


def test_a_failure_deep_inside_nested_frames_fails_every_container_and_the_run() -> None:
    run = new_run(nested_three_levels())
    for task_id in ("start", f"{L1}::x", f"{L2}::y"):
        start(run, task_id)
        finish(run, task_id)
    start(run, f"{L3}::p")
    run.collect_events()

    finish(run, f"{L3}::p", "failed", error=ERROR, now=at(7))

    assert [run.nodes[t].status for t in (f"{L3}::p", f"{L2}::c3", f"{L1}::c2", "c1")] == [
        "failed"
    ] * 4
    assert all(run.nodes[t].error == ERROR for t in (f"{L2}::c3", f"{L1}::c2", "c1"))
    assert run.nodes[f"{L3}::q"].status == "cancelled"
    assert run.nodes["end"].status == "cancelled"
    assert all(node.status in FINAL_NODE_STATUSES for node in run.nodes.values())
    assert run.status == "failed"
    assert run.finished_at == at(7)
    assert run.frame_stack == []
    events = run.collect_events()
    assert [(e.frame_id, e.status) for e in events if isinstance(e, FrameClosed)] == [
        (L3, "failed"),
        (L2, "failed"),
        (L1, "failed"),
    ]
    failed = [e.task_id for e in events if isinstance(e, NodeFailed)]
    assert failed == [f"{L3}::p", f"{L2}::c3", f"{L1}::c2", "c1"]


def test_a_node_in_a_frame_is_retried_before_the_frame_fails() -> None:
    flow = workflow([container("c", "sg")], subgraphs=[subgraph("sg", [task("x", maxAttempts=2)])])
    run = new_run(flow)
    start(run, "wf::c::sg::x")

    assert finish(run, "wf::c::sg::x", "failed", error=ERROR) == "queued"
    assert run.frame_stack == ["wf::c::sg"]
    assert run.nodes["c"].status == "running"

    start(run, "wf::c::sg::x")
    finish(run, "wf::c::sg::x")
    assert run.status == "succeeded"


def test_a_container_is_never_dispatched_to_a_worker() -> None:
    run = new_run(nested_three_levels())

    order = drive_to_end(run)

    assert not {"c1", f"{L1}::c2", f"{L2}::c3"} & set(order)
