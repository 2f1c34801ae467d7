"""The coalescing transport: what one loop turn writes goes out as one write, in order;
closing sends what was written first; nothing is written to a closing transport."""

from __future__ import annotations

import asyncio
from typing import Any

from infra.http.coalescing import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else default


async def _turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_loop_turn_go_out_as_one_write_in_order() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    assert inner.writes == []  # not before the turn ends
    await _turn()
    transport.write(b"next")
    await _turn()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"next"]


async def test_closing_sends_what_was_written_first() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last words")
    transport.close()
    await _turn()  # the scheduled flush finds nothing left and writes nothing
    assert inner.writes == [b"last words"] and inner.closed


async def test_nothing_is_written_once_the_connection_is_closing() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"too late")
    inner.closed = True  # the peer went away
    await _turn()
    assert inner.writes == []


async def test_everything_else_is_the_transports() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8080)
    assert transport.is_closing() is False
