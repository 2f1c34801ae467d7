"""Helpers for the run e2e tests: workflows, reading a run's history, and simulated workers."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

import httpx

from tests.e2e.helpers import ok

TERMINAL = ("succeeded", "failed", "cancelled", "blocked")


def task(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "task", **extra}


def edge(source: str, target: str, out: str = "out", into: str = "in") -> dict[str, Any]:
    return {"source": {"node": source, "port": out}, "target": {"node": target, "port": into}}


def ports(
    outputs: dict[str, str] | None = None, inputs: dict[str, str] | None = None
) -> dict[str, Any]:
    """A node's ``ui`` with port bindings: ``{port key: binding path}``."""
    ui: dict[str, Any] = {}
    if outputs:
        ui["outputPorts"] = [{"key": k, "binding": {"path": p}} for k, p in outputs.items()]
    if inputs:
        ui["inputPorts"] = [{"key": k, "binding": {"path": p}} for k, p in inputs.items()]
    return {"ui": ui}


def chain_workflow(*node_ids: str) -> dict[str, Any]:
    """``a → b → …`` with no bindings."""
    edges = [edge(a, b) for a, b in itertools.pairwise(node_ids)]
    return {"id": "wf", "nodes": [task(n) for n in node_ids], "edges": edges}


def start_run(client: httpx.Client, run_id: str, workflow: dict[str, Any], **extra: Any) -> Any:
    body = {"run_id": run_id, "client_id": "c1", "workflow": workflow, **extra}
    return ok(client.post("/v1/runs", json=body), 202)


def claim(client: httpx.Client, worker_id: str, limit: int = 1) -> list[dict[str, Any]]:
    answer = ok(
        client.post("/v1/dispatch/claim", json={"worker_id": worker_id, "limit": limit}), 200
    )
    return answer["dispatches"]  # type: ignore[no-any-return]


def run_view(client: httpx.Client, run_id: str) -> dict[str, Any]:
    return ok(client.get(f"/v1/runs/{run_id}"), 200)


def run_events(client: httpx.Client, run_id: str, page: int = 1000) -> list[dict[str, Any]]:
    """Every event of a run, read in pages of ``page``."""
    events: list[dict[str, Any]] = []
    since = 0
    while True:
        answer = ok(
            client.get(f"/v1/runs/{run_id}/events", params={"since_seq": since, "limit": page}),
            200,
        )
        if not answer["events"]:
            assert answer["next_seq"] == since
            return events
        assert answer["events"][0]["seq"] == since + 1
        assert answer["next_seq"] == answer["events"][-1]["seq"]
        events.extend(answer["events"])
        since = answer["next_seq"]


@contextmanager
def run_appends_nothing(client: httpx.Client, *run_ids: str) -> Iterator[None]:
    """The block leaves each run's events exactly as they were."""
    before = {run_id: run_events(client, run_id) for run_id in run_ids}
    yield
    for run_id in run_ids:
        after = run_events(client, run_id)
        assert after == before[run_id], f"{len(after) - len(before[run_id])} events on {run_id}"


def head(client: httpx.Client) -> int:
    """The log's last position."""
    return int(ok(client.get("/v1/projections"), 200)["projections"][0]["head"])


def wait_until(what: str, check: Any, timeout: float = 10.0, every: float = 0.05) -> Any:
    """``check()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(every)


# a fold of a run's events, computed here from the event types alone ---------------


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _assign(target: dict[str, Any], path: list[str], value: Any) -> None:
    for segment in path[:-1]:
        target = target.setdefault(segment, {})
    if path:
        target[path[-1]] = deepcopy(value)
    elif isinstance(value, dict):
        target.update(deepcopy(value))


NO_STATUS_CHANGE = {
    "NodeAcknowledged",
    "NodeFeedbackRecorded",
    "NodeChunkAppended",
    "NodeUsageRecorded",
    "FrameClosed",
}


def fold(events: list[dict[str, Any]], initial: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run status, and each node's status, attempts, parameters and result, after ``events``,
    written from the event types independently of the server's aggregate. ``initial`` names
    the run's nodes with the parameters it was created with."""
    status: str | None = None
    nodes = {
        task_id: {
            "status": "queued",
            "attempts": 0,
            "parameters": deepcopy(node["parameters"]),
            "result": None,
        }
        for task_id, node in initial.items()
    }
    for event in events:
        kind, data = event["type"], event["data"]
        node = nodes.get(data.get("task_id") or data.get("container_task_id") or "")
        if kind == "RunCreated":
            status = "queued"
        elif kind in ("NodeDispatched", "FrameOpened"):
            assert node is not None, event
            node["status"] = "running"
            status = "running" if status == "queued" else status
        elif kind == "NodeSucceeded":
            assert node is not None, event
            node["status"] = "succeeded"
            if not data["keep_result"]:
                node["result"] = deepcopy(data["result"])
            for binding in data["bindings"]:
                _assign(nodes[binding["task_id"]]["parameters"], binding["path"], binding["value"])
        elif kind == "NodeFailed":
            assert node is not None, event
            node["attempts"] = data["attempts"]
            node["status"] = "queued" if data["retry"] else "failed"
        elif kind == "NodeCancelled":
            assert node is not None, event
            node["status"] = "cancelled"
        elif kind == "NodeAckTimedOut":
            assert node is not None, event
            node["status"] = "queued"
            node["attempts"] = data["attempts"]
            status = data["run_status"]
        elif kind == "NodeResultDelta":
            assert node is not None, event
            if not isinstance(node["result"], dict):
                node["result"] = {}
            path = [_unescape(s) for s in data["path"].split("/")[1:]]
            if data["operation"] == "remove":
                parent = node["result"]
                for segment in path[:-1]:
                    parent = parent[segment]
                parent.pop(path[-1], None)
            else:
                _assign(node["result"], path, data["value"])
        elif kind in ("RunSucceeded", "RunFailed", "RunCancelled", "RunBlocked"):
            status = kind.removeprefix("Run").lower()
        else:
            assert kind in NO_STATUS_CHANGE, f"the test's fold does not know {kind}"
    return {"status": status, "nodes": nodes}


def folded_view(view: dict[str, Any]) -> dict[str, Any]:
    """The part of a run view ``fold`` computes."""
    return {
        "status": view["status"],
        "nodes": {
            task_id: {
                "status": node["status"],
                "attempts": node["attempts"],
                "parameters": node["parameters"],
                "result": node["result"],
            }
            for task_id, node in view["nodes"].items()
        },
    }
