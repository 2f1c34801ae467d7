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
from infra.log_export import export_line
from infra.store.errors import StoreError
from infra.store.records import RecordedEvent

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
    ledger: Ledger,
    tenant: str,
    first: list[RecordedEvent],
    head: int,
    limit: int | None,
) -> AsyncIterator[bytes]:
    """The first page (already read), then each next page, until ``head`` or ``limit``."""
    page = first
    left = limit
    try:
        while page:
            page = [event for event in page if event.position <= head][:left]
            if not page:
                return
            yield b"".join(export_line(event) for event in page)
            if left is not None:
                left -= len(page)
                if left <= 0:
                    return
            page = await ledger.store.read_all(
                after_position=page[-1].position, limit=_page_size(left), tenant=tenant
            )
    except StoreError as error:  # the status is sent: end the body early, the client resumes
        log.warning("export stream ended early: %s", error)


def _page_size(left: int | None) -> int:
    return PAGE if left is None else min(PAGE, left)


async def get_export(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, ExportQuery)
    tenant = ledger.tenant(request)
    head = await ledger.store.max_position()
    first = await ledger.store.read_all(
        after_position=query.after, limit=_page_size(query.limit), tenant=tenant
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
