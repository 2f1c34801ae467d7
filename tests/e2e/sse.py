"""A small Server-Sent Events reader for the live-tail tests (httpx streams, sync or async).

Lines are fed one at a time (``httpx.Response.iter_lines``/``aiter_lines``); a blank
line dispatches the fields gathered since the last one as one :class:`Frame`. A
comment line (starting with ``:``) is a frame of its own, so tests can see
heartbeats.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Frame:
    """One SSE event (``comment`` is None) or one comment line (``comment`` is its text)."""

    event: str = "message"
    id: str | None = None
    data: str = ""
    comment: str | None = None

    @property
    def is_comment(self) -> bool:
        return self.comment is not None

    @property
    def position(self) -> int:
        """The SSE id as an integer (position on the global tail, seq on a stream tail)."""
        assert self.id is not None, f"frame without id: {self}"
        return int(self.id)

    def json(self) -> Any:
        return json.loads(self.data)


class Parser:
    """Turns SSE lines into frames."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._id: str | None = None
        self._data: list[str] = []
        self._seen = False

    def feed(self, line: str) -> Frame | None:
        if line == "":
            if not self._seen:
                return None
            frame = Frame(self._event or "message", self._id, "\n".join(self._data))
            self._event, self._id, self._data, self._seen = None, None, [], False
            return frame
        if line.startswith(":"):
            return Frame(event="comment", comment=line[1:].strip())
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._seen = True
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def frames(response: httpx.Response) -> Iterator[Frame]:
    """Every frame of a streamed response, until the server ends it."""
    parser = Parser()
    for line in response.iter_lines():
        frame = parser.feed(line)
        if frame is not None:
            yield frame


async def aframes(response: httpx.Response) -> AsyncIterator[Frame]:
    """Every frame of a streamed response (async client), until the server ends it."""
    parser = Parser()
    async for line in response.aiter_lines():
        frame = parser.feed(line)
        if frame is not None:
            yield frame


def events_only(source: Iterator[Frame]) -> Iterator[Frame]:
    """The frames that are events (no comments)."""
    return (frame for frame in source if not frame.is_comment)
