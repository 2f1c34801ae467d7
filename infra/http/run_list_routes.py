"""``GET /v1/runs``: runs newest first, from the ``run_summaries`` projection.

The list follows the log and may trail it briefly; ``?min_position=P`` waits
(bounded) for it, as the thread list does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from infra.http.endpoint import Endpoint
from infra.http.list_routes import ListQuery, wait_for
from infra.http.paths import ID_PATTERN
from infra.http.requests import read_query
from infra.http.schemas import Response as ResponseModel
from infra.http.service import ledger_of
from infra.http.wire import JSON
from projections.run_summaries import RunSummaries
from queries.run_list import list_runs

if TYPE_CHECKING:
    pass

RunStatus = Literal[
    "queued",
    "running",
    "pausing",
    "paused",
    "awaiting_approval",
    "blocked",
    "succeeded",
    "failed",
    "cancelled",
]


class RunListQuery(ListQuery):
    status: RunStatus | None = None
    client_id: str | None = Field(None, max_length=128, pattern=ID_PATTERN)
    automation_id: str | None = Field(None, max_length=128, pattern=ID_PATTERN)


class RunNodeCounts(ResponseModel):
    total: int
    succeeded: int
    failed: int


class RunUsageTotals(ResponseModel):
    total_tokens: int
    cost_usd: float


class RunSummaryView(ResponseModel):
    run_id: str
    status: str
    client_id: str
    automation_id: str | None
    executor_id: str | None
    definition_hash: str
    detail: str | None
    stop_kind: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    nodes: RunNodeCounts
    usage: RunUsageTotals
    last_seq: int
    last_position: int


class RunPage(ResponseModel):
    items: list[RunSummaryView]
    next_cursor: str | None


async def get_runs(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, RunListQuery)
    await wait_for(ledger, RunSummaries.name, query.min_position)
    page = await list_runs(
        ledger.store.fetch,
        ledger.tenant(request),
        status=query.status,
        client_id=query.client_id,
        automation_id=query.automation_id,
        limit=query.limit,
        cursor=query.cursor,
    )
    return JSON(page)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/runs",
        get_runs,
        "List runs, newest first (keyset cursor); filter by status, client or automation",
        query=RunListQuery,
        response=RunPage,
        errors=(400, 422, 503),
        tags=("runs",),
    ),
]
