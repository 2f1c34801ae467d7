"""``GET /v1/export?after=P&limit=``: the caller's events after a position, as JSON lines.

The body streams one export line per event (the wire format plus ``tenant``,
the format ``ledger import`` reads) in position order, page by page, and ends
after the last event: at the head the request found, or after ``limit`` events.
A streamed response cannot end with a header naming where to continue, so a
client continues with ``after`` = the last line's ``position``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from infra.http.endpoint import Endpoint
from infra.http.limits import MAX_EXPORT_EVENTS, MAX_INT64
from infra.http.requests import read_query
from infra.http.service import ledger_of
from infra.store.errors import StoreError
from infra.store.json_pages import JsonPage, LogSlice

if TYPE_CHECKING:
    from infra.bootstrap import Ledger

log = logging.getLogger(__name__)

PAGE = 500
MEDIA_TYPE = "application/x-ndjson"


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    after: int = Field(0, ge=0, le=MAX_INT64, description="the last position already read")
    limit: int | None = Field(
        None, ge=1, le=MAX_EXPORT_EVENTS, description="at most this many events (default: all)"
    )


async def _lines(
    ledger: Ledger, tenant: str, first: JsonPage, head: int, limit: int | None
) -> AsyncIterator[bytes]:
    """The first page (already read), then each next page, until ``head`` or ``limit``."""
    page = first
    left = limit
    try:
        while page.count:
            yield page.body.encode() + b"\n"
            if left is not None:
                left -= page.count
                if left <= 0:
                    return
            page = await ledger.store.read_json(
                _slice(tenant, page.last, head, left), with_tenant=True, separator="\n"
            )
    except StoreError as error:  # the status is sent: end the body early, the client resumes
        log.warning("export stream ended early: %s", error)


def _slice(tenant: str, after: int, head: int, left: int | None) -> LogSlice:
    limit = PAGE if left is None else min(PAGE, left)
    return LogSlice(after_position=after, upto_position=head, limit=limit, tenant=tenant)


async def get_export(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, ExportQuery)
    tenant = ledger.tenant(request)
    head = await ledger.store.max_position()
    first = await ledger.store.read_json(
        _slice(tenant, query.after, head, query.limit), with_tenant=True, separator="\n"
    )
    return StreamingResponse(
        _lines(ledger, tenant, first, head, query.limit),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/export",
        get_export,
        "The caller's events after a position as JSON lines (application/x-ndjson)",
        query=ExportQuery,
        errors=(400, 422, 503),
        tags=("feed",),
        media_type=MEDIA_TYPE,
    ),
]
