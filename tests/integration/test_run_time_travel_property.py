"""Property: for random command sequences on a run, ``/at/{seq}`` equals the live view after seq.

Drives the real HTTP app (in-process, over ASGI) once on a SQLite file and once on
PostgreSQL. Each example starts a fresh run of a small workflow (a chain ``a → b → g``
where ``g`` is an approval gate, an independent ``c``, and ``d`` after ``g`` and ``c``;
two attempts per node) and sends commands drawn from what the run's current view allows,
in a valid or a deliberately invalid form: claim, ack, feedback (progress in and out of
range, ``"abc"``, merge-patched results, chunks, repeated ``feedback_id``), result
(succeeded / failed / skipped / cancelled), command error, pause, resume, cancel, block,
gate requests and decisions, sessions and instances, and commands naming unknown nodes.

After each command it reads ``GET /v1/runs/{id}``: an accepted command that appended
leaves the view at a new seq (recorded as the live view of that seq); any other command
(refused, or accepted with nothing to change) leaves the view exactly as it was. At the end
``/at/{seq}`` must equal the recorded live view for every recorded seq, and every seq of
the stream (including those in the middle of a command that appended several events, e.g.
a claim of three nodes or a failure that cancels the rest) must answer a view at that seq.
No field is exempt from the comparison: the view is a pure fold of the stream.
``pytest --hypothesis-show-statistics`` shows which commands were accepted or refused and
where the runs ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infra.config import Settings
from infra.http.app import create_app
from tests import pg

KINDS = [
    "claim",
    "ack",
    "feedback",
    "result",
    "error",
    "pause",
    "resume",
    "cancel",
    "block",
    "gate",
    "decide",
    "session",
    "instance",
    "unknown",
]
# The worker protocol is drawn three times as often, so runs get somewhere before they end.
WORKER_KINDS = ["claim", "ack", "feedback", "result"]
# (kind, a, b, valid): a and b pick nodes and variants; valid=False sends a broken form.
Step = tuple[str, int, int, bool]
STEPS = st.lists(
    st.tuples(
        st.sampled_from(KINDS + WORKER_KINDS * 2),
        st.integers(0, 3),
        st.integers(0, 3),
        st.sampled_from([True, True, True, False]),
    ),
    min_size=20,
    max_size=60,
)
WORKFLOW = {
    "id": "wf",
    "nodes": [
        {"id": "a", "type": "task", "parameters": {"p": 1}},
        {"id": "b", "type": "task"},
        {"id": "g", "type": "approval"},
        {"id": "c", "type": "task"},
        {"id": "d", "type": "task"},
    ],
    "edges": [
        {"source": {"node": "a", "port": "out"}, "target": {"node": "b", "port": "in"}},
        {"source": {"node": "b"}, "target": {"node": "g"}},
        {"source": {"node": "g"}, "target": {"node": "d"}},
        {"source": {"node": "c"}, "target": {"node": "d"}},
    ],
}
# No background policy may change a run while an example runs (ack timeouts, leases, stale runs).
QUIET = {
    "ack_timeout_ms": 3_600_000,
    "executor_lease_ms": 3_600_000,
    "worker_launch_timeout_ms": 3_600_000,
    "stale_run_after_ms": 3_600_000,
}
TERMINAL = {"succeeded", "failed", "cancelled", "blocked"}


class Driver:
    """Turns abstract steps into HTTP commands that fit (or, when told, break) the run's view."""

    def __init__(self, client: httpx.AsyncClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.run = f"/v1/runs/{run_id}"
        self.feedbacks = 0

    async def view(self) -> dict[str, Any]:
        response = await self.client.get(self.run)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def _node_url(self, node_id: str, command: str) -> str:
        return f"{self.run}/nodes/{node_id}/{command}"

    async def command(self, step: Step, view: dict[str, Any]) -> httpx.Response | None:
        kind, a, b, valid = step
        nodes = view["nodes"]
        pending = sorted(n for n, node in nodes.items() if node["pending_ack"])
        running = sorted(n for n, node in nodes.items() if node["status"] == "running")
        idle = sorted(n for n, node in nodes.items() if node["status"] != "running")
        post = self.client.post
        if kind == "claim":
            return await post(
                "/v1/dispatch/claim",
                json={"worker_id": f"w{a}", "limit": b + 1} if valid else {"limit": 0},
            )
        if kind == "ack" and pending:
            node = nodes[pending[a % len(pending)]]
            dispatch = node["dispatch_id"] if valid else "dsp_wrong"
            body = {"dispatch_id": dispatch, "worker_id": node["worker_id"], "launching": b == 3}
            return await post(self._node_url(node["node_id"], "ack"), json=body)
        if kind == "feedback" and running:
            node = nodes[running[a % len(running)]]
            body: dict[str, Any] = {
                "dispatch_id": node["dispatch_id"],
                "stage": f"stage {b}",
                "progress": [0.5, 1.7, -0.2, 0.25][b] if valid else "abc",
                "message": f"m{a}",
                "metadata": {"results": {"v": {"n": a}, "gone": None if b % 2 else b}, "k": b},
                "metrics": {"steps": a + b},
                "chunks": [{"text": f"line {a}"}, {"channel": "stdout", "text": "x"}][: b % 3],
            }
            if b == 3:
                self.feedbacks += a % 2  # the same id twice in a row: the second is a no-op
                body["feedback_id"] = f"fb{self.feedbacks}"
            if a == 3:
                body["usage"] = {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01}
            return await post(self._node_url(node["node_id"], "feedback"), json=body)
        if kind == "result" and (running or not valid):
            status = ["succeeded", "failed", "skipped", "cancelled"][b]
            if valid:
                node = nodes[running[a % len(running)]]
            else:  # a result for a node that is not running (or a wrong dispatch id)
                node = nodes[(idle or running)[a % len(idle or running)]]
            body = {
                "dispatch_id": node["dispatch_id"] or "dsp_none",
                "status": status,
                "result": {"value": a, "b": b},
                "duration_ms": 10 * a,
            }
            if status == "failed":
                body["error"] = {"code": "boom", "message": f"failed {a}"}
            return await post(self._node_url(node["node_id"], "result"), json=body)
        if kind == "error" and running:
            node = nodes[running[a % len(running)]]
            body = {"message": f"command error {a}"}
            if b % 2 or not valid:
                body["dispatch_id"] = node["dispatch_id"] if valid else "dsp_wrong"
            return await post(self._node_url(node["node_id"], "error"), json=body)
        if kind in ("pause", "resume", "cancel", "block"):
            if kind in ("cancel", "block") and (a, b) != (0, 0):
                return None  # terminal: keep them rarer so runs get somewhere first
            return await post(f"{self.run}/{kind}", json={"reason": f"{kind} {b}"} if b else {})
        if kind == "gate":
            target = sorted(nodes)[a % len(nodes)] if valid else "nope"
            return await post(f"{self.run}/gates", json={"node_id": target, "title": f"t{b}"})
        if kind == "decide":
            gate = view["awaiting_gate"]
            target = gate["node_id"] if gate is not None and valid else "g"
            decision = ["approve", "rework", "approve", "deny" if a == 0 else "approve"][b]
            if a == 3 and not valid:
                decision = "maybe"  # 422
            return await post(
                f"{self.run}/gates/{target}/decision", json={"decision": decision, "reason": "r"}
            )
        if kind == "session":
            action = "attach" if b < 3 else "detach"
            body = {"session_id": f"s{a % 2}", "action": action}
            return await post(f"{self.run}/sessions", json=body if valid else {"action": action})
        if kind == "instance":
            action = "attach" if b < 3 else "detach"
            return await post(
                f"{self.run}/instances", json={"instance_id": f"i{a % 2}", "action": action}
            )
        if kind == "unknown":
            command, body = [
                ("ack", {"dispatch_id": "dsp_x"}),
                ("feedback", {"dispatch_id": "dsp_x", "progress": 0.1}),
                ("result", {"dispatch_id": "dsp_x", "status": "succeeded"}),
                ("error", {"dispatch_id": "dsp_x", "message": "m"}),
            ][b]
            return await post(self._node_url(f"zz{a}", command), json=body)
        return None


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def client(
    request: pytest.FixtureRequest,
    loop: asyncio.AbstractEventLoop,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.AsyncClient]:
    root = tmp_path_factory.mktemp(f"run-property-{request.param}")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'ledger.db'}"
    else:
        database = pg.create_database()
        url = pg.url_for(database)
    app = create_app(Settings(database_url=url, workspace=Path(root), **QUIET))
    ledger = app.state.ledger

    async def open_client() -> AsyncIterator[httpx.AsyncClient]:
        await ledger.start()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ledger"
        ) as http:
            yield http
        await ledger.stop()

    opened = open_client()
    try:
        http = loop.run_until_complete(anext(opened))
        yield http
        with pytest.raises(StopAsyncIteration):
            loop.run_until_complete(anext(opened))
    finally:
        if database is not None:
            pg.drop_database(database)


COUNTER = iter(range(10**9))


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_run_state_at_every_seq_equals_the_live_state_after_that_event(
    client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, steps: list[Step]
) -> None:
    loop.run_until_complete(_check(client, steps))


async def _check(client: httpx.AsyncClient, steps: list[Step]) -> None:
    run_id = f"run_p{next(COUNTER)}"
    body = {"run_id": run_id, "client_id": "c1", "max_attempts": 2, "workflow": WORKFLOW}
    created = await client.post("/v1/runs", json=body)
    assert created.status_code == 202, created.text
    driver = Driver(client, run_id)
    try:
        await _drive(client, driver, run_id, steps)
    finally:
        # Claims take the oldest run first across the database: leave nothing claimable
        # behind for the next example (a refusal here, on a terminal run, is fine).
        await client.post(f"{driver.run}/cancel", json={})


async def _drive(client: httpx.AsyncClient, driver: Driver, run_id: str, steps: list[Step]) -> None:
    live = {1: await driver.view()}
    for step in steps:
        before = await driver.view()
        response = await driver.command(step, before)
        if response is None:
            continue
        assert response.status_code < 500, f"{step}: {response.text}"
        event(f"{step[0]} answered {response.status_code}")
        after = await driver.view()
        if after["seq"] != before["seq"]:
            assert response.is_success, f"refused {step} changed the run: {response.text}"
            assert after["seq"] > before["seq"]
            answered = response.json().get("seq")
            if answered is not None:
                assert answered == after["seq"], f"{step}: {response.text}"
            live[after["seq"]] = after
        else:
            assert after == before, f"{step} appended nothing but changed the view"
            if response.is_success and "seq" in response.json():
                assert response.json()["seq"] == before["seq"], f"{step}: {response.text}"
            # A refusal must have appended nothing to the stream either.
            events = await client.get(f"{driver.run}/events", params={"since_seq": before["seq"]})
            assert events.json()["events"] == [], f"refused {step} appended"
    head = max(live)
    event(f"run ended {(await driver.view())['status']}")
    for seq in range(1, head + 1):
        at = await client.get(f"/v1/runs/{run_id}/at/{seq}")
        assert at.status_code == 200, at.text
        if seq in live:
            assert at.json() == live[seq], f"seq {seq}"
        else:
            assert at.json()["seq"] == seq
    beyond = await client.get(f"/v1/runs/{run_id}/at/{head + 1}")
    assert beyond.status_code == 404, beyond.text
