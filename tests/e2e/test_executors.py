"""Executors and restart recovery against real ``ledger serve`` processes.

Servers here run with a 1.5 s executor lease and a 200 ms policy interval, so a
silent executor is recovered within a couple of seconds. Each test is bounded by
``WAIT_S`` per wait; the module takes about half a minute.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from infra.http.executor_schemas import HeartbeatResponse, RecoveryResponse
from tests.e2e.conftest import LedgerServer, ServerLauncher, ledger_executable, server_env
from tests.e2e.helpers import all_events, assert_error, exactly, ok, thread_view

LEASE_S = 1.5
FAST = {"LEDGER_EXECUTOR_LEASE_MS": "1500", "LEDGER_POLICY_INTERVAL_MS": "200"}
WAIT_S = 10.0
HEARTBEAT_EVERY_S = 0.3
RESTART_REASON = "Interrupted by process restart"


def _client(server: LedgerServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=10.0)


def _turn_with_items(
    client: httpx.Client, thread_id: str, executor_id: str, *, by_header: bool = False
) -> None:
    """A thread whose active turn runs on ``executor_id``, with a completed, an in-progress
    and a queued item."""
    ok(client.post("/v1/threads", json={"thread_id": thread_id}), 201)
    body: dict[str, Any] = {"turn_id": "t1", "input": "work"}
    headers = {"X-Ledger-Executor": executor_id} if by_header else {}
    if not by_header:
        body["executor_id"] = executor_id
    ok(client.post(f"/v1/threads/{thread_id}/turns", json=body, headers=headers), 201)
    turn = f"/v1/threads/{thread_id}/turns/t1"
    for item_id in ("done", "running", "waiting"):
        ok(client.post(f"{turn}/items", json={"item_id": item_id, "kind": "message"}), 201)
    ok(client.post(f"{turn}/items/done/status", json={"status": "completed"}), 200)
    ok(client.post(f"{turn}/items/running/status", json={"status": "in_progress"}), 200)


def _turn(client: httpx.Client, thread_id: str) -> dict[str, Any]:
    [turn] = thread_view(client, thread_id)["turns"]
    return turn  # type: ignore[no-any-return]


def _assert_interrupted_for_restart(turn: dict[str, Any]) -> None:
    assert turn["status"] == "interrupted"
    assert turn["error"] == RESTART_REASON
    assert isinstance(turn["duration_ms"], int) and turn["duration_ms"] >= 0
    statuses = {item["item_id"]: item["status"] for item in turn["items"]}
    assert statuses == {"done": "completed", "running": "interrupted", "waiting": "interrupted"}


def _wait_until_interrupted(client: httpx.Client, thread_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        turn = _turn(client, thread_id)
        if turn["status"] != "in_progress":
            return turn
        time.sleep(0.05)
    raise AssertionError(f"the turn of {thread_id} was not interrupted within {WAIT_S} s")


def _head(client: httpx.Client) -> int:
    """The log's last position, as the projections endpoint reports it."""
    return int(ok(client.get("/v1/projections"), 200)["projections"][0]["head"])


def _wait_for_feed_event(client: httpx.Client, event_type: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        page = ok(client.get("/v1/events", params={"after": 0, "types": event_type}), 200)
        if page["events"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {event_type} event within {WAIT_S} s")


def _interruptions(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    return [e for e in all_events(client, thread_id) if e["type"] == "TurnInterrupted"]


def _recover_cli(workdir: Path, database_url: str, lease_ms: int) -> str:
    done = subprocess.run(
        [ledger_executable(), "recover", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env=server_env(workdir, {"LEDGER_EXECUTOR_LEASE_MS": str(lease_ms)}),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def _heartbeating(base_url: str, executor_id: str) -> Iterator[list[int]]:
    """Heartbeats every HEARTBEAT_EVERY_S from a background thread; yields their statuses."""
    statuses: list[int] = []
    stop = threading.Event()

    def beat() -> None:
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            while not stop.is_set():
                try:
                    statuses.append(
                        client.post(f"/v1/executors/{executor_id}/heartbeat").status_code
                    )
                except httpx.TransportError:
                    statuses.append(0)
                stop.wait(HEARTBEAT_EVERY_S)

    worker = threading.Thread(target=beat, daemon=True)
    worker.start()
    try:
        yield statuses
    finally:
        stop.set()
        worker.join(timeout=10)


def test_a_silent_executor_has_its_turn_interrupted_once_its_lease_runs_out(
    launcher: ServerLauncher, database_url: str, tmp_path: Path
) -> None:
    server = launcher.start(database_url, FAST)
    with _client(server) as client:
        _turn_with_items(client, "thr_silent", "rt-silent")
        last_command = time.monotonic()

        turn = _wait_until_interrupted(client, "thr_silent")

        assert time.monotonic() - last_command >= LEASE_S - 0.05
        _assert_interrupted_for_restart(turn)
        started = next(e for e in all_events(client, "thr_silent") if e["type"] == "TurnStarted")
        assert started["metadata"]["executor_id"] == "rt-silent"  # named in the body
        [interrupted] = _interruptions(client, "thr_silent")
        assert interrupted["metadata"]["actor"] == "policy"
        assert "executor_id" not in interrupted["metadata"]

        # A second recovery, by the CLI with no start-up grace, finds nothing to do (once
        # the first has recorded itself: the interruption lands before the executor event).
        _wait_for_feed_event(client, "ExecutorLeaseExpired")
        head = _head(client)
        output = _recover_cli(tmp_path, database_url, lease_ms=1)
        assert "recovered 0 executor(s)" in output, output
        time.sleep(3 * 0.2)  # a few more policy ticks
        assert _head(client) == head
        assert _interruptions(client, "thr_silent") == [interrupted]


def test_restarted_and_shutdown_interrupt_the_executors_turns_before_answering(
    sqlite_server: LedgerServer,
) -> None:
    with _client(sqlite_server) as client:
        _turn_with_items(client, "thr_a", "rt-a", by_header=True)
        _turn_with_items(client, "thr_b", "rt-b")
        _turn_with_items(client, "thr_c", "rt-c")

        answer = ok(client.post("/v1/executors/rt-a/restarted", json={}), 200)

        exactly(RecoveryResponse, answer)
        assert answer["executor_id"] == "rt-a"
        assert answer["interrupted_threads"] == ["thr_a"]
        assert answer["recorded"] is True
        _assert_interrupted_for_restart(_turn(client, "thr_a"))
        assert _turn(client, "thr_b")["status"] == "in_progress"

        head = _head(client)
        again = ok(client.post("/v1/executors/rt-a/restarted"), 200)
        assert (again["interrupted_threads"], again["recorded"]) == ([], False)
        assert (again["seq"], again["position"]) == (answer["seq"], answer["position"])
        assert _head(client) == head

        sent = {"X-Ledger-Executor": "rt-c"}
        item = {"item_id": "more", "kind": "message"}
        ok(client.post("/v1/threads/thr_c/turns/t1/items", json=item, headers=sent), 201)
        senders = [
            (e["type"], e["metadata"].get("executor_id")) for e in all_events(client, "thr_c")
        ]
        assert senders[1] == ("TurnStarted", "rt-c")  # named in the body
        assert senders[-1] == ("ItemAdded", "rt-c")  # named by the header
        assert {sender for _, sender in [senders[0], *senders[2:-1]]} == {None}

        stopped = ok(client.post("/v1/executors/rt-b/shutdown", json={}), 200)
        assert stopped["interrupted_threads"] == ["thr_b"]
        _assert_interrupted_for_restart(_turn(client, "thr_b"))
        assert _turn(client, "thr_c")["status"] == "in_progress"


def test_bad_executor_ids_and_bodies_are_refused_and_append_nothing(
    sqlite_server: LedgerServer,
) -> None:
    with _client(sqlite_server) as client:
        ok(client.post("/v1/threads", json={"thread_id": "thr_1"}), 201)
        head = _head(client)
        for action in ("heartbeat", "restarted", "shutdown"):
            assert_error(client.post(f"/v1/executors/-rt/{action}"), 422, "invalid_executor_id")
            assert_error(client.post(f"/v1/executors/{'r' * 129}/{action}"), 422)
            assert_error(client.post(f"/v1/executors/rt-1/{action}", json={"x": 1}), 422)
            assert_error(client.post(f"/v1/executors/rt-1/{action}", content=b"{"), 400)
        bad_header = {"X-Ledger-Executor": "rt 1"}
        assert_error(
            client.post("/v1/threads", json={"thread_id": "thr_2"}, headers=bad_header), 422
        )
        assert _head(client) == head
        paths = ok(client.get("/openapi.json"), 200)["paths"]
        for action in ("heartbeat", "restarted", "shutdown"):
            assert f"/v1/executors/{{executor_id}}/{action}" in paths


def test_an_executor_that_keeps_heartbeating_is_never_interrupted(
    launcher: ServerLauncher, sqlite_url: str
) -> None:
    server = launcher.start(sqlite_url, FAST)
    with _client(server) as client:
        _turn_with_items(client, "thr_live", "rt-live")
        _turn_with_items(client, "thr_dead", "rt-dead")
        beat = exactly(HeartbeatResponse, ok(client.post("/v1/executors/rt-live/heartbeat"), 200))
        expires = datetime.fromisoformat(beat.lease_expires_at.replace("Z", "+00:00"))
        assert abs((expires - datetime.now(UTC)).total_seconds() - LEASE_S) < 1.0

        with _heartbeating(server.base_url, "rt-live") as statuses:
            _wait_until_interrupted(client, "thr_dead")  # the policy is at work
            time.sleep(2 * LEASE_S)

        assert statuses and set(statuses) == {200}
        assert _turn(client, "thr_live")["status"] == "in_progress"
        assert _interruptions(client, "thr_live") == []


def test_a_ledger_restart_alone_interrupts_nothing(
    launcher: ServerLauncher, sqlite_url: str
) -> None:
    first = launcher.start(sqlite_url, FAST)
    with _client(first) as client:
        _turn_with_items(client, "thr_1", "rt-1")
        ok(client.post("/v1/executors/rt-1/heartbeat"), 200)
    assert first.stop() in (0, -signal.SIGTERM)
    time.sleep(LEASE_S + 0.2)  # down for longer than a lease: the log alone says "expired"

    second = launcher.start(sqlite_url, FAST)
    time.sleep(0.6)  # several policy ticks before the executor reaches the new instance
    with _heartbeating(second.base_url, "rt-1") as statuses:
        time.sleep(LEASE_S + 0.6)

    assert statuses and set(statuses) == {200}
    with _client(second) as client:
        assert _turn(client, "thr_1")["status"] == "in_progress"
        assert _interruptions(client, "thr_1") == []


def test_ledger_recover_applies_expired_leases_once(
    sqlite_server: LedgerServer, sqlite_url: str, tmp_path: Path
) -> None:
    with _client(sqlite_server) as client:  # this server's lease is the default 30 s
        _turn_with_items(client, "thr_1", "rt-cli")

        first = _recover_cli(tmp_path, sqlite_url, lease_ms=1)

        assert "executor rt-cli" in first and "interrupted thr_1" in first, first
        _assert_interrupted_for_restart(_turn(client, "thr_1"))
        head = _head(client)
        second = _recover_cli(tmp_path, sqlite_url, lease_ms=1)
        assert "recovered 0 executor(s)" in second, second
        assert _head(client) == head


def _executor_events(database_url: str, executor_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT type FROM events WHERE stream_id = %s ORDER BY seq",
            (f"executor/{executor_id}",),
        ).fetchall()
    return [row[0] for row in rows]


def test_two_instances_on_one_postgresql_database_recover_each_expiry_once(
    launcher: ServerLauncher, pg_url: str
) -> None:
    one = launcher.start(pg_url, FAST)
    two = launcher.start(pg_url, FAST)
    with _client(one) as first, _client(two) as second:
        _turn_with_items(first, "thr_1", "rt-1")
        _turn_with_items(second, "thr_2", "rt-1")

        for thread_id in ("thr_1", "thr_2"):
            _assert_interrupted_for_restart(_wait_until_interrupted(first, thread_id))
        time.sleep(5 * 0.2)  # more ticks on both instances

        for thread_id in ("thr_1", "thr_2"):
            assert len(_interruptions(first, thread_id)) == 1
            assert len(_interruptions(second, thread_id)) == 1
    assert _executor_events(pg_url, "rt-1") == ["ExecutorRegistered", "ExecutorLeaseExpired"]
