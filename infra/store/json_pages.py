"""Pages of the log rendered in the event wire format by the database itself.

A consumer that follows the log by position (the global feed, an export, an
analytics reader) wants JSON, and the store already holds each event's
``data`` and ``metadata`` as canonical JSON. So the database writes each event's
wire object by concatenating text around those bytes: no row becomes a Python
object, nothing is parsed or re-encoded on the way out, and a page reaches the
caller as one string it can send as it is or decode with one ``orjson.loads``.
PostgreSQL joins the page server-side (one value crosses the wire); SQLite,
in process, hands back one short row per event for a ``str.join``.

The objects have the keys and values of :func:`infra.http.wire.event_wire`
(plus ``tenant`` for exports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from infra.store.rows import feed_sql

Separator = Literal[",", "\n"]


@dataclass(frozen=True, slots=True)
class JsonPage:
    """``count`` events; ``last`` is the last one's cursor (its position in a page of the
    log, its seq in a page of one stream; 0 when empty); ``body`` is their wire objects
    joined by the separator asked for (empty when ``count`` is 0)."""

    count: int
    last: int
    body: str

    def as_array(self) -> str:
        """The page as one JSON array (for a page joined by ``,``)."""
        return "[" + self.body + "]"


def _wire_object(dialect: str, with_tenant: bool) -> str:
    """The SQL expression of one event's wire object, in :func:`event_wire`'s key order."""
    if dialect == "postgres":
        quote = "to_json({})::text"
        recorded_at = "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        as_text = "convert_from({}, 'UTF8')"
    else:
        quote = "json_quote({})"
        recorded_at = "recorded_at"  # stored in the wire format already
        as_text = "CAST({} AS TEXT)"
    parts = [
        "'{\"stream_id\":'",
        quote.format("stream_id"),
        "',\"stream_type\":'",
        quote.format("stream_type"),
        "',\"seq\":'",
        "seq",
        "',\"position\":'",
        "position",
        "',\"type\":'",
        quote.format("type"),
        "',\"class_version\":'",
        "class_version",
        '\',"recorded_at":"\'',
        recorded_at,
        '\'","data":\'',
        as_text.format("data"),
        "',\"metadata\":'",
        as_text.format("metadata"),
        '\',"prev_hash":"\'',
        "prev_hash",  # hex digests: nothing to escape
        '\'","hash":"\'',
        "hash",
    ]
    if with_tenant:
        parts += ['\'","tenant":\'', quote.format("tenant"), "'}'"]
    else:
        parts.append("'\"}'")
    return " || ".join(parts)


@dataclass(frozen=True, slots=True)
class LogSlice:
    """Which events a page holds: after ``after_position`` (and at most ``upto_position``),
    at most ``limit``, optionally of some types, one stream type or one tenant."""

    after_position: int = 0
    upto_position: int | None = None
    limit: int = 1000
    types: Sequence[str] = ()
    stream_type: str | None = None
    tenant: str | None = None

    def sql(self, columns: str) -> tuple[str, list[object]]:
        """The query of these events' ``columns`` in position order (``%s`` placeholders)."""
        return feed_sql(
            after_position=self.after_position,
            upto_position=self.upto_position,
            limit=self.limit,
            types=self.types,
            stream_type=self.stream_type,
            tenant=self.tenant,
            columns=columns,
        )


@dataclass(frozen=True, slots=True)
class StreamSlice:
    """The events of one stream after ``after_seq``, at most ``limit`` (a replay page)."""

    tenant: str
    stream_id: str
    after_seq: int = 0
    limit: int = 100


def json_page_query(
    dialect: str, where: LogSlice | StreamSlice, *, with_tenant: bool, separator: Separator
) -> tuple[str, list[object]]:
    """The query of one page (``%s`` placeholders); read its rows with :func:`json_page`."""
    if separator not in (",", "\n"):
        raise ValueError(f"unsupported separator {separator!r}")
    wire = _wire_object(dialect, with_tenant)
    if isinstance(where, StreamSlice):
        cursor = "seq"
        text = (
            f"SELECT seq, {wire} AS wire FROM events"
            " WHERE tenant = %s AND stream_id = %s AND seq > %s ORDER BY seq LIMIT %s"
        )
        params: list[object] = [where.tenant, where.stream_id, where.after_seq, where.limit]
    else:
        cursor = "position"
        text, params = where.sql(f"position, {wire} AS wire")
    if dialect != "postgres":
        return text, params
    joiner = "','" if separator == "," else "E'\\n'"
    return (
        f"SELECT count(*), coalesce(max({cursor}), 0),"
        f" coalesce(string_agg(wire, {joiner} ORDER BY {cursor}), '') FROM ({text}) page",
        params,
    )


def json_page(dialect: str, rows: Sequence[Sequence[Any]], separator: Separator) -> JsonPage:
    """The page from the rows of :func:`json_page_query`."""
    if dialect == "postgres":
        count, last, body = rows[0]
        return JsonPage(int(count), int(last), str(body))
    if not rows:
        return JsonPage(0, 0, "")
    return JsonPage(len(rows), int(rows[-1][0]), separator.join(row[1] for row in rows))
