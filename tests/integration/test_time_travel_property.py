"""Property: for random valid command sequences, ``/at/{seq}`` equals the live view after seq.

Drives the real HTTP app (in-process, over ASGI) on a real SQLite file. Each
example uses a fresh thread; commands are drawn from what the thread's current
state allows, so most of them are accepted, and refused ones must append nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.config import Settings
from infra.http.app import create_app

Step = tuple[str, int, int]
STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["turn", "item", "status", "complete", "approval", "decide", "usage", "workspace"]
        ),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    min_size=10,
    max_size=40,
)


class Driver:
    """Turns abstract steps into HTTP commands that fit the thread's current view."""

    def __init__(self, client: httpx.AsyncClient, thread_id: str, root: str) -> None:
        self.client = client
        self.root = root
        self.thread = f"/v1/threads/{thread_id}"
        self.turns = 0
        self.items = 0

    async def view(self) -> dict[str, Any]:
        response = await self.client.get(self.thread)
        assert response.status_code == 200
        return dict(response.json())

    async def command(self, step: Step, view: dict[str, Any]) -> httpx.Response | None:
        kind, a, b = step
        active = view["active_turn_id"]
        turns = view["turns"]
        if kind == "workspace" and active is None:
            target = "." if view["workspace"] != self.root else "sub"
            return await self.client.post(f"{self.thread}/workspace", json={"workspace": target})
        if kind == "turn" or active is None:
            self.turns += 1
            body = {"turn_id": f"t{self.turns}", "input": f"input {a}", "auto_approve": b == 0}
            return await self.client.post(f"{self.thread}/turns", json=body)
        turn = f"{self.thread}/turns/{active}"
        items = next(t for t in turns if t["turn_id"] == active)["items"]
        if kind == "item":
            self.items += 1
            tool = ["exec_shell", "apply_patch", "search", None][a]
            body = {"item_id": f"i{self.items}", "tool_name": tool, "kind": "message"}
            return await self.client.post(f"{turn}/items", json=body)
        if kind == "status" and items:
            item = items[a % len(items)]["item_id"]
            status = ["in_progress", "completed", "failed", "declined"][b]
            return await self.client.post(f"{turn}/items/{item}/status", json={"status": status})
        if kind == "complete":
            status = ["completed", "failed", "interrupted", "completed"][a]
            return await self.client.post(f"{turn}/complete", json={"status": status})
        if kind == "approval":
            body = {"turn_id": active, "approval_key": f"k{a}", "requires_full_access": b == 1}
            return await self.client.post(f"{self.thread}/approvals", json=body)
        if kind == "decide" and view["pending_approvals"]:
            pending = view["pending_approvals"][a % len(view["pending_approvals"])]
            body = {
                "turn_id": pending["turn_id"],
                "decision": "approve" if b % 2 else "deny",
                "remember_for_session": b == 3,
            }
            return await self.client.post(
                f"{self.thread}/approvals/{pending['approval_id']}/decision", json=body
            )
        if kind == "usage":
            body = {"input_tokens": a * 10, "output_tokens": b, "cost_usd": a / 100}
            return await self.client.post(f"{turn}/usage", json=body)
        return None


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="module")
def client(
    loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.AsyncClient]:
    path = tmp_path_factory.mktemp("property") / "ledger.db"
    (path.parent / "sub").mkdir()
    app = create_app(Settings(database_url=f"sqlite:///{path}", workspace=Path(path.parent)))
    ledger = app.state.ledger

    async def open_client() -> AsyncIterator[httpx.AsyncClient]:
        await ledger.start()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://ledger",
            headers={"x-test-root": str(path.parent.resolve())},
        ) as http:
            yield http
        await ledger.stop()

    opened = open_client()
    http = loop.run_until_complete(anext(opened))
    yield http
    with pytest.raises(StopAsyncIteration):
        loop.run_until_complete(anext(opened))


COUNTER = iter(range(10**9))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_state_at_every_seq_equals_the_live_state_after_that_event(
    client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, steps: list[Step]
) -> None:
    loop.run_until_complete(_check(client, steps))


async def _check(client: httpx.AsyncClient, steps: list[Step]) -> None:
    thread_id = f"thr_p{next(COUNTER)}"
    created = await client.post("/v1/threads", json={"thread_id": thread_id, "title": "p"})
    assert created.status_code == 201
    driver = Driver(client, thread_id, client.headers["x-test-root"])
    live = {1: await driver.view()}
    for step in steps:
        view = await driver.view()
        response = await driver.command(step, view)
        if response is None:
            continue
        assert response.status_code < 500, response.text
        after = await driver.view()
        if response.is_success:
            seq = response.json()["seq"]
            assert after["seq"] == seq == view["seq"] + 1
            live[seq] = after
        else:
            assert after == view, f"refused {step} changed the thread: {response.text}"
    for seq, expected in live.items():
        at = await client.get(f"/v1/threads/{thread_id}/at/{seq}")
        assert at.status_code == 200
        assert at.json() == expected, f"seq {seq}"
