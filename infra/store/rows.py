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


def feed_sql(
    *,
    after_position: int,
    upto_position: int | None,
    limit: int,
    types: Sequence[str],
    stream_type: str | None = None,
    tenant: str | None = None,
    columns: str = EVENT_COLUMNS,
) -> tuple[str, list[object]]:
    """The global feed query (``%s`` placeholders; SQLite swaps them for ``?``)."""
    text = f"SELECT {columns} FROM events WHERE position > %s"
    params: list[object] = [after_position]
    if upto_position is not None:
        text += " AND position <= %s"
        params.append(upto_position)
    if tenant is not None:
        text += " AND tenant = %s"
        params.append(tenant)
    if stream_type is not None:
        text += " AND stream_type = %s"
        params.append(stream_type)
    if types:
        text += f" AND type IN ({', '.join('%s' for _ in types)})"
        params.extend(types)
    text += " ORDER BY position LIMIT %s"
    params.append(limit)
    return text, params
