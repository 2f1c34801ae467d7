"""The global feed and live tails (SSE).

``GET /v1/events?after=P`` pages the whole log by position. The SSE tails send
the backlog first, then live events, with the SSE ``id`` set to the position
(global tail) or the seq (stream tails); ``Last-Event-ID`` or ``?after=``
resumes exactly after it. Each connection reads its own pages from the
database, so a slow client holds one page and never slows writers or other
clients. A client that was live and then falls more than ``max_lag`` events
behind gets a final ``overflow`` event naming where to resume, and is closed.
Idle connections get heartbeat comments; a graceful server stop sends a final
``shutdown`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from domain.errors import NotFound
from infra.http.endpoint import Endpoint
from infra.http.errors import ApiError
from infra.http.limits import MAX_FEED_PAGE_SIZE, MAX_INT64
from infra.http.paths import path_ids
from infra.http.requests import read_query
from infra.http.schemas import FeedPage
from infra.http.service import ledger_of
from infra.http.wire import event_wire, page_response
from infra.store.json_pages import LogSlice
from infra.store.records import RecordedEvent

if TYPE_CHECKING:
    from infra.bootstrap import Ledger

PAGE = 200
SSE = "text/event-stream"
TYPE_PATTERN = r"^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$"
STREAM_TYPE_PATTERN = r"^[a-z][a-z0-9_]*$"


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    after: int = Field(0, ge=0, le=MAX_INT64)
    limit: int = Field(1000, ge=1, le=MAX_FEED_PAGE_SIZE)
    types: str | None = Field(None, max_length=2000, pattern=TYPE_PATTERN)
    stream_type: str | None = Field(None, max_length=64, pattern=STREAM_TYPE_PATTERN)

    def type_list(self) -> list[str]:
        return self.types.split(",") if self.types else []


class TailQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    after: int | None = Field(None, ge=0, le=MAX_INT64)
    types: str | None = Field(None, max_length=2000, pattern=TYPE_PATTERN)
    stream_type: str | None = Field(None, max_length=64, pattern=STREAM_TYPE_PATTERN)


async def get_feed(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, FeedQuery)
    where = LogSlice(
        after_position=query.after,
        limit=query.limit,
        types=query.type_list(),
        stream_type=query.stream_type,
        tenant=ledger.tenant(request),
    )
    page = await ledger.store.read_json(where)
    return page_response(page, "next_after", page.last if page.count else query.after)


def _resume_point(request: Request, after: int | None) -> int | None:
    """Where a tail resumes: ``Last-Event-ID`` wins over ``?after=``."""
    header = request.headers.get("last-event-id")
    if header is None or header == "":
        return after
    if not header.isdigit() or len(header) > 18:
        raise ApiError(
            400, "invalid_last_event_id", f"Last-Event-ID must be an integer: {header!r}"
        )
    return int(header)


def _sse(event_id: int, data: bytes) -> bytes:
    return b"id: " + str(event_id).encode() + b"\ndata: " + data + b"\n\n"


def _final(kind: str, reason: str, resume_after: int) -> bytes:
    body = orjson.dumps({"reason": reason, "resume_after": resume_after})
    return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


Reader = Callable[[int], Awaitable[list[RecordedEvent]]]


async def _tail(
    ledger: Ledger,
    request: Request,
    start: int,
    read_after: Reader,
    cursor_of: Callable[[RecordedEvent], int],
) -> AsyncIterator[bytes]:
    """Backlog, then live; yields SSE frames until the client leaves or the server stops."""
    notifier = ledger.notifier
    settings = ledger.settings
    heartbeat = settings.sse_heartbeat_ms / 1000
    last = start
    was_live = False
    ledger.metrics_sse_connections(+1)
    try:
        yield b": connected\n\n"
        while not ledger.closing.is_set():
            head_seen = notifier.head
            page = await read_after(last)
            if page:
                lag = notifier.head - page[-1].position
                # A short page reached the end of what this tail selects: the client is not
                # behind, however many events of other tenants (or types) followed it.
                behind = len(page) == PAGE and lag > settings.sse_max_lag
                if was_live and behind:
                    yield _final("overflow", f"client fell {lag} events behind", last)
                    return
                for event in page:
                    last = cursor_of(event)
                    yield _sse(last, orjson.dumps(event_wire(event)))
                if len(page) == PAGE:
                    continue
            was_live = True
            if await request.is_disconnected():
                return
            woke = await _wait(ledger, head_seen, heartbeat)
            if not woke and not ledger.closing.is_set():
                yield b": heartbeat\n\n"
        yield _final("shutdown", "the server is stopping", last)
    finally:
        ledger.metrics_sse_connections(-1)


async def _wait(ledger: Ledger, head_seen: int, seconds: float) -> bool:
    """Wait for the log to grow past ``head_seen`` or the server to stop."""
    grow = asyncio.ensure_future(ledger.notifier.wait_beyond(head_seen, seconds))
    stop = asyncio.ensure_future(ledger.closing.wait())
    done, pending = await asyncio.wait({grow, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return grow in done and grow.result()


def _stream_response(frames: AsyncIterator[bytes]) -> Response:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames, media_type=SSE, headers=headers)


async def tail_feed(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, TailQuery)
    resume = _resume_point(request, query.after)
    start = resume if resume is not None else await ledger.store.max_position()
    types = query.types.split(",") if query.types else []
    tenant = ledger.tenant(request)

    async def read_after(position: int) -> list[RecordedEvent]:
        return await ledger.store.read_all(
            after_position=position,
            limit=PAGE,
            types=types,
            stream_type=query.stream_type,
            tenant=tenant,
        )

    return _stream_response(_tail(ledger, request, start, read_after, lambda e: e.position))


def _stream_tail(stream_type: str, id_param: str) -> Callable[[Request], Awaitable[Response]]:
    async def tail_stream(request: Request) -> Response:
        ledger = ledger_of(request)
        stream_id = path_ids(request)[id_param]
        query = read_query(request, TailQuery)
        tenant = ledger.tenant(request)
        head = await ledger.store.stream_head(tenant, stream_id)
        if head is None or head.stream_type != stream_type:
            raise NotFound(f"no {stream_type} {stream_id}", **{id_param: stream_id})
        start = _resume_point(request, query.after) or 0

        async def read_after(seq: int) -> list[RecordedEvent]:
            return await ledger.store.read_stream(tenant, stream_id, after_seq=seq, limit=PAGE)

        return _stream_response(_tail(ledger, request, start, read_after, lambda e: e.seq))

    tail_stream.__name__ = f"tail_{stream_type}"
    return tail_stream


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/events",
        get_feed,
        "Every event after a position, in position order",
        query=FeedQuery,
        response=FeedPage,
        errors=(400, 422, 503),
        tags=("feed",),
    ),
    Endpoint(
        "GET",
        "/v1/events/stream",
        tail_feed,
        "Live tail of the whole log (SSE; id = position)",
        query=TailQuery,
        errors=(400, 503),
        tags=("feed",),
        media_type=SSE,
    ),
    Endpoint(
        "GET",
        "/v1/threads/{thread_id}/stream",
        _stream_tail("thread", "thread_id"),
        "Live tail of one thread (SSE; id = seq)",
        query=TailQuery,
        errors=(400, 404, 503),
        tags=("threads",),
        media_type=SSE,
    ),
    Endpoint(
        "GET",
        "/v1/runs/{run_id}/stream",
        _stream_tail("run", "run_id"),
        "Live tail of one run (SSE; id = seq)",
        query=TailQuery,
        errors=(400, 404, 503),
        tags=("runs",),
        media_type=SSE,
    ),
]
