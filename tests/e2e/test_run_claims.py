"""Concurrent claims: 8 workers on two ``ledger serve`` processes sharing one PostgreSQL database
take 200 ready nodes at the same moment; every node is dispatched exactly once, oldest run first.

10 runs of 20 independent nodes are created one after the other (run 0 is the oldest). Then
8 worker threads, 4 per server, wait on a barrier and claim in a loop (limits 1..8) until a
claim comes back empty. The two servers decide each run under optimistic concurrency (one
retries on the fresh state when the other appended first), so the store must hold exactly one
``NodeDispatched`` per node, the workers' claims must be disjoint and cover all 200 nodes, and
in commit order (global position) the dispatches must walk the runs oldest first.

With idempotency keys, each claim is one commit over the runs it takes nodes from (holding
their locks in oldest-first order), and each is sent again, with its key, to the other
server: the retry must answer the same dispatches and claim nothing more.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LedgerServer, ServerLauncher
from tests.e2e.helpers import ok

RUNS = 10
NODES_PER_RUN = 20
WORKERS_PER_SERVER = 4
TOTAL = RUNS * NODES_PER_RUN
# No policy may requeue a dispatch while the test runs: a requeue would be a second dispatch.
QUIET_POLICIES = {
    "LEDGER_ACK_TIMEOUT_MS": "600000",
    "LEDGER_EXECUTOR_LEASE_MS": "600000",
    "LEDGER_WORKER_LAUNCH_TIMEOUT_MS": "600000",
    "LEDGER_STALE_RUN_AFTER_MS": "600000",
}
TIME_BOUND_S = 30.0


def _workflow(index: int) -> dict[str, Any]:
    nodes = [{"id": f"n{k:02d}", "type": "task"} for k in range(NODES_PER_RUN)]
    return {"id": f"wf{index}", "nodes": nodes, "edges": []}


def _worker(
    base_url: str,
    retry_url: str | None,
    worker_id: str,
    first_limit: int,
    barrier: threading.Barrier,
    claims: list[tuple[str, list[dict[str, Any]]]],
    problems: list[str],
) -> None:
    """Claim until nothing is left; with ``retry_url``, each claim carries a key of its own
    and is sent again to that server, which must replay it."""
    limit = first_limit
    try:
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            barrier.wait(timeout=30)
            for attempt in range(1, 1000):
                body = {"worker_id": worker_id, "limit": limit}
                headers = {"Idempotency-Key": f"{worker_id}-{attempt}"} if retry_url else {}
                response = client.post("/v1/dispatch/claim", json=body, headers=headers)
                if response.status_code != 200:
                    problems.append(f"{worker_id}: {response.status_code} {response.text[:300]}")
                    return
                dispatches = response.json()["dispatches"]
                if not dispatches:
                    return
                if retry_url is not None:
                    retry = client.post(
                        f"{retry_url}/v1/dispatch/claim", json=body, headers=headers
                    )
                    if (
                        retry.json() != response.json()
                        or "idempotent-replayed" not in retry.headers
                    ):
                        problems.append(f"{worker_id}: retry answered {retry.text[:300]}")
                        return
                claims.append((worker_id, dispatches))
                limit = limit % 8 + 1
    except Exception as error:  # reported by the test, not lost in a thread
        problems.append(f"{worker_id}: {error!r}")


def _events(client: httpx.Client, types: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = ok(
            client.get("/v1/events", params={"after": after, "limit": 1000, "types": types}), 200
        )
        if not page["events"]:
            return events
        events.extend(page["events"])
        after = page["next_after"]


@pytest.mark.parametrize("keyed", [False, True], ids=["one-commit-per-run", "idempotency-keys"])
def test_eight_workers_on_two_instances_dispatch_each_of_200_nodes_exactly_once(
    launcher: ServerLauncher, pg_url: str, keyed: bool
) -> None:
    servers: list[LedgerServer] = [launcher.start(pg_url, QUIET_POLICIES) for _ in range(2)]
    run_ids = [f"run_claims_{index}" for index in range(RUNS)]
    with httpx.Client(base_url=servers[0].base_url, timeout=30.0) as client:
        for index, run_id in enumerate(run_ids):
            body = {"run_id": run_id, "client_id": "c1", "workflow": _workflow(index)}
            assert ok(client.post("/v1/runs", json=body), 202)["status"] == "queued"

    barrier = threading.Barrier(len(servers) * WORKERS_PER_SERVER)
    claims: list[tuple[str, list[dict[str, Any]]]] = []
    problems: list[str] = []
    threads = [
        threading.Thread(
            target=_worker,
            args=(
                server.base_url,
                servers[1 - s].base_url if keyed else None,
                f"w{s}{k}",
                s * WORKERS_PER_SERVER + k + 1,
                barrier,
                claims,
                problems,
            ),
        )
        for s, server in enumerate(servers)
        for k in range(WORKERS_PER_SERVER)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIME_BOUND_S)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), f"claims still going after {elapsed} s"
    assert not problems, problems
    print(f"\nclaims: {TOTAL} nodes in {len(claims)} claims by 8 workers in {elapsed:.2f} s")

    # The workers' claims: disjoint, covering every node of every run.
    claimed = Counter((d["run_id"], d["node_id"]) for _, dispatches in claims for d in dispatches)
    duplicates = {key: n for key, n in claimed.items() if n > 1}
    assert not duplicates, f"claimed more than once: {duplicates}"
    expected = {(r, f"n{k:02d}") for r in run_ids for k in range(NODES_PER_RUN)}
    assert set(claimed) == expected
    assert all(d["attempt"] == 1 for _, dispatches in claims for d in dispatches)
    by_worker = Counter(worker for worker, _ in claims)
    assert len(by_worker) >= 2, f"one worker took everything: {by_worker}"

    with httpx.Client(base_url=servers[1].base_url, timeout=30.0) as client:
        # The store: exactly one NodeDispatched per (run, node), matching the claimed dispatch.
        events = _events(client, "NodeDispatched")
        stored = Counter((e["stream_id"], e["data"]["task_id"]) for e in events)
        assert {key: n for key, n in stored.items() if n != 1} == {}
        assert set(stored) == expected
        dispatch_ids = {
            (d["run_id"], d["node_id"]): d["dispatch_id"] for _, ds in claims for d in ds
        }
        assert {
            (e["stream_id"], e["data"]["task_id"]): e["data"]["dispatch_id"] for e in events
        } == (dispatch_ids)

        # Oldest run first: in commit order the dispatches never go back to an older run
        # (a run is only passed over once it has no ready node left), and the first go to run 0.
        order = [run_ids.index(e["stream_id"]) for e in sorted(events, key=lambda e: e["position"])]
        assert order[0] == 0
        assert order == sorted(order), order
        first_claims = sorted(
            (d for _, ds in claims for d in ds),
            key=lambda d: next(
                e["position"]
                for e in events
                if e["stream_id"] == d["run_id"] and e["data"]["task_id"] == d["node_id"]
            ),
        )[:NODES_PER_RUN]
        assert {d["run_id"] for d in first_claims} == {run_ids[0]}

        # Each run's own view agrees: every node running, pending its ack, on the claiming worker.
        workers = {(d["run_id"], d["node_id"]): worker for worker, ds in claims for d in ds}
        for run_id in run_ids:
            view = ok(client.get(f"/v1/runs/{run_id}"), 200)
            assert view["status"] == "running"
            for node_id, node in view["nodes"].items():
                assert node["status"] == "running" and node["pending_ack"], (run_id, node)
                assert node["worker_id"] == workers[(run_id, node_id)]

        # Nothing is left to claim, from either instance.
        for server in servers:
            again = client.post(
                f"{server.base_url}/v1/dispatch/claim", json={"worker_id": "late", "limit": 8}
            )
            assert ok(again, 200)["dispatches"] == []


def test_two_instances_apply_each_run_policy_once(launcher: ServerLauncher, pg_url: str) -> None:
    """Ack timeouts judged by two instances at once: each missed deadline is requeued once."""
    fast = {"LEDGER_ACK_TIMEOUT_MS": "300", "LEDGER_POLICY_INTERVAL_MS": "50"}
    servers = [launcher.start(pg_url, fast) for _ in range(2)]
    nodes = [{"id": f"n{k}", "type": "task"} for k in range(6)]
    with httpx.Client(base_url=servers[0].base_url, timeout=30.0) as client:
        body = {"run_id": "run_policy_once", "client_id": "c1", "workflow": {"nodes": nodes}}
        ok(client.post("/v1/runs", json=body), 202)
        claimed = ok(client.post("/v1/dispatch/claim", json={"worker_id": "w-x", "limit": 6}), 200)
        assert len(claimed["dispatches"]) == 6
        deadline = time.monotonic() + TIME_BOUND_S
        while len(_events(client, "NodeAckTimedOut")) < 6:
            assert time.monotonic() < deadline, "the ack timeouts were not applied in time"
            time.sleep(0.1)
        time.sleep(0.5)  # several more policy passes on both instances
        timed_out = _events(client, "NodeAckTimedOut")
    assert sorted(e["data"]["task_id"] for e in timed_out) == sorted(n["id"] for n in nodes)
    assert {e["data"]["attempts"] for e in timed_out} == {1}
