"""SIGKILL in the middle of a burst of commands loses nothing acknowledged and half-applies nothing.

Per backend, three rounds on one database: start the server, let eight clients record threads
(turns, items, status changes, completions, and items on one shared thread) as fast as they can,
SIGKILL the server at a random moment, restart it on the same database and check the history.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.conftest import LedgerServer, ServerLauncher, run_ledger
from tests.e2e.helpers import all_events, assert_chain, ok

WORKERS = 8
ROUNDS = 3
KILLS = 20
KILL_AFTER_S = (0.0, 0.9)
QUIET_WAIT_S = 2.0  # longer than the default policy interval (1 s)
TOOLS = ("exec_shell", "apply_patch", "web_search")


@dataclass(frozen=True)
class Ack:
    """A command that got a 2xx answer: where its one event must be."""

    thread_id: str
    event_type: str
    seq: int
    position: int
    data: dict[str, str]


@dataclass
class Burst:
    round: int
    acks: list[Ack] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    acked_per_worker_thread: dict[str, int] = field(default_factory=dict)

    @property
    def shared(self) -> str:
        return f"thr_shared_{self.round}"


class ServerGone(Exception):
    pass


async def _command(
    client: httpx.AsyncClient,
    burst: Burst,
    path: str,
    body: dict[str, Any],
    thread_id: str,
    event_type: str,
    data: dict[str, str],
) -> None:
    try:
        response = await client.post(path, json=body)
    except httpx.TransportError as error:  # the server died under this command
        raise ServerGone from error
    if response.is_success:
        answer = response.json()
        burst.acks.append(Ack(thread_id, event_type, answer["seq"], answer["position"], data))
        if thread_id != burst.shared:
            burst.acked_per_worker_thread[thread_id] += 1
        return
    burst.unexpected.append(f"POST {path} {body} -> {response.status_code} {response.text}")
    raise ServerGone


async def _worker(base_url: str, burst: Burst, worker: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        n = 0
        try:
            while True:
                tid = f"thr_r{burst.round}_w{worker}_{n}"
                thread = f"/v1/threads/{tid}"
                burst.threads.add(tid)
                burst.acked_per_worker_thread[tid] = 0
                await _command(
                    client, burst, "/v1/threads", {"thread_id": tid}, tid, "ThreadStarted", {}
                )
                for t in range(2):
                    turn = f"t{t}"
                    ids = {"turn_id": turn}
                    await _command(client, burst, f"{thread}/turns", ids, tid, "TurnStarted", ids)
                    for i, tool in enumerate(TOOLS):
                        item = {"turn_id": turn, "item_id": f"i{t}{i}"}
                        items = f"{thread}/turns/{turn}/items"
                        body = {"item_id": item["item_id"], "tool_name": tool}
                        await _command(client, burst, items, body, tid, "ItemAdded", item)
                        await _command(
                            client,
                            burst,
                            f"{items}/{item['item_id']}/status",
                            {"status": "in_progress"},
                            tid,
                            "ItemStatusChanged",
                            item,
                        )
                        shared_item = {"turn_id": "t0", "item_id": f"w{worker}_{n}_{t}{i}"}
                        await _command(
                            client,
                            burst,
                            f"/v1/threads/{burst.shared}/turns/t0/items",
                            {"item_id": shared_item["item_id"], "kind": "message"},
                            burst.shared,
                            "ItemAdded",
                            shared_item,
                        )
                    await _command(
                        client,
                        burst,
                        f"{thread}/turns/{turn}/complete",
                        {"status": "completed"},
                        tid,
                        "TurnCompleted",
                        ids,
                    )
                n += 1
        except ServerGone:
            return


async def _burst_then_kill(server: LedgerServer, burst: Burst, kill_after: float) -> None:
    """Kill at a random moment, but only once the burst is under way (a slow, loaded machine
    must not turn the test into a kill before anything was acknowledged)."""
    workers = [asyncio.create_task(_worker(server.base_url, burst, w)) for w in range(WORKERS)]
    deadline = time.monotonic() + 30
    while len(burst.acks) <= 2 * WORKERS and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await asyncio.sleep(kill_after)
    server.kill()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=30)


def _history(client: httpx.Client, threads: set[str]) -> dict[str, Any]:
    """Every known thread's events and view (None for a thread that was never created)."""
    history: dict[str, Any] = {}
    for tid in sorted(threads):
        view = client.get(f"/v1/threads/{tid}")
        if view.status_code == 404:
            assert client.get(f"/v1/threads/{tid}/events").status_code == 404
            history[tid] = None
            continue
        history[tid] = {"view": ok(view, 200), "events": all_events(client, tid)}
    return history


def _check_round(burst: Burst, history: dict[str, Any], where: str) -> None:
    assert not burst.unexpected, f"{where}: unexpected answers: {burst.unexpected}"
    for ack in burst.acks:
        recorded = history[ack.thread_id]
        assert recorded is not None, f"{where}: acknowledged {ack} but the thread is gone"
        events = recorded["events"]
        assert len(events) >= ack.seq, f"{where}: acknowledged {ack} is missing"
        event = events[ack.seq - 1]
        assert event["stream_id"] == ack.thread_id, f"{where}: {ack} vs {event}"
        assert (event["seq"], event["position"]) == (ack.seq, ack.position), f"{where}: {ack}"
        assert event["type"] == ack.event_type, f"{where}: {ack} vs {event}"
        for key, value in ack.data.items():
            assert event["data"][key] == value, f"{where}: {ack} vs {event}"
    shared = history[burst.shared]["events"]
    # each worker thread had at most one command in flight when the server died
    for tid, acked in burst.acked_per_worker_thread.items():
        count = 0 if history[tid] is None else len(history[tid]["events"])
        assert acked <= count <= acked + 1, f"{where}: {tid} has {count} events, {acked} acked"
    shared_acked = sum(1 for a in burst.acks if a.thread_id == burst.shared)
    assert shared_acked <= len(shared) <= shared_acked + WORKERS, where


def _check_store(history: dict[str, Any], where: str) -> int:
    """Each thread is a whole chain 1..N whose fold is its view; the global positions of all
    threads together are 1..P with no gap. Returns the number of events."""
    positions: list[int] = []
    for tid, recorded in history.items():
        if recorded is None:
            continue
        events = recorded["events"]
        assert_chain(events, tid)
        assert recorded["view"]["seq"] == len(events), f"{where}: {tid}"
        positions.extend(e["position"] for e in events)
    assert sorted(positions) == list(range(1, len(positions) + 1)), f"{where}: position gaps"
    return len(positions)


def _verify(server: LedgerServer, expected_events: int, where: str) -> None:
    result = run_ledger(
        "verify", "--database-url", server.database_url, workdir=server.stderr_path.parent
    )
    assert result.returncode == 0, f"{where}: ledger verify: {result.stdout}{result.stderr}"
    found = re.search(r"(\d+) events in \d+ streams, positions 1\.\.(\d+)", result.stdout)
    assert found, result.stdout
    # nothing but the threads we know of was written: the restart appended nothing anywhere
    assert (int(found[1]), int(found[2])) == (expected_events, expected_events), result.stdout


def _start_shared_thread(server: LedgerServer, burst: Burst) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        ok(client.post("/v1/threads", json={"thread_id": burst.shared}), 201)
        ok(client.post(f"/v1/threads/{burst.shared}/turns", json={"turn_id": "t0"}), 201)
    burst.threads.add(burst.shared)


def _kill_rounds(
    launcher: ServerLauncher,
    database_url: str,
    rounds: int,
    kill_window: tuple[float, float],
    quiet_every_round: bool,
) -> LedgerServer:
    """Burst, SIGKILL, restart and check, ``rounds`` times; returns the last (running) server."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    known_threads: set[str] = set()
    previous: dict[str, Any] = {}
    server = launcher.start(database_url)
    for round_number in range(rounds):
        burst = Burst(round_number)
        _start_shared_thread(server, burst)
        kill_after = rng.uniform(*kill_window)
        where = f"round {round_number} (seed {seed}, killed after {kill_after:.2f} s)"
        asyncio.run(_burst_then_kill(server, burst, kill_after))
        assert len(burst.acks) > WORKERS, f"{where}: the burst did too little to be a test"
        known_threads |= burst.threads

        server = launcher.start(database_url)
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            right_after_restart = _history(client, known_threads)
            _check_round(burst, right_after_restart, where)
            total = _check_store(right_after_restart, where)
            for tid, recorded in previous.items():  # earlier rounds are untouched
                assert right_after_restart[tid] == recorded, f"{where}: {tid} changed"
            if quiet_every_round or round_number == rounds - 1:
                time.sleep(QUIET_WAIT_S)
                assert _history(client, known_threads) == right_after_restart, (
                    f"{where}: the history changed with no command sent"
                )
        _verify(server, total, where)
        previous = right_after_restart
    return server


def test_sigkill_mid_burst_loses_no_acknowledged_command_and_leaves_no_half_applied_thread(
    launcher: ServerLauncher, database_url: str
) -> None:
    started = time.monotonic()
    _kill_rounds(launcher, database_url, ROUNDS, KILL_AFTER_S, quiet_every_round=True)
    assert time.monotonic() - started < 120


def test_twenty_kills_then_every_projection_equals_a_rebuild(
    launcher: ServerLauncher, pg_url: str
) -> None:
    """At least 20 SIGKILLs at random points of concurrent commands on PostgreSQL; after each
    restart every acknowledged command is there, whole, and chains verify; at the end every
    read model has caught up to the same rows as a rebuild from the log."""
    started = time.monotonic()
    server = _kill_rounds(launcher, pg_url, KILLS, (0.0, 0.5), quiet_every_round=False)
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        head = ok(client.get("/v1/events?after=0&limit=1"), 200)["next_after"]
        deadline = time.monotonic() + 30
        while True:
            status = ok(client.get("/v1/projections"), 200)["projections"]
            if all(p["lag_events"] == 0 and p["last_error"] is None for p in status):
                break
            assert time.monotonic() < deadline, f"projections did not catch up: {status}"
            time.sleep(0.1)
        names = [p["name"] for p in status]
        assert head >= 1
    for name in names:
        result = run_ledger(
            "projections",
            "rebuild",
            name,
            "--database-url",
            pg_url,
            workdir=server.stderr_path.parent,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "rows equal to the live read model" in result.stdout, result.stdout
    assert time.monotonic() - started < 240
