"""How a live tail ends: a slow client is cut off with ``overflow`` (and resumes with no gap)
without holding back writers or other clients; a graceful stop sends ``shutdown``."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LedgerServer, ServerLauncher
from tests.e2e.helpers import ok
from tests.e2e.load import write_events
from tests.e2e.sse import Frame, aframes, frames

MAX_LAG = 50
# Enough bytes to fill the server's send buffer (up to 4 MiB here), uvicorn's write buffer and
# the slow client's small receive buffer many times over, so the server-side tail must block.
BURST_EVENTS = 1500
PAYLOAD = {"text": "x" * 8000}
SLOW_RCVBUF = 128 * 1024  # fixed (no autotuning up to 32 MiB), yet fast on loopback


class Reader:
    """An async SSE tail read on demand, keeping every event it has read."""

    def __init__(self, response: httpx.Response) -> None:
        self._frames = aframes(response)
        self.events: list[Frame] = []
        self.endings: list[Frame] = []
        self.ended = False
        self.timed_out = False

    @property
    def last(self) -> int:
        return self.events[-1].position if self.events else 0

    async def until(self, predicate: Any, seconds: float) -> None:
        """Read frames until ``predicate(self)`` holds or the stream ends (or time is up:
        ``timed_out`` is then set and the caller's assertions tell what was missing)."""
        try:
            async with asyncio.timeout(seconds):
                while not predicate(self):
                    try:
                        frame = await anext(self._frames)
                    except StopAsyncIteration:
                        self.ended = True
                        return
                    self._keep(frame)
        except TimeoutError:
            self.timed_out = True

    def _keep(self, frame: Frame) -> None:
        if frame.event == "message":
            self.events.append(frame)
        elif not frame.is_comment:
            self.endings.append(frame)

    async def rest(self, seconds: float) -> None:
        """Read to the end of the stream."""
        await self.until(lambda _: False, seconds)


async def head(client: httpx.AsyncClient, known: int = 0) -> int:
    """The max position, paging on from a position ``known`` to exist."""
    position = known
    while True:
        response = await client.get("/v1/events", params={"after": position, "limit": 1000})
        page = response.json()
        if not page["events"]:
            return position
        position = page["next_after"]


async def slow_and_fast(base_url: str) -> dict[str, Any]:
    small_buffer = httpx.AsyncHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)]
    )
    timeout = httpx.Timeout(30.0, read=30.0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=small_buffer) as slow,
    ):
        start = await head(client)
        async with (
            slow.stream("GET", "/v1/events/stream") as slow_response,
            client.stream("GET", "/v1/events/stream") as fast_response,
        ):
            slow_tail, fast_tail = Reader(slow_response), Reader(fast_response)
            # both are live at the head; a few events reach both
            warm_up = await write_events(base_url, "warm", 5, 1)
            await slow_tail.until(lambda r: r.last == max(warm_up), 10)
            await fast_tail.until(lambda r: r.last == max(warm_up), 10)
            # the slow client now stops reading while a burst is written
            began = time.monotonic()
            target = [2**62]  # known once the burst is written
            fast_reading = asyncio.create_task(
                fast_tail.until(lambda r: r.last >= target[0] or bool(r.endings), 60)
            )
            burst = await write_events(base_url, "burst", BURST_EVENTS, 8, PAYLOAD)
            writers_done = time.monotonic() - began
            target[0] = await head(client, max(burst))
            await fast_reading
            fast_done = time.monotonic() - began
            slow_last_before = slow_tail.last
            # the slow client reads on: what was buffered, then the overflow, then the end
            await slow_tail.rest(45)
        final = await head(client, target[0])
        ending = slow_tail.endings[0] if slow_tail.endings else None
        resumed: list[Frame] = []
        if ending is not None and ending.event == "overflow":
            resume_after = str(ending.json()["resume_after"])
            async with client.stream(
                "GET", "/v1/events/stream", headers={"Last-Event-ID": resume_after}
            ) as response:
                assert response.status_code == 200
                again = Reader(response)
                await again.until(lambda r: r.last >= final, 30)
                resumed = again.events
    return {
        "start": start,
        "burst": burst,
        "final": final,
        "slow": slow_tail,
        "slow_last_before": slow_last_before,
        "fast": fast_tail,
        "resumed": resumed,
        "writers_done_s": writers_done,
        "fast_done_s": fast_done,
    }


@pytest.mark.timeout(90)
def test_a_slow_client_is_cut_off_with_overflow_and_resumes_without_holding_back_others(
    launcher: ServerLauncher, pg_url: str
) -> None:
    server = launcher.start(pg_url, {"LEDGER_SSE_MAX_LAG": str(MAX_LAG)})

    result = asyncio.run(slow_and_fast(server.base_url))
    print(
        f"\nburst of {BURST_EVENTS} written in {result['writers_done_s']:.1f} s; the fast client "
        f"had all of it {result['fast_done_s']:.1f} s after the burst began"
    )

    final = result["final"]
    expected = list(range(result["start"] + 1, final + 1))
    assert len(result["burst"]) == BURST_EVENTS
    assert final == result["start"] + 5 + BURST_EVENTS
    # the fast client kept up: every event, in order, and no ending while the slow one stalled
    fast: Reader = result["fast"]
    assert not fast.endings, fast.endings
    assert [e.position for e in fast.events] == expected
    # the slow client was still far behind when the others were done
    assert result["slow_last_before"] < final - MAX_LAG
    slow: Reader = result["slow"]
    assert len(slow.endings) == 1, (
        f"the slow client read {len(slow.events)} events up to {slow.last} of {final}, then "
        f"{'the stream ended' if slow.ended else 'nothing'}; endings {slow.endings}"
    )
    ending = slow.endings[0]
    assert ending.event == "overflow", ending
    body = ending.json()
    assert set(body) == {"reason", "resume_after"}, body
    assert body["reason"]
    assert body["resume_after"] == slow.last < final
    # resuming from resume_after continues with no gap and no duplicate
    positions = [e.position for e in slow.events] + [e.position for e in result["resumed"]]
    assert positions == expected
    assert [e.json()["position"] for e in result["resumed"]] == positions[len(slow.events) :]


def open_tail(client: httpx.Client, path: str) -> tuple[Any, Any]:
    manager = client.stream("GET", path)
    response = manager.__enter__()
    assert response.status_code == 200, response.read()
    return manager, frames(response)


def read_to_end(source: Any, seconds: float) -> list[Frame]:
    got: list[Frame] = []
    deadline = time.monotonic() + seconds
    for frame in source:
        got.append(frame)
        assert time.monotonic() < deadline, f"the tail did not end within {seconds} s: {got[-5:]}"
    return got


@pytest.mark.timeout(60)
def test_sigterm_sends_a_shutdown_event_to_open_tails_and_the_process_exits_promptly(
    launcher: ServerLauncher, database_url: str
) -> None:
    server: LedgerServer = launcher.start(database_url, {"LEDGER_SSE_HEARTBEAT_MS": "60000"})
    with httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(10.0, read=10.0)) as client:
        ok(client.post("/v1/threads", json={"thread_id": "thr_stop"}), 201)
        ok(client.post("/v1/threads/thr_stop/turns", json={"turn_id": "t1"}), 201)
        global_manager, global_frames = open_tail(client, "/v1/events/stream")
        thread_manager, thread_frames = open_tail(client, "/v1/threads/thr_stop/stream")
        try:
            assert next(global_frames).comment == "connected"
            thread_backlog = [next(thread_frames) for _ in range(3)]
            assert thread_backlog[0].comment == "connected"
            assert [f.position for f in thread_backlog[1:]] == [1, 2]
            item = ok(
                client.post("/v1/threads/thr_stop/turns/t1/items", json={"kind": "message"}), 201
            )
            live = next(global_frames)
            assert live.position == item["position"]

            stopping = time.monotonic()
            server.send_signal(signal.SIGTERM)
            global_rest = read_to_end(global_frames, 10)
            thread_rest = read_to_end(thread_frames, 10)
            code = server.process.wait(timeout=10)
            exited_after = time.monotonic() - stopping
        finally:
            global_manager.__exit__(None, None, None)
            thread_manager.__exit__(None, None, None)
    for rest, cursor in ((global_rest, item["position"]), (thread_rest, 3)):
        events = [f for f in rest if not f.is_comment]
        assert events, "the tail closed without a final event"
        assert events[-1].event == "shutdown", events
        assert events[-1].json()["resume_after"] == cursor
        assert events[-1].json()["reason"]
        assert [f.event for f in events[:-1]] == ["message"] * (len(events) - 1)
        assert [f.position for f in events[:-1]] == list(
            range(cursor - len(events) + 2, cursor + 1)
        )
    assert exited_after < 5.0, f"ledger serve took {exited_after:.1f} s to exit"
    print(f"exit code {code} after {exited_after:.2f} s")
    assert code in (0, -signal.SIGTERM), code
    # a graceful stop appends nothing on its own
    restarted = launcher.start(database_url)
    with httpx.Client(base_url=restarted.base_url, timeout=10.0) as client:
        page = ok(client.get("/v1/events", params={"after": 0}), 200)
    assert [e["position"] for e in page["events"]] == [1, 2, 3]
