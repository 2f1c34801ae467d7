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
    if stream_id is None:
        _check_witnesses(backend, after, report)
    return report


def _check_witnesses(backend: Backend, max_position: int, report: VerifyReport) -> None:
    """Positions recorded outside the events table must not lie beyond the log's end.

    Idempotency records name the stream and seq a client was told about; projection
    positions say how far the read models had read. Either one beyond the last event
    means events at the end of the log were deleted, which contiguity alone cannot see.
    """
    acknowledged = backend.last_acknowledged()
    if acknowledged is not None and acknowledged.position > max_position:
        report.problems.append(
            f"stream {acknowledged.stream_id} seq {acknowledged.seq}: acknowledged at position"
            f" {acknowledged.position}, but the log ends at {max_position} (events were deleted)"
        )
    for name, position in backend.projection_positions():
        if position > max_position and not name.endswith("__rebuild"):
            report.problems.append(
                f"projection {name} has read up to position {position}, but the log ends at"
                f" {max_position} (events were deleted)"
            )


def verify_stream_events(
    events: list[RecordedEvent], acknowledged_seq: int | None = None
) -> VerifyReport:
    """Check one stream's events as read in seq order.

    ``acknowledged_seq`` is the highest seq of the stream a client was given with an
    idempotency key; a stream ending before it lost its last events.
    """
    report = VerifyReport()
    heads: dict[tuple[str, str], StreamHead] = {}
    for event in events:
        report.events += 1
        _check_event(event, heads, report)
    report.streams = len(heads)
    last = events[-1].seq if events else 0
    if acknowledged_seq is not None and acknowledged_seq > last and events:
        report.problems.append(
            f"stream {events[-1].stream_id} seq {acknowledged_seq}: acknowledged, but the"
            f" stream ends at seq {last} (events were deleted)"
        )
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
