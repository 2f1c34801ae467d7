"""Small builders for Run tests: workflows in seed 001's format and runs driven by a fake worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from domain.run import Run
from domain.run_state import NodeUsage
from domain.workflow import definition_hash
from tests.unit.builders import T0, at

ACK_TIMEOUT = timedelta(seconds=30)


def task(node_id: str, node_type: str = "task", **extra: Any) -> dict[str, Any]:
    """A workflow node; ``extra`` keys are copied as they are (camelCase, as in seed 001)."""
    return {"id": node_id, "type": node_type, **extra}


def gate(node_id: str) -> dict[str, Any]:
    return task(node_id, "approval")


def container(node_id: str, subgraph_id: str) -> dict[str, Any]:
    return task(node_id, "workflow.container", containerConfig={"subgraphId": subgraph_id})


def edge(
    source: str, target: str, source_port: str | None = None, target_port: str | None = None
) -> dict[str, Any]:
    return {
        "source": {"node": source, "port": source_port},
        "target": {"node": target, "port": target_port},
    }


def chain(*node_ids: str) -> list[dict[str, Any]]:
    """Edges making ``node_ids`` a straight line."""
    return [edge(a, b) for a, b in pairwise(node_ids)]


def workflow(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]] | None = None,
    subgraphs: list[dict[str, Any]] | None = None,
    *,
    workflow_id: str = "wf",
) -> dict[str, Any]:
    found: dict[str, Any] = {"id": workflow_id, "nodes": nodes, "edges": edges or []}
    if subgraphs is not None:
        found["subgraphs"] = subgraphs
    return found


def subgraph(
    subgraph_id: str, nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"id": subgraph_id, "definition": {"nodes": nodes, "edges": edges or []}}


def linear(*node_ids: str) -> dict[str, Any]:
    """A workflow of task nodes in a straight line."""
    return workflow([task(n) for n in node_ids], chain(*node_ids))


def nested_three_levels() -> dict[str, Any]:
    """``start → c1 → end``: c1 runs sg1 (``x → c2``), c2 runs sg2 (``y → c3``), c3 sg3."""
    return workflow(
        [task("start"), container("c1", "sg1"), task("end")],
        chain("start", "c1", "end"),
        [
            subgraph("sg1", [task("x"), container("c2", "sg2")], chain("x", "c2")),
            subgraph("sg2", [task("y"), container("c3", "sg3")], chain("y", "c3")),
            subgraph("sg3", [task("p"), task("q")], chain("p", "q")),
        ],
    )


def new_run(
    flow: dict[str, Any],
    *,
    run_id: str = "run_1",
    executor_id: str | None = "auto-1",
    max_attempts: int = 1,
    now: datetime = T0,
) -> Run:
    return Run.create(
        run_id=run_id,
        client_id="c1",
        executor_id=executor_id,
        workspace="proj/a",
        automation_id="auto_1",
        trigger={"kind": "manual"},
        max_attempts=max_attempts,
        workflow=flow,
        definition_hash=definition_hash(flow),
        now=now,
    )


class DispatchIds:
    """Deterministic dispatch ids: ``d1``, ``d2``, …"""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"d{self.count}"


_ids = DispatchIds()


def claim(
    run: Run, worker_id: str = "w1", *, limit: int = 10, now: datetime | None = None
) -> dict[str, str]:
    """Claim ready nodes for ``worker_id``; their dispatch ids by task id."""
    claimed = run.claim(
        worker_id=worker_id,
        limit=limit,
        ack_timeout=ACK_TIMEOUT,
        new_dispatch_id=_ids,
        now=now or at(1),
    )
    return {task_id: str(run.nodes[task_id].dispatch_id) for task_id in claimed}


def start(run: Run, task_id: str, *, worker_id: str = "w1", now: datetime | None = None) -> str:
    """Claim and acknowledge ``task_id`` (which must be ready); its dispatch id."""
    claimed = claim(run, worker_id, now=now)
    assert task_id in claimed, f"{task_id} was not dispatched; got {sorted(claimed)}"
    dispatch_id = claimed[task_id]
    run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id=worker_id, now=now or at(1))
    return dispatch_id


def finish(
    run: Run,
    task_id: str,
    status: str = "succeeded",
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    usage: NodeUsage | None = None,
    now: datetime | None = None,
) -> str:
    """Report a result for the node's current dispatch; the node's status after it."""
    return run.record_result(
        task_id=task_id,
        dispatch_id=str(run.nodes[task_id].dispatch_id),
        status=status,
        result=result,
        error=error,
        metadata={},
        artifacts=[],
        duration_ms=5,
        usage=usage,
        now=now or at(2),
    )


def feedback(
    run: Run,
    task_id: str,
    *,
    feedback_id: str | None = None,
    stage: str | None = None,
    progress: float | None = None,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    chunks: list[dict[str, Any]] | None = None,
    usage: NodeUsage | None = None,
    now: datetime | None = None,
) -> bool:
    return run.record_feedback(
        task_id=task_id,
        dispatch_id=str(run.nodes[task_id].dispatch_id),
        feedback_id=feedback_id,
        stage=stage,
        progress=progress,
        message=message,
        metadata=metadata or {},
        metrics=metrics or {},
        chunks=chunks or [],
        usage=usage,
        now=now or at(2),
    )


def complete(run: Run, task_id: str, *, result: Any = None, now: datetime | None = None) -> None:
    """Claim, acknowledge and succeed ``task_id``."""
    start(run, task_id, now=now)
    finish(run, task_id, result=result, now=now)


def drive_to_end(run: Run, *, limit: int = 100) -> list[str]:
    """Succeed every node a worker can claim until none is left; task ids in dispatch order."""
    order: list[str] = []
    for _ in range(limit):
        claimed = claim(run)
        if not claimed:
            return order
        for task_id, dispatch_id in claimed.items():
            run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id="w1", now=at(1))
            finish(run, task_id, result={"value": task_id})
            order.append(task_id)
    raise AssertionError("the run never ran out of work")


def event_names(events: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def pending_names(run: Run) -> list[str]:
    """Names of the events not yet collected (and collect them)."""
    return event_names(run.collect_events())


def lifecycle_names(run: Run) -> list[str]:
    return [entry["event"] for entry in run.lifecycle]


def observable(run: Run) -> dict[str, Any]:
    """Everything a reader can see of a run, as plain values (a deep snapshot)."""
    return {
        "id": run.id,
        "version": run.version,
        "status": run.status,
        "client_id": run.client_id,
        "executor_id": run.executor_id,
        "definition_hash": run.definition_hash,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "detail": run.detail,
        "stop_kind": run.stop_kind,
        "stop_reason": run.stop_reason,
        "pause_reason": run.pause_reason,
        "stopped_at": run.stopped_at,
        "error": run.error,
        "frame_stack": list(run.frame_stack),
        "revision": run.revision,
        "last_dispatched": run.last_dispatched,
        "nodes": {task_id: asdict(node) for task_id, node in run.nodes.items()},
        "gates": {task_id: asdict(g) for task_id, g in run.gates.items()},
        "gate_queue": list(run.gate_queue),
        "gate_history": [dict(entry) for entry in run.gate_history],
        "lifecycle": [dict(entry) for entry in run.lifecycle],
        "sessions": list(run.sessions),
        "latest_session_id": run.latest_session_id,
        "instances": list(run.instances),
        "auto_resumes": run.auto_resume_count,
        "quota_overrides": list(run.quota_overrides),
        "usage": asdict(run.usage),
    }
