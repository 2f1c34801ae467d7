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
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from infra.read_ahead import read_ahead
from infra.store.backend import Backend
from infra.store.json_pages import JsonPage, LogSlice, Separator
from infra.store.log_records import LogRecord, RecordRows
from infra.store.records import RecordedEvent

PAGE = 1000
P = TypeVar("P")
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

    def read(where: LogSlice) -> tuple[int, list[RecordedEvent]]:
        page = backend.read_all(
            after_position=where.after_position,
            upto_position=where.upto_position,
            limit=where.limit,
        )
        return (page[-1].position if page else 0), page

    # In the caller's thread, as before: reading ahead was measured only for JSON pages.
    return _paged(backend, read, after, page_size, upto, ahead=False)


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

    def read(where: LogSlice) -> tuple[int, JsonPage]:
        page = backend.read_json(where, with_tenant=with_tenant, separator=separator)
        return page.last, page

    return _paged(backend, read, after, page_size, upto)


def record_pages(
    backend: Backend,
    *,
    after: int = 0,
    page_size: int = PAGE,
    upto: int | None = None,
    with_time: bool = False,
) -> Iterator[list[LogRecord]]:
    """Like :func:`event_pages`, each event a plain dict with its data decoded
    (:mod:`infra.store.log_records`): the scan for an analytics consumer in process.
    On PostgreSQL the next page is read while this one is decoded."""

    def read(where: LogSlice) -> tuple[int, RecordRows]:
        rows = backend.read_record_rows(where, with_time=with_time)
        return rows.last, rows

    pages = _paged(backend, read, after, page_size, upto)
    try:
        for rows in pages:
            yield rows.decode()  # here, in the consumer's thread: see RecordRows
    finally:
        pages.close()  # stops the read-ahead thread when the scan is left early


def _paged(
    backend: Backend,
    read: Callable[[LogSlice], tuple[int, P]],
    after: int,
    page_size: int,
    upto: int | None,
    *,
    ahead: bool = True,
) -> Generator[P, None, None]:
    """The pages ``read`` returns for ``after < position <= upto`` (the head now), in
    order, until one is empty (its last position 0); on PostgreSQL read one ahead on a
    thread unless ``ahead`` is off."""
    if page_size < 1:
        raise ValueError("the page size must be at least 1")
    end = backend.max_position() if upto is None else upto

    def pages(after: int) -> Generator[P, None, None]:
        while after < end:
            last, page = read(LogSlice(after_position=after, upto_position=end, limit=page_size))
            if not last:
                return
            yield page
            after = last

    # PostgreSQL reads in its own process, which then works while this one writes or
    # decodes; SQLite reads in this process, where reading ahead only adds a thread hop.
    ahead = ahead and backend.dialect == "postgres"
    return read_ahead(pages(after)) if ahead else pages(after)


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
