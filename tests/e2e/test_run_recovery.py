"""Recovery of runs against real ``ledger serve`` processes.

- An executor that announces a restart or a shutdown, or whose lease runs out, has the runs
  it drives recovered with seed 002's strings, stop kinds and lifecycle entries; a worker
  whose lease runs out has its acknowledged nodes failed; ``ledger recover`` afterwards
  appends nothing.
- A SIGKILL of ``ledger serve`` while workers append loses no acknowledged event, and the
  restart by itself changes no run.

Lease servers run with a 1.5 s lease and a 200 ms policy interval; each wait is bounded by
``WAIT_S``.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from domain.run_lifecycle import (
    RESTART_DETAIL,
    RESTART_PAUSE_REASON,
    SHUTDOWN_DETAIL,
    WORKER_LOST_MESSAGE,
)
from tests.e2e.conftest import LedgerServer, ServerLauncher, ledger_executable, server_env
from tests.e2e.helpers import assert_chain, ok
from tests.e2e.run_helpers import (
    TERMINAL,
    chain_workflow,
    claim,
    head,
    run_appends_nothing,
    run_events,
    run_view,
    start_run,
    task,
    wait_until,
)

LEASE_S = 1.5
FAST = {"LEDGER_EXECUTOR_LEASE_MS": "1500", "LEDGER_POLICY_INTERVAL_MS": "200"}
WAIT_S = 10.0

# the exact strings of seed 002, spelled out here rather than imported alone
assert RESTART_DETAIL == "automation run interrupted by server restart"
assert RESTART_PAUSE_REASON == "automation run settled to paused after server restart"
assert SHUTDOWN_DETAIL == "automation run stopped during server shutdown"
assert WORKER_LOST_MESSAGE == "worker task terminated unexpectedly"


def _client(server: LedgerServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=10.0)


def _recover_cli(workdir: Path, database_url: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [ledger_executable(), "recover", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env=server_env(workdir, env),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _running_run(client: httpx.Client, run_id: str, executor_id: str, worker_id: str) -> str:
    """A run driven by ``executor_id`` whose first node ``worker_id`` claimed (not acked):
    the run is running. Returns the dispatch id."""
    start_run(client, run_id, chain_workflow("a", "b"), executor_id=executor_id)
    [dispatch] = claim(client, worker_id)
    assert dispatch["run_id"] == run_id
    assert run_view(client, run_id)["status"] == "running"
    return str(dispatch["dispatch_id"])


def _pausing_run(client: httpx.Client, run_id: str, executor_id: str, worker_id: str) -> None:
    """A run of ``executor_id`` asked to pause while a node is in flight: it stays pausing."""
    _running_run(client, run_id, executor_id, worker_id)
    answer = ok(client.post(f"/v1/runs/{run_id}/pause", json={}), 200)
    assert answer["status"] == "pausing"


def _last_entry(view: dict[str, Any]) -> dict[str, Any]:
    return view["lifecycle_history"][-1]  # type: ignore[no-any-return]


def _assert_failed_for(view: dict[str, Any], kind: str, detail: str, entry: str) -> None:
    assert view["status"] == "failed"
    assert (view["stop_kind"], view["stop_reason"], view["detail"]) == (kind, detail, detail)
    assert view["finished_at"] is not None
    assert view["error"] == {"code": kind, "message": detail}
    last = _last_entry(view)
    assert (last["event"], last["detail"], last["stop_kind"]) == (entry, detail, kind)
    assert all(node["status"] in ("cancelled", "succeeded") for node in view["nodes"].values())


def _assert_settled_paused(view: dict[str, Any]) -> None:
    assert view["status"] == "paused"
    assert view["pause_reason"] == RESTART_PAUSE_REASON
    assert view["finished_at"] is None
    last = _last_entry(view)
    assert (last["event"], last["detail"]) == (
        "run_pausing_settled_on_restart",
        RESTART_PAUSE_REASON,
    )


def test_an_executor_that_restarts_or_shuts_down_has_its_runs_recovered_once(
    ledger_server: LedgerServer, client: httpx.Client, database_url: str, tmp_path: Path
) -> None:
    _running_run(client, "run_r", "auto-1", "w1")
    _pausing_run(client, "run_p", "auto-1", "w1")
    _running_run(client, "run_s", "auto-2", "w1")
    _pausing_run(client, "run_sp", "auto-2", "w1")
    _running_run(client, "run_other", "auto-3", "w1")
    start_run(client, "run_q", chain_workflow("a"), executor_id="auto-1")  # queued: not touched

    with run_appends_nothing(client, "run_s", "run_sp", "run_other", "run_q"):
        answer = ok(client.post("/v1/executors/auto-1/restarted", json={}), 200)

    assert sorted(answer["recovered_runs"]) == ["run_p", "run_r"]
    restarted = run_view(client, "run_r")
    _assert_failed_for(restarted, "server_restart", RESTART_DETAIL, "run_failed_server_restart")
    [failed] = [e for e in run_events(client, "run_r") if e["type"] == "RunFailed"]
    assert failed["metadata"]["actor"] == "policy"
    _assert_settled_paused(run_view(client, "run_p"))
    document = ok(client.get("/v1/runs/run_r/status.json"), 200)
    assert (document["status"], document["stop_kind"]) == ("failed", "server_restart")
    assert document["stop_reason"] == RESTART_DETAIL
    assert run_view(client, "run_q")["status"] == "queued"
    status_file = Path(restarted["workspace"]) / ".ledger" / "runs" / "run_r" / "status.json"

    def file_caught_up() -> bool:
        try:
            return json.loads(status_file.read_text()) == document
        except (OSError, ValueError):
            return False

    wait_until("run_r's status.json file", file_caught_up, WAIT_S)

    with run_appends_nothing(client, "run_r", "run_p", "run_q"):
        again = ok(client.post("/v1/executors/auto-1/restarted", json={}), 200)
    assert again["recovered_runs"] == []

    with run_appends_nothing(client, "run_r", "run_p", "run_other", "run_q"):
        stopped = ok(client.post("/v1/executors/auto-2/shutdown", json={}), 200)
    assert stopped["recovered_runs"] == ["run_s"]
    _assert_failed_for(
        run_view(client, "run_s"), "shutdown", SHUTDOWN_DETAIL, "run_failed_shutdown"
    )
    assert run_view(client, "run_sp")["status"] == "pausing"  # seed 002 settles on restart only
    with run_appends_nothing(client, "run_s", "run_sp"):
        ok(client.post("/v1/executors/auto-2/shutdown", json={}), 200)

    # a finished run never becomes active again
    with run_appends_nothing(client, "run_r", "run_s"):
        for run_id in ("run_r", "run_s"):
            for action in ("resume", "pause", "cancel"):
                assert client.post(f"/v1/runs/{run_id}/{action}", json={}).status_code == 409
    assert run_view(client, "run_other")["status"] == "running"

    # ``ledger recover`` (the service's default lease) finds nothing more to do, twice
    before = head(client)
    for _ in range(2):
        _recover_cli(tmp_path, database_url)
        assert head(client) == before


def test_silent_executors_and_workers_are_recovered_when_their_leases_run_out(
    launcher: ServerLauncher, database_url: str, tmp_path: Path
) -> None:
    server = launcher.start(database_url, FAST)
    with _client(server) as client:
        _running_run(client, "run_lease", "auto-1", "w-idle")
        _pausing_run(client, "run_lease_p", "auto-1", "w-idle")
        start_run(client, "run_worker", chain_workflow("a", "b"))  # max_attempts 1
        [dispatch] = claim(client, "w-gone")
        assert dispatch["run_id"] == "run_worker"
        ack = {"dispatch_id": dispatch["dispatch_id"], "worker_id": "w-gone"}
        ok(client.post("/v1/runs/run_worker/nodes/a/ack", json=ack), 200)
        last_command = time.monotonic()

        def recovered() -> bool:
            views = [run_view(client, r) for r in ("run_lease", "run_lease_p", "run_worker")]
            return [v["status"] for v in views] == ["failed", "paused", "failed"]

        wait_until("the leases expired", recovered, WAIT_S)
        assert time.monotonic() - last_command >= LEASE_S - 0.05

        _assert_failed_for(
            run_view(client, "run_lease"),
            "server_restart",
            RESTART_DETAIL,
            "run_failed_server_restart",
        )
        _assert_settled_paused(run_view(client, "run_lease_p"))
        # the idle worker had acknowledged nothing: its dispatch was left to the ack timeout
        assert run_view(client, "run_lease_p")["nodes"]["a"]["pending_ack"] is True

        lost = run_view(client, "run_worker")
        node = lost["nodes"]["a"]
        assert node["status"] == "failed" and node["attempts"] == 1
        assert node["error"]["message"] == WORKER_LOST_MESSAGE
        assert lost["nodes"]["b"]["status"] == "cancelled"
        assert lost["detail"] == f"node a failed: {WORKER_LOST_MESSAGE}"
        assert lost["stop_kind"] is None
        entries = [e["event"] for e in lost["lifecycle_history"]]
        assert entries[-3:] == ["node_failed", "node_cancelled", "run_failed"]  # b cancelled
        document = ok(client.get("/v1/runs/run_worker/status.json"), 200)
        assert document["last_failure"]["node_id"] == "a"
        assert document["last_failure"]["reason"] == WORKER_LOST_MESSAGE

        # every executor's expiry is recorded; then ``ledger recover`` appends nothing, twice
        def expired() -> bool:
            page = ok(
                client.get(
                    "/v1/events",
                    params={"after": 0, "limit": 1000, "types": "ExecutorLeaseExpired"},
                ),
                200,
            )
            streams = {e["stream_id"] for e in page["events"]}
            return streams >= {"executor/auto-1", "executor/w-idle", "executor/w-gone"}

        wait_until("every lease expiry recorded", expired, WAIT_S)
        time.sleep(3 * 0.2)
        before = head(client)
        runs = {r: run_events(client, r) for r in ("run_lease", "run_lease_p", "run_worker")}
        for _ in range(2):
            _recover_cli(tmp_path, database_url, {"LEDGER_EXECUTOR_LEASE_MS": "1500"})
            assert head(client) == before
        for run_id, events in runs.items():
            assert run_events(client, run_id) == events


# SIGKILL mid-run -----------------------------------------------------------------------

KILL_NODES = 60
KILL_WORKERS = 4
QUIET_WAIT_S = 1.3  # longer than the default policy interval (1 s)


@dataclass(frozen=True)
class Acked:
    """A command that got a 2xx answer: the event its answer names."""

    node_id: str
    command: str
    seq: int
    position: int


@dataclass
class Burst:
    acks: list[Acked] = field(default_factory=list)
    dispatch_ids: dict[str, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post(
    client: httpx.Client, burst: Burst, path: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    """The answer, or None once the server is gone."""
    try:
        response = client.post(path, json=body)
    except httpx.TransportError:
        return None
    if not response.is_success:
        with burst.lock:
            burst.unexpected.append(f"POST {path} -> {response.status_code} {response.text}")
        return None
    return response.json()  # type: ignore[no-any-return]


def _kill_worker(base_url: str, burst: Burst, worker_id: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        while True:
            answer = _post(client, burst, "/v1/dispatch/claim", {"worker_id": worker_id})
            if answer is None:
                return
            if not answer["dispatches"]:
                time.sleep(0.01)
                continue
            [dispatch] = answer["dispatches"]
            node_id, dispatch_id = dispatch["node_id"], dispatch["dispatch_id"]
            with burst.lock:
                burst.dispatch_ids[node_id] = dispatch_id
            node = f"/v1/runs/run_kill/nodes/{node_id}"
            steps = [
                ("ack", {"dispatch_id": dispatch_id, "worker_id": worker_id}),
                (
                    "feedback",
                    {
                        "dispatch_id": dispatch_id,
                        "progress": 0.5,
                        "metadata": {"results": {"value": node_id}},
                        "chunks": [{"text": f"{node_id} working"}],
                    },
                ),
                ("result", {"dispatch_id": dispatch_id, "status": "succeeded"}),
            ]
            for command, body in steps:
                answer = _post(client, burst, f"{node}/{command}", body)
                if answer is None:
                    return
                with burst.lock:
                    burst.acks.append(Acked(node_id, command, answer["seq"], answer["position"]))
                if answer["status"] in TERMINAL:
                    return


def _assert_acknowledged_events_present(burst: Burst, events: list[dict[str, Any]]) -> None:
    expected_types = {
        "ack": {"NodeAcknowledged"},
        "feedback": {"NodeChunkAppended"},  # the command's last event
        "result": {"NodeSucceeded", "RunSucceeded"},
    }
    for ack in burst.acks:
        assert ack.seq <= len(events), f"acknowledged {ack} is missing"
        event = events[ack.seq - 1]
        assert (event["seq"], event["position"]) == (ack.seq, ack.position), (ack, event)
        assert event["type"] in expected_types[ack.command], (ack, event)
        if event["type"] != "RunSucceeded":
            assert event["data"]["task_id"] == ack.node_id, (ack, event)
    dispatched = {e["data"]["task_id"]: e for e in events if e["type"] == "NodeDispatched"}
    for node_id, dispatch_id in burst.dispatch_ids.items():  # every claim answered is there
        assert dispatched[node_id]["data"]["dispatch_id"] == dispatch_id


def _finish(client: httpx.Client) -> None:
    """Finish the run after the restart: in-flight nodes by their dispatch ids, then the rest."""
    status = "running"

    def complete(node_id: str, dispatch_id: str, pending_ack: bool) -> str:
        path = f"/v1/runs/run_kill/nodes/{node_id}"
        if pending_ack:
            ok(client.post(f"{path}/ack", json={"dispatch_id": dispatch_id}), 200)
        done = {"dispatch_id": dispatch_id, "status": "succeeded"}
        return str(ok(client.post(f"{path}/result", json=done), 200)["status"])

    for node_id, node in run_view(client, "run_kill")["nodes"].items():
        if node["status"] == "running":
            status = complete(node_id, node["dispatch_id"], node["pending_ack"])
    deadline = time.monotonic() + 30
    while status not in TERMINAL:
        assert time.monotonic() < deadline, "the run did not finish after the restart"
        for dispatch in claim(client, "w-after", limit=100):
            status = complete(dispatch["node_id"], dispatch["dispatch_id"], True)


def test_sigkill_mid_run_loses_no_acknowledged_event_and_the_restart_changes_no_run(
    launcher: ServerLauncher, database_url: str
) -> None:
    started = time.monotonic()
    seed = random.randrange(1 << 30)
    # killed after a random number of acknowledged commands (of about 3 per node), so the
    # kill lands mid-run however fast the machine is
    kill_at = random.Random(seed).randint(3 * KILL_WORKERS, KILL_NODES)
    where = f"seed {seed}, killed after {kill_at} acknowledged commands"
    server = launcher.start(database_url)
    workflow = {
        "id": "wf",
        "nodes": [task(f"n{i}") for i in range(KILL_NODES)] + [task("last")],
        "edges": [
            {"source": {"node": f"n{i}", "port": "o"}, "target": {"node": "last", "port": "i"}}
            for i in range(KILL_NODES)
        ],
    }
    with _client(server) as client:
        start_run(client, "run_kill", workflow, executor_id="auto-k")

    burst = Burst()
    threads = [
        threading.Thread(target=_kill_worker, args=(server.base_url, burst, f"w{n}"), daemon=True)
        for n in range(KILL_WORKERS)
    ]
    for thread in threads:
        thread.start()
    wait_until(where, lambda: len(burst.acks) >= kill_at or burst.unexpected, 30, every=0.002)
    server.kill()
    for thread in threads:
        thread.join(timeout=15)
    assert not burst.unexpected, f"{where}: {burst.unexpected}"

    restarted = launcher.start(database_url)
    with _client(restarted) as client:
        events = run_events(client, "run_kill")
        view = run_view(client, "run_kill")
        assert view["status"] == "running", f"{where}: the burst outlived the kill"
        assert_chain(events, "run_kill")
        assert view["seq"] == len(events)
        _assert_acknowledged_events_present(burst, events)
        acked_results = {a.node_id for a in burst.acks if a.command == "result"}
        succeeded = {n for n, node in view["nodes"].items() if node["status"] == "succeeded"}
        assert acked_results <= succeeded, where
        assert len(succeeded) <= len(acked_results) + KILL_WORKERS, where  # one in flight each

        position = head(client)
        time.sleep(QUIET_WAIT_S)  # policies tick; no command is sent
        assert head(client) == position, f"{where}: the restart appended something"
        assert run_events(client, "run_kill") == events, f"{where}: the restart changed the run"
        assert run_view(client, "run_kill") == view

        _finish(client)
        final = run_events(client, "run_kill")
        assert final[: len(events)] == events
        assert run_view(client, "run_kill")["status"] == "succeeded"
        assert_chain(final, "run_kill")
        dispatched = Counter(e["data"]["task_id"] for e in final if e["type"] == "NodeDispatched")
        assert set(dispatched.values()) == {1} and len(dispatched) == KILL_NODES + 1, where
    assert time.monotonic() - started < 60
