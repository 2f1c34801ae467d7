"""Runs folded inside a projection: each run event applied to the run as it stood before it.

Cross-stream run read models need the whole run (readiness, node counts, the
status document), not just the event in hand, so they fold the run's stream.
:class:`RunFolder` keeps the most recently used runs folded, keyed by (tenant,
run id): an event whose seq follows the cached version is applied to it; any
other (a cold cache, a replay, a rebuild, a batch retried after a rollback)
refolds the stream up to the event from the events table, through the
projection's own session. Each thread has its own cache, so a rebuild running
beside the live runner never shares a run object with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from domain.base import LedgerAggregate, event_classes, rebuild_event
from domain.run import Run
from projections.base import ProjectedEvent, Session

RUN_STREAM = "run"
RUN_TOPIC = get_topic(Run)
RUN_EVENTS: dict[str, type[LedgerAggregate.Event]] = event_classes(Run)
STREAM_SQL = (
    "SELECT seq, type, class_version, data, recorded_at FROM events"
    " WHERE tenant = %s AND stream_id = %s AND seq <= %s ORDER BY seq"
)
DEFAULT_CAPACITY = 256


class UnknownRunEvent(Exception):
    """A run stream holds an event type the Run aggregate does not know."""


def run_event(
    kind: str,
    data: dict[str, Any],
    *,
    run_id: str,
    seq: int,
    recorded_at: datetime,
    class_version: int = 1,
) -> LedgerAggregate.Event:
    """The Run's domain event for a stored one (upcast to the current shape)."""
    event_class = RUN_EVENTS.get(kind)
    if event_class is None:
        raise UnknownRunEvent(f"run {run_id} seq {seq}: unknown run event type {kind!r}")
    return rebuild_event(
        event_class,
        data,
        stream_id=run_id,
        seq=seq,
        recorded_at=recorded_at,
        class_version=class_version,
        topic=RUN_TOPIC,
    )


def from_projected(event: ProjectedEvent) -> LedgerAggregate.Event:
    return run_event(
        event.type,
        event.data,
        run_id=event.stream_id,
        seq=event.seq,
        recorded_at=event.recorded_at,
        class_version=event.class_version,
    )


def _json(value: Any) -> dict[str, Any]:
    raw = bytes(value) if isinstance(value, memoryview) else value
    loaded = orjson.loads(raw)
    assert isinstance(loaded, dict)
    return loaded


def _moment(value: Any) -> datetime:
    """A stored ``recorded_at``: a datetime (PostgreSQL) or RFC 3339 text (SQLite)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _applied(run: Run | None, domain_event: LedgerAggregate.Event) -> Run:
    folded = domain_event.mutate(run)
    if not isinstance(folded, Run):
        raise UnknownRunEvent(f"stream {domain_event.originator_id} does not fold to a run")
    return folded


def refold(session: Session, tenant: str, run_id: str, upto_seq: int) -> Run | None:
    """The run as after ``upto_seq``, folded from the events table (None before seq 1)."""
    run: Run | None = None
    for seq, kind, class_version, data, recorded_at in session.fetchall(
        STREAM_SQL, (tenant, run_id, upto_seq)
    ):
        domain_event = run_event(
            kind,
            _json(data),
            run_id=run_id,
            seq=int(seq),
            recorded_at=_moment(recorded_at),
            class_version=int(class_version),
        )
        run = _applied(run, domain_event)
    return run


@dataclass
class FoldedRun:
    """A cached run, and what a projection remembers about it (lost on a refold)."""

    run: Run
    memo: dict[str, Any] = field(default_factory=dict)


class RunFolder:
    """Folds run events for one projection, with a bounded LRU cache per thread."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._local = threading.local()

    def _cache(self) -> OrderedDict[tuple[str, str, str], FoldedRun]:
        cache: OrderedDict[tuple[str, str, str], FoldedRun] | None = getattr(
            self._local, "cache", None
        )
        if cache is None:
            cache = OrderedDict()
            self._local.cache = cache
        return cache

    def fold(self, session: Session, event: ProjectedEvent, namespace: str = "") -> FoldedRun:
        """The run as after ``event``; ``namespace`` keeps caches of shadow tables apart."""
        cache = self._cache()
        key = (namespace, event.tenant, event.stream_id)
        entry = cache.pop(key, None)
        if event.seq == 1:
            entry = None
        elif entry is None or entry.run.version != event.seq - 1:
            before = refold(session, event.tenant, event.stream_id, event.seq - 1)
            if before is None:
                raise UnknownRunEvent(f"run {event.stream_id} has no events before {event.seq}")
            entry = FoldedRun(before)
        run = _applied(entry.run if entry else None, from_projected(event))
        entry = entry or FoldedRun(run)
        entry.run = run
        cache[key] = entry
        while len(cache) > self.capacity:
            cache.popitem(last=False)
        return entry

    def forget(self) -> None:
        """Drop this thread's cache."""
        self._cache().clear()
