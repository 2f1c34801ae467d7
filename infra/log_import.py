"""Importing an export (JSON lines) into a store, through the store's single writer.

Each event keeps its tenant, stream, seq, type, class version, data, metadata
and ``recorded_at``; positions are assigned by the target store (the source's
own when a whole export goes into an empty store). Position and tenant are not
hashed, so every event must hash to exactly what the export says, and continue
its stream: the export's previous event of that stream, or the target's head
when the stream is already there (an export made with ``--after``).

The file is checked in full before anything is written, so a tampered or
truncated export is refused with nothing imported; the check is repeated while
writing, so a file changed in between is refused at the first bad line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.store.backend import Backend
from infra.store.errors import StoreError
from infra.store.hashing import canonical_json, chain_hash, parse_timestamp
from infra.store.records import (
    DEFAULT_TENANT,
    GENESIS_HASH,
    Commit,
    NewEvent,
    StreamAppend,
    StreamHead,
)
from infra.store.writer import GroupCommitWriter

BATCH = 1000
Text = Annotated[str, Field(min_length=1, max_length=1024)]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ImportRefused(Exception):
    """The export cannot be imported as it is; ``line`` is the first bad line (1-based)."""

    def __init__(self, line: int, reason: str, *, imported: int = 0) -> None:
        self.line = line
        self.reason = reason
        self.imported = imported
        done = "nothing was imported" if not imported else f"{imported} events were imported"
        super().__init__(f"import refused at line {line}: {reason} ({done})")


class ExportLine(BaseModel):
    """One line of an export, as far as importing needs it."""

    model_config = ConfigDict(extra="ignore", strict=True)

    tenant: Text = DEFAULT_TENANT
    stream_type: Text
    stream_id: Text
    seq: Annotated[int, Field(ge=0)]
    position: Annotated[int, Field(ge=1)]
    type: Text
    class_version: Annotated[int, Field(ge=1)] = 1
    recorded_at: str
    data: Any
    metadata: dict[str, Any]
    prev_hash: Hash
    hash: Hash


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    line: int
    tenant: str
    stream_type: str
    stream_id: str
    seq: int
    source_position: int
    new: NewEvent
    recorded_at: datetime
    prev_hash: str
    hash: str

    @property
    def key(self) -> tuple[str, str]:
        return self.tenant, self.stream_id


def parse_line(raw: bytes, line: int) -> ImportedEvent:
    """An export line as an event to append; malformed lines are refused."""
    try:
        parsed = ExportLine.model_validate(orjson.loads(raw))
        recorded_at = parse_timestamp(parsed.recorded_at)
    except orjson.JSONDecodeError as error:
        raise ImportRefused(line, f"not a JSON object: {error}") from error
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "line"
        raise ImportRefused(line, f"{where}: {first['msg']}") from error
    except ValueError as error:
        raise ImportRefused(
            line, f"recorded_at is not an RFC 3339 UTC timestamp: {error}"
        ) from error
    new = NewEvent(
        type=parsed.type,
        data=canonical_json(parsed.data),
        metadata=canonical_json(parsed.metadata),
        recorded_at=recorded_at,
        class_version=parsed.class_version,
    )
    return ImportedEvent(
        line=line,
        tenant=parsed.tenant,
        stream_type=parsed.stream_type,
        stream_id=parsed.stream_id,
        seq=parsed.seq,
        source_position=parsed.position,
        new=new,
        recorded_at=recorded_at,
        prev_hash=parsed.prev_hash,
        hash=parsed.hash,
    )


def read_export(path: Path) -> Iterator[ImportedEvent]:
    """The events of an export file, one line at a time (blank lines are skipped)."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if raw.strip():
                yield parse_line(raw, number)


HeadOf = Callable[[str, str], StreamHead | None]


@dataclass
class ChainCheck:
    """Checks that each event hashes to its exported hash and continues its stream."""

    head_of: HeadOf
    heads: dict[tuple[str, str], StreamHead] = field(default_factory=dict)

    def check(self, event: ImportedEvent) -> None:
        head = self._head(event)
        where = f"stream {event.stream_id} seq {event.seq}"
        if head is not None and head.stream_type != event.stream_type:
            self._refuse(event, f"{where} is a {event.stream_type}, but {head.stream_type} before")
        expected_seq = head.version + 1 if head is not None else event.seq
        if head is None and event.seq not in (0, 1):
            self._refuse(event, f"{where}: the stream is not in the target and starts at seq 1")
        if event.seq != expected_seq:
            self._refuse(event, f"{where}: expected seq {expected_seq} (an event is missing)")
        expected_prev = head.hash if head is not None else GENESIS_HASH
        if event.prev_hash != expected_prev:
            self._refuse(event, f"{where}: prev_hash is not the hash of the event before it")
        recomputed = chain_hash(
            event.prev_hash,
            stream_id=event.stream_id,
            seq=event.seq,
            type=event.new.type,
            data=event.new.data,
            metadata=event.new.metadata,
            recorded_at=event.recorded_at,
        )
        if recomputed != event.hash:
            self._refuse(event, f"{where}: hash does not match the event's content")
        self.heads[event.key] = StreamHead(event.stream_type, event.seq, event.hash)

    def _head(self, event: ImportedEvent) -> StreamHead | None:
        if event.key not in self.heads:
            head = self.head_of(*event.key)
            if head is None:
                return None
            self.heads[event.key] = head
        return self.heads[event.key]

    def _refuse(self, event: ImportedEvent, reason: str) -> None:
        raise ImportRefused(event.line, reason)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    events: int
    streams: int
    first_position: int | None
    last_position: int | None

    def describe(self) -> str:
        if not self.events:
            return "imported 0 events: the export is empty"
        return (
            f"imported {self.events} events in {self.streams} streams,"
            f" positions {self.first_position}..{self.last_position}; every hash verified"
        )


def commit_of(events: list[ImportedEvent]) -> Commit:
    """One commit: a part per run of consecutive events of one stream, at its seq."""
    parts: list[StreamAppend] = []
    run: list[ImportedEvent] = []
    for event in events:
        if run and run[-1].key != event.key:
            parts.append(_part(run))
            run = []
        run.append(event)
    parts.append(_part(run))
    return Commit(parts=tuple(parts))


def _part(run: list[ImportedEvent]) -> StreamAppend:
    first = run[0]
    events = tuple(event.new for event in run)
    if first.seq == 0:  # streams of the library's recorders start at version 0
        return StreamAppend(first.tenant, first.stream_type, first.stream_id, None, events, 0)
    return StreamAppend(first.tenant, first.stream_type, first.stream_id, first.seq - 1, events)


def check_export(backend: Backend, path: Path) -> int:
    """Check a whole export against the target without writing; returns its event count."""
    check = ChainCheck(backend.stream_head)
    count = 0
    for event in read_export(path):
        check.check(event)
        count += 1
    return count


def import_export(backend: Backend, path: Path, *, batch: int = BATCH) -> ImportSummary:
    """Check the export, then append it in commits of ``batch`` events."""
    if batch < 1:
        raise ValueError("the batch size must be at least 1")
    check_export(backend, path)
    check = ChainCheck(backend.stream_head)
    writer = GroupCommitWriter(backend)
    imported = 0
    first: int | None = None
    last: int | None = None
    pending: list[ImportedEvent] = []

    def flush() -> None:
        nonlocal imported, first, last
        try:
            result = writer.append_sync(commit_of(pending))
        except StoreError as error:
            raise ImportRefused(pending[0].line, str(error), imported=imported) from error
        imported += len(pending)
        first = result.parts[0].first_position if first is None else first
        last = result.last.position
        pending.clear()

    try:
        for event in read_export(path):
            check.check(event)
            pending.append(event)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    except ImportRefused as refused:
        if refused.imported == imported:
            raise
        raise ImportRefused(refused.line, refused.reason, imported=imported) from None
    finally:
        writer.stop()
    return ImportSummary(imported, len(check.heads), first, last)
