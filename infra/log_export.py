"""Exporting the log for analytics: every event after a position, page by page.

An export line is the event wire format (:func:`infra.http.wire.event_wire`)
plus ``tenant``, so ``ledger import`` can put each event back in its tenant.
Pages are read by position and written as they come: memory holds one page,
never the whole log. An export stops at the head it found when it began, so it
ends under a constant write load; ``--after`` = the last exported position
continues exactly where it stopped (positions are gap-free and commit-ordered,
so no event can later appear below it).

Parquet files have the same columns (``data`` and ``metadata`` as JSON text,
``recorded_at`` as a UTC timestamp), one row group per page.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from infra.read_ahead import read_ahead
from infra.store.backend import Backend
from infra.store.json_pages import JsonPage, LogSlice, Separator
from infra.store.records import RecordedEvent

PAGE = 1000
COLUMNS = (
    "tenant",
    "stream_id",
    "stream_type",
    "seq",
    "position",
    "type",
    "class_version",
    "recorded_at",
    "data",
    "metadata",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: ``last_position`` is where the next export continues."""

    after: int
    events: int
    pages: int
    last_position: int

    def describe(self) -> str:
        if not self.events:
            return f"exported 0 events: nothing after position {self.after}"
        return (
            f"exported {self.events} events, positions {self.after + 1}..{self.last_position};"
            f" continue with --after {self.last_position}"
        )


def event_pages(
    backend: Backend, *, after: int = 0, page_size: int = PAGE, upto: int | None = None
) -> Iterator[list[RecordedEvent]]:
    """Events with ``after < position <= upto`` (``upto``: the head now) in pages, in order."""
    if page_size < 1:
        raise ValueError("the page size must be at least 1")
    end = backend.max_position() if upto is None else upto
    while after < end:
        page = backend.read_all(after_position=after, upto_position=end, limit=page_size)
        if not page:
            return
        yield page
        after = page[-1].position


def json_pages(
    backend: Backend,
    *,
    after: int = 0,
    page_size: int = PAGE,
    upto: int | None = None,
    with_tenant: bool = True,
    separator: Separator = "\n",
) -> Iterator[JsonPage]:
    """Like :func:`event_pages`, rendered by the database (:mod:`infra.store.json_pages`;
    by default export lines): no event becomes a Python object on the way out. On
    PostgreSQL the next page is read while the caller handles this one
    (:func:`infra.read_ahead.read_ahead`)."""
    if page_size < 1:
        raise ValueError("the page size must be at least 1")
    end = backend.max_position() if upto is None else upto

    def pages(after: int) -> Iterator[JsonPage]:
        while after < end:
            where = LogSlice(after_position=after, upto_position=end, limit=page_size)
            page = backend.read_json(where, with_tenant=with_tenant, separator=separator)
            if not page.count:
                return
            yield page
            after = page.last

    # PostgreSQL renders in its own process, which then works while this one writes or
    # decodes; SQLite renders in this process, where reading ahead only adds a thread hop.
    return read_ahead(pages(after)) if backend.dialect == "postgres" else pages(after)


def write_jsonl(pages: Iterable[JsonPage], out: IO[bytes], after: int) -> ExportSummary:
    """Write each page of export lines, flushing after each page."""
    events = count = 0
    last = after
    for page in pages:
        out.write(page.body.encode() + b"\n")
        out.flush()
        events += page.count
        count += 1
        last = page.last
    return ExportSummary(after, events, count, last)


def parquet_schema() -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    return pa.schema(
        [
            ("tenant", pa.string()),
            ("stream_id", pa.string()),
            ("stream_type", pa.string()),
            ("seq", pa.int64()),
            ("position", pa.int64()),
            ("type", pa.string()),
            ("class_version", pa.int32()),
            ("recorded_at", pa.timestamp("us", tz="UTC")),
            ("data", pa.string()),
            ("metadata", pa.string()),
            ("prev_hash", pa.string()),
            ("hash", pa.string()),
        ]
    )


def _parquet_columns(page: list[RecordedEvent]) -> dict[str, list[Any]]:
    return {
        "tenant": [e.tenant for e in page],
        "stream_id": [e.stream_id for e in page],
        "stream_type": [e.stream_type for e in page],
        "seq": [e.seq for e in page],
        "position": [e.position for e in page],
        "type": [e.type for e in page],
        "class_version": [e.class_version for e in page],
        "recorded_at": [e.recorded_at for e in page],
        "data": [e.data.decode() for e in page],
        "metadata": [e.metadata.decode() for e in page],
        "prev_hash": [e.prev_hash for e in page],
        "hash": [e.hash for e in page],
    }


def write_parquet(pages: Iterable[list[RecordedEvent]], path: Path, after: int) -> ExportSummary:
    """Write a Parquet file with one row group per page (an empty export has no row group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    schema = parquet_schema()
    events = count = 0
    last = after
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for page in pages:
            writer.write_table(pa.Table.from_pydict(_parquet_columns(page), schema=schema))
            events += len(page)
            count += 1
            last = page[-1].position
    return ExportSummary(after, events, count, last)


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds."""
    partial = path.with_name(path.name + ".partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export_log(
    backend: Backend,
    out: Path | None,
    *,
    after: int = 0,
    fmt: str = "jsonl",
    page_size: int = PAGE,
    stdout: IO[bytes] | None = None,
) -> ExportSummary:
    """Export every event after ``after`` to ``out`` (``None``: JSON lines on ``stdout``)."""
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or parquet")
    if out is None:
        if fmt != "jsonl" or stdout is None:
            raise ValueError("only a jsonl export can be written to standard output")
        return write_jsonl(json_pages(backend, after=after, page_size=page_size), stdout, after)
    with replaced_atomically(out) as partial:
        if fmt == "parquet":
            pages = event_pages(backend, after=after, page_size=page_size)
            return write_parquet(pages, partial, after)
        with partial.open("wb") as file:
            lines = json_pages(backend, after=after, page_size=page_size)
            return write_jsonl(lines, file, after)
