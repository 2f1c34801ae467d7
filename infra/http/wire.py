"""The event wire format and JSON responses.

``data`` and ``metadata`` are stored as canonical JSON, so they are embedded in
responses verbatim (``orjson.Fragment``) instead of being parsed and re-encoded.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from infra.store.hashing import format_timestamp
from infra.store.json_pages import JsonPage
from infra.store.records import RecordedEvent


def event_wire(event: RecordedEvent) -> dict[str, Any]:
    return {
        "stream_id": event.stream_id,
        "stream_type": event.stream_type,
        "seq": event.seq,
        "position": event.position,
        "type": event.type,
        "class_version": event.class_version,
        "recorded_at": format_timestamp(event.recorded_at),
        "data": orjson.Fragment(event.data),
        "metadata": orjson.Fragment(event.metadata),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def page_response(page: JsonPage, cursor_name: str, cursor: int) -> Response:
    """``{"events": [...], cursor_name: cursor}`` with the events as the database rendered
    them (:mod:`infra.store.json_pages`): spliced in, never parsed."""
    body = f'{{"events":{page.as_array()},"{cursor_name}":{cursor}}}'
    return Response(body.encode(), media_type="application/json")
