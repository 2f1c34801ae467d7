"""Column lists and row mapping shared by the backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from infra.store.records import RecordedEvent

EVENT_COLUMNS = (
    "tenant, stream_type, stream_id, seq, position, type, class_version,"
    " data, metadata, recorded_at, prev_hash, hash"
)


def event_from_row(row: Sequence[Any], parse_time: Callable[[Any], datetime]) -> RecordedEvent:
    return RecordedEvent(
        tenant=row[0],
        stream_type=row[1],
        stream_id=row[2],
        seq=row[3],
        position=row[4],
        type=row[5],
        class_version=row[6],
        data=bytes(row[7]),
        metadata=bytes(row[8]),
        recorded_at=parse_time(row[9]),
        prev_hash=row[10],
        hash=row[11],
    )
