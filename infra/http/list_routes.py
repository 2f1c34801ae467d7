"""Cross-stream read models: lists served from projections, and their status.

They trail the log briefly; ``?min_position=P`` waits (bounded) until the
projection has applied position P, else answers 503 with ``Retry-After`` and the
projection's current position.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from commands.ports import ReadModelBehind
from infra.http.endpoint import Endpoint
from infra.http.errors import ApiError
from infra.http.limits import MAX_INT64, MAX_PAGE_SIZE
from infra.http.paths import ID_PATTERN
from infra.http.requests import read_query
from infra.http.schemas import ApprovalPage, ProjectionsResponse, ThreadPage
from infra.http.service import ledger_of
from infra.http.wire import JSON
from infra.projection_wait import wait_for_projections
from queries.thread_list import list_pending_approvals, list_threads

if TYPE_CHECKING:
    from infra.bootstrap import Ledger

MIN_POSITION_WAIT_SECONDS = 5.0


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=200)
    min_position: int | None = Field(None, ge=0, le=MAX_INT64)


class ThreadListQuery(ListQuery):
    status: Literal["active", "idle", "archived"] | None = None
    executor_id: str | None = Field(None, max_length=128, pattern=ID_PATTERN)


class ApprovalListQuery(ListQuery):
    thread_id: str | None = Field(None, max_length=128, pattern=ID_PATTERN)


async def wait_for(ledger: Ledger, name: str, position: int | None) -> None:
    """Return once projection ``name`` has applied ``position``; 503 after a bounded wait.

    A position past the log's head names no acknowledged event (every position a command
    answered with is at or below it), so it answers 400 instead of waiting."""
    if position is None:
        return
    head = await ledger.store.max_position()
    if position > head:
        raise ApiError(
            400,
            "invalid_query",
            f"min_position {position} is past the log's head ({head}): no command has been"
            " acknowledged at that position",
            min_position=position,
            head=head,
        )
    try:
        await wait_for_projections(
            ledger.store, ledger.projections, (name,), position, within=MIN_POSITION_WAIT_SECONDS
        )
    except ReadModelBehind as behind:
        raise ApiError(
            503, "read_model_behind", str(behind), projection=name, position=behind.current
        ) from behind


async def get_threads(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, ThreadListQuery)
    await wait_for(ledger, "thread_summaries", query.min_position)
    page = await list_threads(
        ledger.store.fetch,
        ledger.tenant(request),
        status=query.status,
        executor_id=query.executor_id,
        limit=query.limit,
        cursor=query.cursor,
    )
    return JSON(page)


async def get_pending_approvals(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, ApprovalListQuery)
    await wait_for(ledger, "pending_approvals", query.min_position)
    page = await list_pending_approvals(
        ledger.store.fetch,
        ledger.tenant(request),
        thread_id=query.thread_id,
        limit=query.limit,
        cursor=query.cursor,
    )
    return JSON(page)


async def get_projections(request: Request) -> Response:
    ledger = ledger_of(request)
    head = await ledger.store.max_position()
    statuses = []
    for runner in ledger.projections.runners:
        rows = await ledger.store.fetch(
            "SELECT position, last_error, error_position FROM projection_positions WHERE name = %s",
            [runner.name],
        )
        position, error, error_position = rows[0] if rows else (0, None, None)
        lag_seconds = 0.0
        if head > position:
            nxt = await ledger.store.read_all(after_position=int(position), limit=1)
            if nxt:
                lag_seconds = max(0.0, time.time() - nxt[0].recorded_at.timestamp())
        statuses.append(
            {
                "name": runner.name,
                "position": int(position),
                "head": head,
                "lag_events": head - int(position),
                "lag_seconds": round(lag_seconds, 3),
                "last_error": error,
                "error_position": error_position,
            }
        )
    return JSON({"projections": statuses})


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/threads",
        get_threads,
        "List threads, newest first (keyset cursor)",
        query=ThreadListQuery,
        response=ThreadPage,
        errors=(400, 422, 503),
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        "/v1/approvals",
        get_pending_approvals,
        "Approvals waiting for a person, oldest first",
        query=ApprovalListQuery,
        response=ApprovalPage,
        errors=(400, 422, 503),
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        "/v1/projections",
        get_projections,
        "Every projection's position, lag and last error",
        response=ProjectionsResponse,
        errors=(503,),
        tags=("system",),
    ),
]
