"""The log as plain dicts, for consumers that analyse it in process.

An analytics reader that follows the log by position wants each event's data
decoded and a few envelope fields beside it. Reaching that through
:class:`~infra.store.records.RecordedEvent` (twelve fields, a parsed time, two
byte copies, then a dict built from the object) costs more than decoding the
data itself. A *record* is instead one dict built straight from a narrow row:

``position``, ``tenant``, ``stream_type``, ``stream_id``, ``seq``, ``type`` and
``data`` (the event's data decoded by ``orjson``), and with ``with_time``
also ``recorded_at`` (an aware UTC datetime).

The metadata and the hash chain are left out: an audit reads them through
:meth:`read_all` or the export, which carry every column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from infra.store.json_pages import LogSlice

LogRecord = dict[str, Any]

RECORD_COLUMNS = "position, tenant, stream_type, stream_id, seq, type, data"


def records_query(where: LogSlice, *, with_time: bool) -> tuple[str, list[object]]:
    """The query of one page of records (``%s`` placeholders)."""
    return where.sql(RECORD_COLUMNS + (", recorded_at" if with_time else ""))


@dataclass(frozen=True, slots=True)
class RecordRows:
    """One page of rows of :func:`records_query`, not yet records. A reader hands these
    across threads and decodes them where they are consumed: decoding is the scan's
    whole cost, and done on a read-ahead thread it would not overlap the database's
    work but follow it."""

    rows: Sequence[Sequence[Any]]
    parse_time: Callable[[Any], datetime] | None
    """How to read the ``recorded_at`` column (``None``: not asked for)."""

    @property
    def last(self) -> int:
        """The last row's position (0 when the page is empty)."""
        return int(self.rows[-1][0]) if self.rows else 0

    def decode(self) -> list[LogRecord]:
        return records_from_rows(self.rows, self.parse_time)


def records_from_rows(
    rows: Sequence[Sequence[Any]], parse_time: Callable[[Any], datetime] | None
) -> list[LogRecord]:
    """The records of the rows of :func:`records_query` (``parse_time`` when it asked
    for the time). One literal per record: this loop is the scan's whole cost."""
    loads = orjson.loads
    records = [
        {
            "position": row[0],
            "tenant": row[1],
            "stream_type": row[2],
            "stream_id": row[3],
            "seq": row[4],
            "type": row[5],
            "data": loads(row[6]),
        }
        for row in rows
    ]
    if parse_time is not None:
        for record, row in zip(records, rows, strict=True):
            record["recorded_at"] = parse_time(row[7])
    return records
