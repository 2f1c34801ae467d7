"""The event wire format and JSON responses.

``data`` and ``metadata`` are stored as canonical JSON, so they are embedded in
responses verbatim (``orjson.Fragment``) instead of being parsed and re-encoded.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from infra.store.hashing import format_timestamp
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
