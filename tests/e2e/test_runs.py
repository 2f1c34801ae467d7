"""Workflow runs against a real ``ledger serve``: simulated workers drive a run of 20+ nodes to
completion, then its status.json file, summary, replay and time travel are checked against the
history; the ack timeout requeues a dispatch nobody acknowledged; bad input gets a clear 4xx
and appends nothing.

Each test is bounded (``WAIT_S`` per wait, ``RUN_BOUND_S`` for the whole workflow); the
module takes a few seconds per backend.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import LedgerServer, ServerLauncher
from tests.e2e.helpers import assert_chain, assert_error, ok
from tests.e2e.run_helpers import (
    TERMINAL,
    chain_workflow,
    claim,
    edge,
    fold,
    folded_view,
    head,
    ports,
    run_appends_nothing,
    run_events,
    run_view,
    start_run,
    task,
    wait_until,
)

WORKERS = 3
FAN = 10
RUN_BOUND_S = 60.0
WAIT_S = 10.0
FRAME = "wf::box::inner"


# the workflow ---------------------------------------------------------------------


def big_workflow() -> dict[str, Any]:
    """``src`` fans out to ``f0..f9``, which fan in to ``join``; then the container ``box``
    (a subgraph that fans out and in again) and ``g0..g2`` run, and ``sink`` waits for them.
    Values flow along the edges from ``/results/…`` into ``/parameters/…``."""
    value = {"out": "/results/value"}
    nodes = [
        task(
            "src",
            package={"name": "gen", "version": "1"},
            parameters={"seed": 1},
            **ports({"out": "/results/value", "slash": "/results/a~1b"}),
        ),
        *[task(f"f{i}", **ports(value, {"in": "/parameters/x"})) for i in range(FAN)],
        task("join", **ports(value, {f"in{i}": f"/parameters/f{i}" for i in range(FAN)})),
        {"id": "box", "type": "workflow.container", "containerConfig": {"subgraphId": "inner"}},
        task("g0", **ports(inputs={"in": "/parameters/slashed"})),
        task("g1"),
        task("g2"),
        task("sink"),
    ]
    edges = [
        *[edge("src", f"f{i}") for i in range(FAN)],
        *[edge(f"f{i}", "join", into=f"in{i}") for i in range(FAN)],
        edge("join", "box", "done", "go"),
        *[edge("join", f"g{i}", "done", "go") for i in range(3)],
        edge("src", "g0", "slash", "in"),
        edge("box", "sink", "done", "go"),
        *[edge(f"g{i}", "sink", "done", "go") for i in range(3)],
    ]
    inner = {
        "nodes": [
            task("s_in", **ports(value)),
            *[task(f"s_{k}", **ports(value, {"in": "/parameters/x"})) for k in "abc"],
            task("s_out", **ports(inputs={k: f"/parameters/{k}" for k in "abc"})),
        ],
        "edges": [
            *[edge("s_in", f"s_{k}") for k in "abc"],
            *[edge(f"s_{k}", "s_out", into=k) for k in "abc"],
        ],
    }
    return {
        "id": "wf",
        "nodes": nodes,
        "edges": edges,
        "subgraphs": [{"id": "inner", "definition": inner}],
    }


def value_of(parameters: dict[str, Any]) -> int:
    """What a simulated worker computes: 1 + the integer parameters it was given."""
    return 1 + sum(v for v in parameters.values() if isinstance(v, int))


TASKS = [
    "src",
    *[f"f{i}" for i in range(FAN)],
    "join",
    "g0",
    "g1",
    "g2",
    "sink",
    *[f"{FRAME}::{n}" for n in ("s_in", "s_a", "s_b", "s_c", "s_out")],
]
EXPECTED_PARAMETERS = {
    "src": {"seed": 1},
    **{f"f{i}": {"x": 2} for i in range(FAN)},
    "join": {f"f{i}": 3 for i in range(FAN)},
    "box": {},
    "g0": {"slashed": "slash"},
    "g1": {},
    "g2": {},
    "sink": {},
    f"{FRAME}::s_in": {},
    **{f"{FRAME}::s_{k}": {"x": 1} for k in "abc"},
    f"{FRAME}::s_out": {k: 2 for k in "abc"},
}


# simulated workers ----------------------------------------------------------------


class Fleet:
    """Worker threads that claim, acknowledge, report feedback and a result until the run ends."""

    def __init__(self, base_url: str, run_id: str) -> None:
        self.base_url = base_url
        self.run_id = run_id
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.dispatches: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.final_status: str | None = None

    def work(self, worker_id: str) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
                while not self.stop.is_set():
                    dispatches = claim(client, worker_id, limit=2)
                    if not dispatches:
                        self.stop.wait(0.01)
                        continue
                    for dispatch in dispatches:
                        with self.lock:
                            self.dispatches.append((worker_id, dispatch))
                        self.run_node(client, worker_id, dispatch)
        except Exception as error:  # reported by the test, which fails on any
            with self.lock:
                self.errors.append(f"{worker_id}: {error!r}")
            self.stop.set()

    def run_node(self, client: httpx.Client, worker_id: str, dispatch: dict[str, Any]) -> None:
        assert dispatch["run_id"] == self.run_id
        node = f"/v1/runs/{self.run_id}/nodes/{dispatch['node_id']}"
        dispatch_id = dispatch["dispatch_id"]
        ok(
            client.post(f"{node}/ack", json={"dispatch_id": dispatch_id, "worker_id": worker_id}),
            200,
        )
        results: dict[str, Any] = {"value": value_of(dispatch["parameters"]), "tmp": "scratch"}
        results["worker"] = worker_id
        if dispatch["node_id"] == "src":
            results["a/b"] = "slash"
        feedback = {
            "dispatch_id": dispatch_id,
            "feedback_id": f"{dispatch_id}-1",
            "stage": "running",
            "progress": 0.5,
            "message": "half way",
            "metrics": {"steps": 1},
            "metadata": {"results": results, "host": "sim"},
            "chunks": [
                {"text": "starting"},
                {"channel": "stdout", "text": "done", "metadata": {"terminal": True}},
            ],
        }
        answer = ok(client.post(f"{node}/feedback", json=feedback), 200)
        assert (answer["deltas"], answer["chunks"]) == (len(results), 2), answer
        ok(client.post(f"{node}/feedback", json=feedback), 200)  # a retry: recorded once
        cleanup = {
            "dispatch_id": dispatch_id,
            "progress": 7,
            "metadata": {"results": {"tmp": None}},
        }
        ok(client.post(f"{node}/feedback", json=cleanup), 200)
        done = {"dispatch_id": dispatch_id, "status": "succeeded", "duration_ms": 5}
        answer = ok(client.post(f"{node}/result", json=done), 200)
        assert answer["node_status"] == "succeeded"
        if answer["status"] in TERMINAL:
            self.final_status = answer["status"]
            self.stop.set()

    def run(self, workers: int) -> None:
        threads = [
            threading.Thread(target=self.work, args=(f"w{n}",), daemon=True) for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        self.stop.wait(RUN_BOUND_S)
        self.stop.set()
        for thread in threads:
            thread.join(timeout=15)
        assert not any(t.is_alive() for t in threads), "a worker did not stop"
        assert not self.errors, self.errors


def _status_file(workspace: str, run_id: str) -> Path:
    return Path(workspace) / ".ledger" / "runs" / run_id / "status.json"


def _file_at(path: Path, seq: int) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if document.get("seq") == seq else None  # type: ignore[no-any-return]


def test_three_workers_drive_a_workflow_of_twenty_plus_nodes_to_completion_and_every_view_agrees(
    ledger_server: LedgerServer, client: httpx.Client, tmp_path: Path
) -> None:
    workflow = big_workflow()
    started = start_run(client, "run_big", workflow, automation_id="auto_nightly")
    assert started["status"] == "queued" and started["seq"] == 1

    fleet = Fleet(ledger_server.base_url, "run_big")
    fleet.run(WORKERS)

    assert fleet.final_status == "succeeded"
    view = run_view(client, "run_big")
    assert view["status"] == "succeeded" and view["finished_at"] is not None
    assert len(view["nodes"]) >= 20
    assert sorted(view["nodes"]) == sorted([*TASKS, "box"])
    assert all(node["status"] == "succeeded" for node in view["nodes"].values())

    # every task node dispatched exactly once, to the worker the view names
    claimed = Counter(d["node_id"] for _, d in fleet.dispatches)
    assert claimed == Counter(TASKS), claimed
    for worker_id, dispatch in fleet.dispatches:
        node = view["nodes"][dispatch["node_id"]]
        assert node["worker_id"] == worker_id and node["attempts"] == 0
    events = run_events(client, "run_big", page=50)  # replay in pages
    dispatched = Counter(e["data"]["task_id"] for e in events if e["type"] == "NodeDispatched")
    assert dispatched == Counter(TASKS)

    # values flowed along the edges; results are the merge-patched feedback
    for task_id, parameters in EXPECTED_PARAMETERS.items():
        assert view["nodes"][task_id]["parameters"] == parameters, task_id
    for task_id in TASKS:
        node = view["nodes"][task_id]
        expected: dict[str, Any] = {
            "value": value_of(EXPECTED_PARAMETERS[task_id]),
            "worker": node["worker_id"],
        }
        if task_id == "src":
            expected["a/b"] = "slash"
        assert node["result"] == expected, task_id
        assert (node["result_sequence"], node["chunk_sequence"]) == (len(expected) + 2, 2)
        assert node["progress"] == 1.0  # 7 clamped
        assert node["metadata"] == {"host": "sim"} and node["metrics"] == {"steps": 1}
    chunks = [e["data"] for e in events if e["type"] == "NodeChunkAppended"]
    assert len(chunks) == 2 * len(TASKS)
    assert {(c["channel"], c["sequence"], c["terminal"]) for c in chunks} == {
        ("log", 1, False),
        ("stdout", 2, True),
    }

    # replay: 1..N, a valid hash chain, the view's seq is the last
    assert_chain(events, "run_big")
    assert events[-1]["type"] == "RunSucceeded"
    last = len(events)
    assert view["seq"] == last

    # status.json: the file under the workspace equals the document over HTTP
    document = ok(client.get("/v1/runs/run_big/status.json"), 200)
    assert document["seq"] == last and document["status"] == "succeeded"
    assert sorted(document["completed_nodes"]) == sorted([*TASKS, "box"])
    assert document["pending_nodes"] == [] and document["last_failure"] is None
    assert document["node_attempts"] == {t: 1 for t in sorted(TASKS)}
    assert document["automation_id"] == "auto_nightly"
    assert Path(view["workspace"]).resolve() == (tmp_path / "workspace").resolve()
    path = _status_file(view["workspace"], "run_big")
    on_disk = wait_until("status.json at the last seq", lambda: _file_at(path, last), WAIT_S)
    assert on_disk == document

    # the summary (waiting for the list to reach the last event)
    position = events[-1]["position"]
    page = ok(client.get("/v1/runs", params={"min_position": position, "client_id": "c1"}), 200)
    [summary] = [item for item in page["items"] if item["run_id"] == "run_big"]
    for key in ("status", "client_id", "automation_id", "executor_id", "definition_hash"):
        assert summary[key] == view[key], key
    for key in ("created_at", "started_at", "finished_at", "detail", "stop_kind"):
        assert summary[key] == view[key], key
    assert (summary["last_seq"], summary["last_position"]) == (last, position)
    assert summary["nodes"] == {
        "total": len(view["nodes"]),
        "succeeded": len(view["nodes"]),
        "failed": 0,
    }
    succeeded = ok(client.get("/v1/runs", params={"status": "succeeded"}), 200)["items"]
    assert [item["run_id"] for item in succeeded] == ["run_big"]
    assert ok(client.get("/v1/runs", params={"status": "running"}), 200)["items"] == []

    # time travel: /at/k is the fold of events 1..k; /at/N is the run itself
    initial = {task_id: {"parameters": workflow_parameters(task_id)} for task_id in view["nodes"]}
    frame_events = [e["seq"] for e in events if e["type"] in ("FrameOpened", "FrameClosed")]
    checked = sorted(
        {1, 2, 3, last // 3, last // 2, last - 2, last - 1, last, *frame_events}
        | set(range(5, last, 9))
    )
    for k in checked:
        at = ok(client.get(f"/v1/runs/run_big/at/{k}"), 200)
        assert at["seq"] == k
        assert folded_view(at) == fold(events[:k], initial), f"/at/{k}"
    assert ok(client.get(f"/v1/runs/run_big/at/{last}"), 200) == run_view(client, "run_big")
    assert ok(client.get("/v1/runs/run_big/at/1"), 200)["status"] == "queued"
    assert_error(client.get(f"/v1/runs/run_big/at/{last + 1}"), 404)
    assert_error(client.get("/v1/runs/run_big/at/0"), 400)
    opened, closed = frame_events
    inside = ok(client.get(f"/v1/runs/run_big/at/{opened}"), 200)
    assert inside["frames"] == [FRAME] and inside["nodes"]["box"]["status"] == "running"
    assert ok(client.get(f"/v1/runs/run_big/at/{closed}"), 200)["frames"] == []

    # the diff between two seqs names the events in between and the status change
    diff = ok(client.get("/v1/runs/run_big/diff", params={"from": 1, "to": last}), 200)
    assert diff["status"] == {"from": "queued", "to": "succeeded"}
    assert [e["seq"] for e in diff["events"]] == list(range(2, last + 1))
    assert diff["events"] == events[1:]


def workflow_parameters(task_id: str) -> dict[str, Any]:
    """The parameters a node of ``big_workflow`` starts with."""
    return {"seed": 1} if task_id == "src" else {}


# the ack timeout --------------------------------------------------------------------

ACK_TIMEOUT_S = 0.4
ACK_ENV = {"LEDGER_ACK_TIMEOUT_MS": "400", "LEDGER_POLICY_INTERVAL_MS": "100"}


def test_a_claimed_node_nobody_acknowledges_is_requeued_by_the_ack_timeout_and_claimable_again(
    launcher: ServerLauncher, database_url: str
) -> None:
    server = launcher.start(database_url, ACK_ENV)
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        start_run(client, "run_ack", chain_workflow("a", "b"))
        [first] = claim(client, "w-slow")
        claimed_at = time.monotonic()
        assert (first["node_id"], first["attempt"]) == ("a", 1)
        assert run_view(client, "run_ack")["status"] == "running"

        def requeued() -> dict[str, Any] | None:
            view = run_view(client, "run_ack")
            return view if view["nodes"]["a"]["status"] == "queued" else None

        view = wait_until("the ack timeout requeued a", requeued, WAIT_S, every=0.02)
        assert time.monotonic() - claimed_at >= ACK_TIMEOUT_S - 0.05
        node = view["nodes"]["a"]
        assert node["attempts"] == 1
        assert (node["pending_ack"], node["dispatch_id"], node["worker_id"]) == (False, None, None)
        assert view["status"] == "queued"  # no other node had started
        [timed_out] = [e for e in run_events(client, "run_ack") if e["type"] == "NodeAckTimedOut"]
        assert timed_out["data"]["task_id"] == "a" and timed_out["metadata"]["actor"] == "policy"
        assert timed_out["data"]["dispatch_id"] == first["dispatch_id"]
        assert "node_ack_timed_out" in [e["event"] for e in view["lifecycle_history"]]

        # the old dispatch is dead; the node is claimable again, as attempt 2
        late = {"dispatch_id": first["dispatch_id"], "worker_id": "w-slow"}
        with run_appends_nothing(client, "run_ack"):
            assert_error(client.post("/v1/runs/run_ack/nodes/a/ack", json=late), 409)
        [second] = claim(client, "w-fast")
        assert (second["node_id"], second["attempt"]) == ("a", 2)
        assert second["dispatch_id"] != first["dispatch_id"]
        body = {"dispatch_id": second["dispatch_id"], "worker_id": "w-fast"}
        ok(client.post("/v1/runs/run_ack/nodes/a/ack", json=body), 200)
        time.sleep(ACK_TIMEOUT_S + 0.3)  # acknowledged: the policy leaves it alone
        node = run_view(client, "run_ack")["nodes"]["a"]
        assert (node["status"], node["attempts"], node["worker_id"]) == ("running", 1, "w-fast")
        done = {"dispatch_id": second["dispatch_id"], "status": "succeeded"}
        ok(client.post("/v1/runs/run_ack/nodes/a/result", json=done), 200)
        document = ok(client.get("/v1/runs/run_ack/status.json"), 200)
        assert document["node_attempts"] == {"a": 2}


# bad input ---------------------------------------------------------------------------


def _malformed_workflows() -> dict[str, dict[str, Any]]:
    return {
        "cycle": {
            "nodes": [task("a"), task("b"), task("c")],
            "edges": [edge("a", "b"), edge("b", "c"), edge("c", "a")],
        },
        "unknown edge node": {"nodes": [task("a")], "edges": [edge("a", "ghost")]},
        "duplicate id": {"nodes": [task("a"), task("a")], "edges": []},
        "missing subgraph": {
            "nodes": [
                {
                    "id": "box",
                    "type": "workflow.container",
                    "containerConfig": {"subgraphId": "nope"},
                }
            ],
            "edges": [],
        },
        "subgraph with a cycle": {
            "nodes": [
                {"id": "box", "type": "workflow.container", "containerConfig": {"subgraphId": "sg"}}
            ],
            "subgraphs": [
                {
                    "id": "sg",
                    "definition": {
                        "nodes": [task("x"), task("y")],
                        "edges": [edge("x", "y"), edge("y", "x")],
                    },
                }
            ],
        },
    }


def test_bad_input_gets_a_clear_4xx_and_appends_nothing(client: httpx.Client) -> None:
    start_run(client, "run_bad", chain_workflow("a", "b"))
    [dispatch] = claim(client, "w1")
    good = dispatch["dispatch_id"]
    node_a = "/v1/runs/run_bad/nodes/a"

    with run_appends_nothing(client, "run_bad"):
        for action in ("ack", "feedback", "result"):
            body = (
                {"dispatch_id": good, "status": "succeeded"}
                if action == "result"
                else {"dispatch_id": good}
            )
            assert_error(client.post(f"/v1/runs/run_bad/nodes/zzz/{action}", json=body), 404)
            assert_error(client.post(f"/v1/runs/run_nope/nodes/a/{action}", json=body), 404)
        assert_error(client.post(f"{node_a}/ack", json={"dispatch_id": "dsp_wrong"}), 409)
        assert_error(client.post(f"{node_a}/feedback", json={"dispatch_id": "dsp_wrong"}), 409)
        wrong = {"dispatch_id": "dsp_wrong", "status": "succeeded"}
        assert_error(client.post(f"{node_a}/result", json=wrong), 409)
        bad_progress = {"dispatch_id": good, "progress": "abc"}
        error = assert_error(client.post(f"{node_a}/feedback", json=bad_progress), 422)
        assert "progress" in json.dumps(error)
        assert_error(
            client.post(f"{node_a}/feedback", json={"dispatch_id": good, "progress": "NaN"}), 422
        )
        bogus = {"dispatch_id": good, "status": "exploded"}
        assert_error(client.post(f"{node_a}/result", json=bogus), 422)
        assert_error(client.post(f"{node_a}/ack", content=b"{"), 400)
        assert_error(client.post("/v1/runs/run_bad/nodes/b/ack", json={"dispatch_id": good}), 409)

    ok(client.post(f"{node_a}/ack", json={"dispatch_id": good, "worker_id": "w1"}), 200)
    with run_appends_nothing(client, "run_bad"):
        assert_error(client.post(f"{node_a}/ack", json={"dispatch_id": good}), 409)  # twice
    done = {"dispatch_id": good, "status": "succeeded", "result": {"v": 1}}
    ok(client.post(f"{node_a}/result", json=done), 200)
    with run_appends_nothing(client, "run_bad"):
        error = assert_error(client.post(f"{node_a}/result", json=done), 409)
        assert "succeeded" in error["message"]
        failed = {"dispatch_id": good, "status": "failed"}
        assert_error(client.post(f"{node_a}/result", json=failed), 409)
        assert_error(client.post(f"{node_a}/feedback", json={"dispatch_id": good}), 409)
    assert run_view(client, "run_bad")["nodes"]["a"]["result"] == {"v": 1}

    # malformed workflows: 422 naming the problem, no run, nothing appended anywhere
    before = head(client)
    for n, (problem, workflow) in enumerate(_malformed_workflows().items()):
        answer = client.post(
            "/v1/runs", json={"run_id": f"run_bad_{n}", "client_id": "c1", "workflow": workflow}
        )
        error = assert_error(answer, 422)
        assert error["message"], problem
        assert_error(client.get(f"/v1/runs/run_bad_{n}"), 404)
    assert head(client) == before
    message = assert_error(
        client.post(
            "/v1/runs", json={"client_id": "c1", "workflow": _malformed_workflows()["cycle"]}
        ),
        422,
    )["message"]
    assert "cycle" in message.lower(), message
    message = assert_error(
        client.post(
            "/v1/runs",
            json={"client_id": "c1", "workflow": _malformed_workflows()["unknown edge node"]},
        ),
        422,
    )["message"]
    assert "ghost" in message, message
    assert head(client) == before

    # a blocked run is final: pause, resume and cancel are refused
    start_run(client, "run_blocked", chain_workflow("a"))
    assert (
        ok(client.post("/v1/runs/run_blocked/block", json={"reason": "policy"}), 200)["status"]
        == "blocked"
    )
    with run_appends_nothing(client, "run_blocked"):
        for action in ("pause", "resume", "cancel", "block"):
            error = assert_error(client.post(f"/v1/runs/run_blocked/{action}", json={}), 409)
            assert "blocked" in error["message"]
        assert all(d["run_id"] != "run_blocked" for d in claim(client, "w1", limit=5))
    assert run_view(client, "run_blocked")["status"] == "blocked"
