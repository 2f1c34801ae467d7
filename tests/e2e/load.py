"""Command load for the live-tail tests: threads driven through HTTP, one event per command."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

ITEMS_PER_TURN = 8


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int) -> int:
    response = await client.post(path, json=body)
    assert response.status_code == status, (
        f"POST {path} answered {response.status_code} {response.text[:300]}, expected {status}"
    )
    return int(response.json()["position"])


async def drive_thread(
    client: httpx.AsyncClient, thread_id: str, events: int, payload: dict[str, Any] | None = None
) -> list[int]:
    """Append exactly ``events`` events to a new thread (start, then turns of items), one
    command each, in order; returns the positions the commands were acknowledged at."""
    thread = f"/v1/threads/{thread_id}"
    positions = [await _post(client, "/v1/threads", {"thread_id": thread_id}, 201)]
    turn = 0
    while len(positions) < events:
        turn += 1
        turn_path = f"{thread}/turns/t{turn}"
        positions.append(await _post(client, f"{thread}/turns", {"turn_id": f"t{turn}"}, 201))
        for item in range(ITEMS_PER_TURN):
            if len(positions) >= events:
                return positions
            body: dict[str, Any] = {"item_id": f"t{turn}i{item}", "kind": "message"}
            if payload is not None:
                body["payload"] = payload
            positions.append(await _post(client, f"{turn_path}/items", body, 201))
        if len(positions) < events:
            positions.append(
                await _post(client, f"{turn_path}/complete", {"status": "completed"}, 200)
            )
    return positions


async def drive_lane(
    client: httpx.AsyncClient,
    prefix: str,
    events: int,
    per_thread: int,
    payload: dict[str, Any] | None = None,
) -> list[int]:
    """Append ``events`` events, one command at a time, over new threads of at most
    ``per_thread`` events each (a command's cost grows with its thread's length)."""
    positions: list[int] = []
    while len(positions) < events:
        thread_id = f"{prefix}_{len(positions) // per_thread}"
        count = min(per_thread, events - len(positions))
        positions.extend(await drive_thread(client, thread_id, count, payload))
    return positions


async def write_events(
    base_url: str,
    prefix: str,
    events: int,
    lanes: int,
    payload: dict[str, Any] | None = None,
    per_thread: int = 50,
) -> list[int]:
    """Append ``events`` events over ``lanes`` sequences of commands run at once (one request
    in flight per lane, each on threads of its own); returns every acknowledged position."""
    limits = httpx.Limits(max_connections=lanes, max_keepalive_connections=lanes)
    share, extra = divmod(events, lanes)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
        done = await asyncio.gather(
            *(
                drive_lane(
                    client, f"{prefix}_{n}", share + (1 if n < extra else 0), per_thread, payload
                )
                for n in range(lanes)
            )
        )
    return [position for positions in done for position in positions]
