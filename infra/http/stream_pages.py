"""Replay of one stream over HTTP: ``GET /v1/{threads,runs}/{id}/events?since_seq=&limit=``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from domain.errors import NotFound
from infra.http.limits import MAX_INT64, MAX_PAGE_SIZE
from infra.http.paths import path_ids
from infra.http.requests import read_query
from infra.http.wire import page_response
from infra.store.json_pages import StreamSlice

if TYPE_CHECKING:
    from infra.bootstrap import Ledger


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    since_seq: int = Field(0, ge=0, le=MAX_INT64)
    limit: int = Field(100, ge=1, le=MAX_PAGE_SIZE)


async def stream_events_page(request: Request, stream_type: str, id_name: str) -> Response:
    """The stream's events after ``since_seq`` in order, and ``next_seq`` to continue;
    404 unless the id names a stream of ``stream_type`` in the caller's tenant."""
    ledger: Ledger = request.app.state.ledger
    stream_id = path_ids(request)[id_name]
    query = read_query(request, EventsQuery)
    tenant = ledger.tenant(request)
    head = await ledger.store.stream_head(tenant, stream_id)
    if head is None or head.stream_type != stream_type:
        noun = id_name.removesuffix("_id")
        raise NotFound(f"no {noun} {stream_id}", **{id_name: stream_id})
    page = await ledger.store.read_json(
        StreamSlice(tenant, stream_id, after_seq=query.since_seq, limit=query.limit)
    )
    return page_response(page, "next_seq", page.last if page.count else query.since_seq)
