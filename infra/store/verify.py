"""Audit of the whole store: every hash chain, and contiguous positions.

Reads the log in position order, page by page, keeping only each stream's head,
so memory grows with the number of streams, not events. The first problem of
each kind is named by stream and seq (or position).
"""

from __future__ import annotations

from infra.store.backend import Backend
from infra.store.hashing import chain_hash
from infra.store.records import GENESIS_HASH, RecordedEvent, StreamHead, VerifyReport

PAGE = 5000


def verify_store(
    backend: Backend, *, tenant: str | None = None, stream_id: str | None = None
) -> VerifyReport:
    """Check chains (all, or one stream) and, for a full check, position contiguity."""
    report = VerifyReport()
    heads: dict[tuple[str, str], StreamHead] = {}
    expected_position = 1
    after = 0
    while True:
        page = backend.read_all(after_position=after, limit=PAGE)
        if not page:
            break
        for event in page:
            if stream_id is None and event.position != expected_position:
                report.problems.append(
                    f"positions are not contiguous: expected {expected_position},"
                    f" found {event.position} (stream {event.stream_id} seq {event.seq})"
                )
            expected_position = event.position + 1
            if stream_id is not None and (event.tenant, event.stream_id) != (tenant, stream_id):
                continue
            report.events += 1
            _check_event(event, heads, report)
        after = page[-1].position
    report.streams = len(heads)
    report.max_position = after
    return report


def verify_stream_events(events: list[RecordedEvent]) -> VerifyReport:
    """Check one stream's events as read in seq order."""
    report = VerifyReport()
    heads: dict[tuple[str, str], StreamHead] = {}
    for event in events:
        report.events += 1
        _check_event(event, heads, report)
    report.streams = len(heads)
    return report


def _check_event(
    event: RecordedEvent, heads: dict[tuple[str, str], StreamHead], report: VerifyReport
) -> None:
    key = (event.tenant, event.stream_id)
    head = heads.get(key)
    where = f"stream {event.stream_id} seq {event.seq}"
    if head is None:
        if event.seq not in (0, 1):
            report.problems.append(f"{where}: the stream does not start at seq 1")
        expected_prev = GENESIS_HASH
    else:
        if event.seq != head.version + 1:
            report.problems.append(f"{where}: follows seq {head.version} (an event is missing)")
        expected_prev = head.hash
    if event.prev_hash != expected_prev:
        report.problems.append(f"{where}: prev_hash does not match the previous event's hash")
    recomputed = chain_hash(
        event.prev_hash,
        stream_id=event.stream_id,
        seq=event.seq,
        type=event.type,
        data=event.data,
        metadata=event.metadata,
        recorded_at=event.recorded_at,
    )
    if recomputed != event.hash:
        report.problems.append(f"{where}: hash does not match the event's content")
    heads[key] = StreamHead(event.stream_type, event.seq, event.hash)
