"""Two ``ledger serve`` processes on one PostgreSQL database: tails held on one instance
hear, through LISTEN/NOTIFY, the commits made through the other."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerLauncher
from tests.e2e.sse import aframes

pytestmark = pytest.mark.timeout(60)

COMMANDS = 12
SPACING_S = 0.25
# The notifier also polls the head once a second: a median well under that shows NOTIFY.
MEDIAN_LATENCY_S = 0.3
MAX_LATENCY_S = 3.0


async def follow(
    base_url: str,
    path: str,
    headers: dict[str, str],
    count: int,
    ready: asyncio.Event,
) -> list[tuple[dict[str, Any], int, float]]:
    """(event, SSE id, arrival time) of the next ``count`` events of a tail."""
    got: list[tuple[dict[str, Any], int, float]] = []
    timeout = httpx.Timeout(10.0, read=MAX_LATENCY_S + 5)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for frame in aframes(response):
            if frame.comment == "connected":
                ready.set()
            if frame.is_comment:
                continue
            got.append((frame.json(), frame.position, time.monotonic()))
            if len(got) == count:
                return got
    raise AssertionError(f"{path} ended after {len(got)} of {count} events")


async def scenario(a_url: str, b_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=b_url, timeout=10.0) as b:
        created = (await b.post("/v1/threads", json={"thread_id": "thr_shared"})).json()
        (await b.post("/v1/threads/thr_shared/turns", json={"turn_id": "t1"})).raise_for_status()
        global_ready, thread_ready = asyncio.Event(), asyncio.Event()
        global_tail = asyncio.create_task(
            follow(a_url, "/v1/events/stream", {}, COMMANDS, global_ready)
        )
        # the thread tail resumes after seq 2 (the turn), so it too sees only what follows
        thread_tail = asyncio.create_task(
            follow(
                a_url,
                "/v1/threads/thr_shared/stream",
                {"Last-Event-ID": "2"},
                COMMANDS,
                thread_ready,
            )
        )
        await asyncio.wait_for(asyncio.gather(global_ready.wait(), thread_ready.wait()), 10)
        acknowledged: list[tuple[dict[str, Any], float]] = []
        for n in range(COMMANDS):
            response = await b.post(
                "/v1/threads/thr_shared/turns/t1/items",
                json={"item_id": f"i{n}", "kind": "message"},
            )
            assert response.status_code == 201, response.text
            acknowledged.append((response.json(), time.monotonic()))
            await asyncio.sleep(SPACING_S)
        events = await asyncio.wait_for(asyncio.gather(global_tail, thread_tail), 15)
    return {
        "created": created,
        "acknowledged": acknowledged,
        "global": events[0],
        "thread": events[1],
    }


def test_tails_on_one_instance_receive_commands_sent_to_another_promptly_and_in_order(
    launcher: ServerLauncher, pg_url: str
) -> None:
    instance_a = launcher.start(pg_url)
    instance_b = launcher.start(pg_url)

    result = asyncio.run(scenario(instance_a.base_url, instance_b.base_url))

    acknowledged = result["acknowledged"]
    positions = [answer["position"] for answer, _ in acknowledged]
    seqs = [answer["seq"] for answer, _ in acknowledged]
    assert seqs == list(range(3, 3 + COMMANDS))
    assert result["created"]["position"] + 2 == positions[0]
    for name, received, expected_ids in (
        ("global", result["global"], positions),
        ("thread", result["thread"], seqs),
    ):
        assert [sse_id for _, sse_id, _ in received] == expected_ids, name
        assert [e["position"] for e, _, _ in received] == positions, name
        assert [e["data"]["item_id"] for e, _, _ in received] == [f"i{n}" for n in range(COMMANDS)]
        latencies = [
            max(0.0, arrived - acked)
            for (_, _, arrived), (_, acked) in zip(received, acknowledged, strict=True)
        ]
        assert max(latencies) < MAX_LATENCY_S, (name, latencies)
        assert statistics.median(latencies) < MEDIAN_LATENCY_S, (name, latencies)
