"""Replaying a run's events rebuilds exactly the state the live aggregate had, at every event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.base import fold
from domain.errors import DomainError
from domain.run import Run
from domain.run_state import NodeUsage
from tests.unit.builders import T0, at
from tests.unit.run_builders import (
    ACK_TIMEOUT,
    DispatchIds,
    chain,
    claim,
    container,
    edge,
    feedback,
    finish,
    gate,
    nested_three_levels,
    new_run,
    observable,
    subgraph,
    task,
    workflow,
)

Snapshots = dict[int, dict[str, Any]]


def replay(events: Sequence[Any]) -> Run:
    folded = fold(list(events))
    assert isinstance(folded, Run)
    return folded


@pytest.fixture
def after_each_event(monkeypatch: pytest.MonkeyPatch) -> Snapshots:
    """The live run's observable state after each event it applies, by version.

    A spy around ``trigger_event`` (it calls the real one first), so the state after an event
    in the middle of a command can be compared with the fold of the events up to it.
    """
    snapshots: Snapshots = {}
    original = Run.trigger_event

    def observed(self: Run, event_class: Any, **kwargs: Any) -> None:
        original(self, event_class, **kwargs)
        snapshots[self.version] = observable(self)

    monkeypatch.setattr(Run, "trigger_event", observed)
    return snapshots


def ack(run: Run, task_id: str, now: datetime) -> None:
    node = run.nodes[task_id]
    run.acknowledge(
        task_id=task_id, dispatch_id=str(node.dispatch_id), worker_id=node.worker_id, now=now
    )


def long_workflow() -> dict[str, Any]:
    """``prep → review (gate) → c1 → end`` and ``prep → end`` with a port binding; ``side``
    for worker w2 only; c1 runs sg1 (``x → c2``), c2 runs sg2 (``y``, ``z``)."""
    prep = task(
        "prep",
        ui={"outputPorts": [{"key": "out", "binding": {"path": "/results/value"}}]},
    )
    end = task("end", ui={"inputPorts": [{"key": "in", "binding": {"path": "/parameters/x"}}]})
    return workflow(
        [
            prep,
            gate("review"),
            container("c1", "sg1"),
            end,
            task("side", resourceRefs=[{"workerId": "w2"}]),
        ],
        [*chain("prep", "review", "c1", "end"), edge("prep", "end", "out", "in")],
        [
            subgraph("sg1", [task("x"), container("c2", "sg2")], chain("x", "c2")),
            subgraph("sg2", [task("y"), task("z")]),
        ],
    )


X = "wf::c1::sg1::x"
Y = "wf::c1::sg1::c2::sg2::y"
Z = "wf::c1::sg1::c2::sg2::z"


def long_script(run_box: list[Run]) -> list[Callable[[], object]]:
    """Every kind of command, in an order that reaches every run status but the final ones."""

    def r() -> Run:
        return run_box[0]

    def ok(task_id: str, when: float, result: Any = None) -> None:
        finish(r(), task_id, result=result, now=at(when))

    usage = NodeUsage(10, 5, 1, 0.25, "m")
    return [
        lambda: r().attach_session(session_id="s1", now=at(1)),
        lambda: r().attach_instance(instance_id="i1", now=at(1)),
        lambda: claim(r(), "w1", now=at(2)),
        lambda: claim(r(), "w2", now=at(2)),
        lambda: ack(r(), "prep", at(3)),
        lambda: r().time_out_ack(task_id="side", now=at(2) + ACK_TIMEOUT),
        lambda: feedback(
            r(),
            "prep",
            feedback_id="f1",
            stage="build",
            progress=0.4,
            message="half",
            metadata={"results": {"a": {"b": 1}}, "k": 1},
            metrics={"cpu": 1},
            chunks=[
                {"text": "hello"},
                {"channel": "err", "text": "x", "metadata": {"terminal": True}},
            ],
            usage=usage,
            now=at(40),
        ),
        lambda: feedback(r(), "prep", feedback_id="f1", progress=0.9, now=at(41)),
        lambda: feedback(
            r(), "prep", metadata={"results": {"a": {"c": 2}, "x": None}, "k": None}, now=at(42)
        ),
        lambda: r().record_worker_event(
            task_id="prep",
            kind="launched",
            worker_id="w1",
            detail="pid 1",
            outcome=None,
            data={},
            now=at(43),
        ),
        lambda: r().record_worker_event(
            task_id="prep",
            kind="update",
            worker_id="w1",
            detail=None,
            outcome=None,
            data={"rss": 3},
            now=at(44),
        ),
        lambda: ok("prep", 50, {"value": 3}),
        lambda: r().mark_gate_stale(
            task_id="review", stale_after=timedelta(seconds=60), now=at(110)
        ),
        lambda: r().decide_gate(
            task_id="review", decision="rework", reason="redo", actor="al", now=at(120)
        ),
        lambda: claim(r(), "w1", now=at(121)),
        lambda: ack(r(), "prep", at(122)),
        lambda: ok("prep", 123, {"value": 4}),
        lambda: r().decide_gate(
            task_id="review", decision="approve", reason=None, actor="al", now=at(130)
        ),
        lambda: claim(r(), "w1", now=at(131)),
        lambda: ack(r(), X, at(132)),
        lambda: r().pause(reason="lunch", now=at(133)),
        lambda: ok(X, 134),
        lambda: r().resume(reason="back", now=at(140)),
        lambda: claim(r(), "w1", now=at(141)),
        lambda: ack(r(), Y, at(142)),
        lambda: ack(r(), Z, at(142)),
        lambda: r().stale_reap(detail="quiet", now=at(800)),
        lambda: r().auto_resume(window=timedelta(minutes=20), max_resumes=2, now=at(801)),
        lambda: claim(r(), "w1", now=at(802)),
        lambda: ack(r(), Y, at(803)),
        lambda: r().guardrail_stop(reason="spend", now=at(804)),
        lambda: r().approve_quota_override(
            override_id="q1", agent_ids=["ag"], reason=None, actor="al", now=at(805)
        ),
        lambda: claim(r(), "w1", now=at(806)),
        lambda: ack(r(), Y, at(807)),
        lambda: ack(r(), Z, at(807)),
        lambda: finish(r(), Y, "failed", error={"code": "E", "message": "flaky"}, now=at(808)),
        lambda: ok(Z, 809),
        lambda: claim(r(), "w1", now=at(810)),
        lambda: ack(r(), Y, at(811)),
        lambda: ok(Y, 812),
        lambda: claim(r(), "w2", now=at(813)),
        lambda: ack(r(), "side", at(814)),
        lambda: r().link_thread(task_id="side", thread_id="thr_9", now=at(815)),
        lambda: r().recover_for_worker(worker_id="w2", now=at(816)),
        lambda: claim(r(), "w2", now=at(817)),
        lambda: ack(r(), "side", at(818)),
        lambda: finish(r(), "side", "skipped", now=at(819)),
        lambda: claim(r(), "w1", now=at(820)),
        lambda: ack(r(), "end", at(821)),
        lambda: r().detach_session(session_id="s1", now=at(822)),
        lambda: ok("end", 823, {"done": True}),
    ]


def test_every_prefix_of_a_long_run_folds_to_the_live_state_after_that_event(
    after_each_event: Snapshots,
) -> None:
    run_box = [new_run(long_workflow(), max_attempts=5)]
    after_each_event[1] = observable(run_box[0])
    for step in long_script(run_box):
        step()
    live = run_box[0]
    events = live.collect_events()

    assert live.status == "succeeded"
    assert live.nodes["end"].parameters == {"x": 4}
    assert len(events) == live.version == max(after_each_event) > 60
    assert sorted(after_each_event) == list(range(1, len(events) + 1))
    for count in range(1, len(events) + 1):
        assert observable(replay(events[:count])) == after_each_event[count], count


def test_the_long_run_passes_through_every_active_status(after_each_event: Snapshots) -> None:
    run_box = [new_run(long_workflow(), max_attempts=5)]
    for step in long_script(run_box):
        step()

    seen = {snapshot["status"] for snapshot in after_each_event.values()}
    assert {"queued", "running", "pausing", "paused", "awaiting_approval", "succeeded"} <= seen


def test_every_prefix_of_a_failing_nested_run_folds_to_the_live_state(
    after_each_event: Snapshots,
) -> None:
    live = new_run(nested_three_levels())
    after_each_event[1] = observable(live)
    level3 = "wf::c1::sg1::c2::sg2::c3::sg3"
    for task_id in ("start", "wf::c1::sg1::x", "wf::c1::sg1::c2::sg2::y"):
        claim(live, now=at(1))
        ack(live, task_id, at(1))
        finish(live, task_id, result={"v": task_id})
    claim(live, now=at(3))
    ack(live, f"{level3}::p", at(3))
    finish(live, f"{level3}::p", "failed", error={"code": "E", "message": "deep"}, now=at(4))
    events = live.collect_events()

    assert live.status == "failed"
    for count in range(1, len(events) + 1):
        assert observable(replay(events[:count])) == after_each_event[count], count


def test_every_prefix_of_a_restarted_and_shut_down_run_folds_to_the_live_state(
    after_each_event: Snapshots,
) -> None:
    for shutdown in (False, True):
        after_each_event.clear()
        run = new_run(workflow([task("a"), task("b")]), run_id=f"run_{shutdown}")
        after_each_event[1] = observable(run)
        claim(run, limit=1, now=at(2))
        if not shutdown:
            run.pause(reason=None, now=at(3))
        run.recover_for_executor(executor_id="auto-1", shutdown=shutdown, now=at(4))
        events = run.collect_events()

        assert run.status == ("failed" if shutdown else "paused")
        for count in range(1, len(events) + 1):
            assert observable(replay(events[:count])) == after_each_event[count], count


def test_a_gate_requested_at_creation_replays_to_the_live_state() -> None:
    live = new_run(workflow([gate("g"), task("b")], chain("g", "b")))
    events = live.collect_events()

    assert len(events) == 2
    assert observable(replay(events)) == observable(live)
    assert replay(events[:1]).status == "queued"


def test_folding_twice_gives_independent_runs() -> None:
    live = new_run(long_workflow())
    claim(live, now=at(1))
    ack(live, "prep", at(1))
    feedback(live, "prep", metadata={"results": {"a": {"b": 1}}})
    events = live.collect_events()

    first, second = replay(events), replay(events)
    first.nodes["prep"].result["a"]["b"] = 99
    first.workflow["nodes"].clear()

    assert second.nodes["prep"].result == {"a": {"b": 1}}
    assert second.workflow["nodes"]


def test_replaying_does_not_share_state_with_the_command_arguments() -> None:
    flow = long_workflow()
    live = new_run(flow)
    events = live.collect_events()

    flow["nodes"].clear()

    assert len(replay(events).plan.nodes) == len(live.plan.nodes)


# property: any sequence of commands --------------------------------------------------------------

PROPERTY_FLOW = workflow(
    [task("a"), gate("g"), container("c", "sg"), task("d", maxAttempts=2)],
    [*chain("a", "g", "c"), edge("a", "d")],
    [subgraph("sg", [task("x"), task("y")], chain("x", "y"))],
)
TASK_IDS = ("a", "g", "c", "d", "wf::c::sg::x", "wf::c::sg::y", "ghost")
COMMANDS = (
    *("claim", "ack", "feedback", "succeed") * 12,
    *("approve", "fail", "time_out_ack", "resume", "auto_resume") * 4,
    "ack_wrong",
    "cancelled",
    "command_error",
    "rework",
    "deny",
    "stale_gate",
    "pause",
    "resume",
    "cancel",
    "stale_reap",
    "auto_resume",
    "guardrail",
    "override",
    "restart",
    "worker_lost",
    "session",
)


def likely_tasks(run: Run) -> list[str]:
    """Nodes a command is likely to fit (in flight, awaiting a gate) first, then any."""
    in_flight = [t for t, n in run.nodes.items() if n.dispatch_id]
    return [*in_flight, *in_flight, *run.gates, *TASK_IDS]


def apply(run: Run, name: str, task_id: str, now: datetime, ids: DispatchIds) -> None:
    node = run.nodes.get(task_id)
    dispatch_id = str(node.dispatch_id) if node and node.dispatch_id else "none"
    if name == "claim":
        run.claim(worker_id="w1", limit=2, ack_timeout=ACK_TIMEOUT, new_dispatch_id=ids, now=now)
    elif name in ("ack", "ack_wrong"):
        chosen = dispatch_id if name == "ack" else "wrong"
        run.acknowledge(task_id=task_id, dispatch_id=chosen, worker_id="w1", now=now)
    elif name == "time_out_ack":
        run.time_out_ack(task_id=task_id, now=now + ACK_TIMEOUT)
    elif name == "feedback":
        run.record_feedback(
            task_id=task_id,
            dispatch_id=dispatch_id,
            feedback_id=f"f{now.second % 3}",
            stage="s",
            progress=1.5,
            message=None,
            metadata={"results": {"n": now.second, "gone": None}, "m": 1},
            metrics={},
            chunks=[{"text": "t"}],
            usage=NodeUsage(1, 1, 0, 0.1, None),
            now=now,
        )
    elif name in ("succeed", "fail", "cancelled"):
        status = {"succeed": "succeeded", "fail": "failed", "cancelled": "cancelled"}[name]
        run.record_result(
            task_id=task_id,
            dispatch_id=dispatch_id,
            status=status,
            result={"v": 1} if name == "succeed" else None,
            error=None,
            metadata={},
            artifacts=[],
            duration_ms=1,
            usage=None,
            now=now,
        )
    elif name == "command_error":
        run.record_command_error(task_id=None, dispatch_id=None, message="x", now=now)
    elif name in ("approve", "rework", "deny"):
        run.decide_gate(task_id=task_id, decision=name, reason=None, actor="a", now=now)
    elif name == "stale_gate":
        run.mark_gate_stale(task_id=task_id, stale_after=timedelta(0), now=now)
    elif name == "pause":
        run.pause(reason=None, now=now)
    elif name == "resume":
        run.resume(reason=None, now=now)
    elif name == "cancel":
        run.cancel(reason=None, now=now)
    elif name == "stale_reap":
        run.stale_reap(detail="quiet", now=now)
    elif name == "auto_resume":
        run.auto_resume(window=timedelta(hours=1), max_resumes=2, now=now)
    elif name == "guardrail":
        run.guardrail_stop(reason=None, now=now)
    elif name == "override":
        run.approve_quota_override(
            override_id=f"q{now.microsecond}", agent_ids=[], reason=None, actor="a", now=now
        )
    elif name == "restart":
        run.recover_for_executor(executor_id="auto-1", shutdown=now.second % 2 == 0, now=now)
    elif name == "worker_lost":
        run.recover_for_worker(worker_id="w1", now=now)
    else:
        run.attach_session(session_id=f"s{now.second % 2}", now=now)


@settings(max_examples=75, deadline=None, database=None)
@given(st.data())
def test_any_command_sequence_folds_to_the_live_state_and_refusals_append_nothing(
    data: st.DataObject,
) -> None:
    live = new_run(PROPERTY_FLOW, max_attempts=2)
    snapshots = {live.version: observable(live)}
    ids = DispatchIds()
    now = T0
    for _ in range(data.draw(st.integers(min_value=0, max_value=60), label="steps")):
        name = data.draw(st.sampled_from(COMMANDS), label="command")
        task_id = data.draw(st.sampled_from(likely_tasks(live)), label="task")
        now += timedelta(milliseconds=data.draw(st.integers(1, 5000), label="ms later"))
        before = observable(live)
        try:
            apply(live, name, task_id, now, ids)
        except DomainError:
            assert observable(live) == before, f"{name} {task_id} changed the run and raised"
            continue
        snapshots[live.version] = observable(live)
        if live.terminal:
            assert live.finished_at is not None
            assert (
                live.claim(
                    worker_id="w1", limit=5, ack_timeout=ACK_TIMEOUT, new_dispatch_id=ids, now=now
                )
                == []
            )
    events = live.collect_events()

    assert len(events) == live.version
    for version, snapshot in snapshots.items():
        assert observable(replay(events[:version])) == snapshot
