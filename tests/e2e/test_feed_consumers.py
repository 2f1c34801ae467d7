"""Analytics consumers follow the log while writers append to it (PostgreSQL, real server).

Four writers append 8,000 events (20,000 on request) through HTTP commands, one event per
command, while three consumers page ``GET /v1/events`` with random page sizes and pauses,
and three follow ``/v1/events/stream`` with random disconnects, resuming with
``Last-Event-ID`` as a browser's EventSource would (same URL, ``?after=0`` included). Each
consumer ends with exactly positions 1..N, in order, every event identical to one final
full read."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerLauncher
from tests.e2e.load import write_events
from tests.e2e.sse import aframes

# The size: 20,000 events from 4 writers. LEDGER_TEST_FEED_EVENTS sets another size for
# quick local runs; the time bound scales with it.
TOTAL_EVENTS = int(os.environ.get("LEDGER_TEST_FEED_EVENTS") or 20_000)
WRITERS = 4
LANES_PER_WRITER = 12
PAGING_CONSUMERS = 3
TAILING_CONSUMERS = 3
BOUND_S = 240.0 * max(1.0, TOTAL_EVENTS / 20_000)

Key = tuple[int, str, int, str, str, str]


def key(event: dict[str, Any]) -> Key:
    """What a consumer keeps of an event: enough to show it is the very same event."""
    return (
        event["position"],
        event["stream_id"],
        event["seq"],
        event["type"],
        event["prev_hash"],
        event["hash"],
    )


def reached(target: asyncio.Future[int], last: int) -> bool:
    return target.done() and last >= target.result()


async def page_consumer(base_url: str, seed: int, target: asyncio.Future[int]) -> list[Key]:
    """Pages the feed with a random limit each time, keeping ``next_after``; sometimes pauses."""
    rng = random.Random(seed)
    seen: list[Key] = []
    after = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        while not reached(target, after):
            limit = rng.randint(50, 1000)
            response = await client.get("/v1/events", params={"after": after, "limit": limit})
            assert response.status_code == 200, response.text
            page = response.json()
            events = page["events"]
            assert len(events) <= limit
            seen.extend(key(e) for e in events)
            assert page["next_after"] == (events[-1]["position"] if events else after), page
            after = page["next_after"]
            if not events:
                await asyncio.sleep(0.05)
            elif rng.random() < 0.1:
                await asyncio.sleep(rng.uniform(0.05, 0.4))
    return seen


async def tail_consumer(
    base_url: str, seed: int, target: asyncio.Future[int]
) -> tuple[list[Key], int, int]:
    """Follows the global tail; closes it after a random number of events and reconnects to
    the same URL with ``Last-Event-ID`` = the last id seen. Returns the events, the number of
    connections and the number of ``overflow`` endings."""
    rng = random.Random(seed)
    seen: list[Key] = []
    last = 0
    connections = overflows = 0
    timeout = httpx.Timeout(30.0, read=15.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        while not reached(target, last):
            headers = {"Last-Event-ID": str(last)} if last else {}
            quota = rng.randint(300, 6000)
            connections += 1
            async with client.stream(
                "GET", "/v1/events/stream", params={"after": 0}, headers=headers
            ) as response:
                assert response.status_code == 200, await response.aread()
                assert response.headers["content-type"].startswith("text/event-stream")
                async for frame in aframes(response):
                    if frame.is_comment:
                        if reached(target, last):
                            break
                        continue
                    if frame.event == "overflow":
                        assert frame.json()["resume_after"] == last, frame
                        overflows += 1
                        break
                    assert frame.event == "message", frame
                    event = frame.json()
                    assert frame.position == event["position"], frame
                    seen.append(key(event))
                    last = event["position"]
                    quota -= 1
                    if quota == 0 or reached(target, last):
                        break
                    if rng.random() < 0.0005:
                        await asyncio.sleep(rng.uniform(0.05, 0.3))
    return seen, connections, overflows


async def full_read(base_url: str) -> list[Key]:
    everything: list[Key] = []
    after = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        while True:
            response = await client.get("/v1/events", params={"after": after, "limit": 10_000})
            assert response.status_code == 200, response.text
            page = response.json()
            if not page["events"]:
                return everything
            everything.extend(key(e) for e in page["events"])
            after = page["next_after"]


async def run_load(base_url: str) -> dict[str, Any]:
    target: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    consumers = [
        asyncio.create_task(page_consumer(base_url, 100 + n, target))
        for n in range(PAGING_CONSUMERS)
    ]
    tails = [
        asyncio.create_task(tail_consumer(base_url, 200 + n, target))
        for n in range(TAILING_CONSUMERS)
    ]
    share = TOTAL_EVENTS // WRITERS
    written = await asyncio.gather(
        *(write_events(base_url, f"w{w}", share, LANES_PER_WRITER) for w in range(WRITERS))
    )
    writers_done = time.monotonic()
    acknowledged = [p for positions in written for p in positions]
    target.set_result(max(acknowledged))
    pages = await asyncio.gather(*consumers)
    tailed = await asyncio.gather(*tails)
    consumers_done = time.monotonic()
    return {
        "acknowledged": acknowledged,
        "pages": pages,
        "tailed": tailed,
        "everything": await full_read(base_url),
        "write_s": writers_done - started,
        "catch_up_s": consumers_done - writers_done,
    }


@pytest.mark.timeout(BOUND_S + 30)
def test_paging_and_tailing_consumers_each_see_every_event_exactly_once_in_order(
    launcher: ServerLauncher, pg_url: str
) -> None:
    # heartbeats let a caught-up tail notice that the writers are done
    server = launcher.start(pg_url, {"LEDGER_SSE_HEARTBEAT_MS": "500"})
    started = time.monotonic()

    result = asyncio.run(asyncio.wait_for(run_load(server.base_url), BOUND_S))

    elapsed = time.monotonic() - started
    print(
        f"\n{TOTAL_EVENTS} events: writers {result['write_s']:.1f} s, consumers caught up "
        f"{result['catch_up_s']:.1f} s later, {elapsed:.1f} s in all; tail connections "
        f"{[c for _, c, _ in result['tailed']]}, overflows {[o for _, _, o in result['tailed']]}"
    )
    acknowledged = result["acknowledged"]
    everything: list[Key] = result["everything"]
    head = max(acknowledged)
    # one event per command, each acknowledged at its own position, and nothing else appended
    assert len(acknowledged) == TOTAL_EVENTS
    assert len(set(acknowledged)) == TOTAL_EVENTS
    assert head >= TOTAL_EVENTS
    # the unfiltered feed is gap-free: 1..head, each once, in order
    assert [k[0] for k in everything] == list(range(1, head + 1))
    assert len(everything) == head
    assert sorted(acknowledged) == list(range(1, head + 1))

    for n, seen in enumerate(result["pages"]):
        assert_same_sequence(f"paging consumer {n}", seen, everything)
    for n, (seen, connections, _) in enumerate(result["tailed"]):
        assert connections > 1, f"tailing consumer {n} never reconnected"
        assert_same_sequence(f"tailing consumer {n}", seen, everything)


def assert_same_sequence(who: str, seen: list[Key], everything: list[Key]) -> None:
    positions = [k[0] for k in seen]
    duplicates = len(positions) - len(set(positions))
    missing = sorted(set(range(1, len(everything) + 1)) - set(positions))
    assert not duplicates, f"{who} saw {duplicates} positions twice"
    assert not missing, f"{who} missed {len(missing)} positions, first {missing[:10]}"
    assert positions == sorted(positions), f"{who} saw positions out of order"
    differing = [(a, b) for a, b in zip(seen, everything, strict=True) if a != b]
    assert not differing, f"{who} saw {len(differing)} events unlike the full read: {differing[:3]}"
