"""Small helpers for store tests: open a migrated store, build events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from infra.http.wire import event_wire
from infra.store.backend import Backend
from infra.store.eventstore import EventStore, open_backend
from infra.store.hashing import canonical_json
from infra.store.json_pages import LogSlice
from infra.store.records import NewEvent, RecordedEvent

AWKWARD_DATA: list[dict[str, Any]] = [
    {"text": 'quote " backslash \\ newline \n tab \t', "n": -1.5e-7},
    {"unicode": "naïve ☃ 日本 \U0001f600", "nested": {"list": [1, None, True, {"a": []}]}},
    {"control": "\x01\x1f", "big": 2**62, "empty": {}},
]
AWKWARD_STREAMS = [
    ("default", "thread", "thr_1"),
    ("default", "run", 'run "odd" \\ ☃'),
    ("acme", "thread", "thr_é"),
]
"""(tenant, stream type, stream id): two tenants, two stream types, ids to escape."""
AWKWARD_SLICES = [
    LogSlice(),
    LogSlice(after_position=5, limit=4),
    LogSlice(after_position=2, upto_position=9),
    LogSlice(types=("Kind0", "Kind2")),
    LogSlice(stream_type="run"),
    LogSlice(tenant="acme", limit=3),
]
"""Slices of the awkward log that each hold events."""


async def append_awkward_log(store: EventStore) -> None:
    """18 events in :data:`AWKWARD_STREAMS`, interleaved over three rounds, with data and
    metadata that need escaping, three types and distinct times."""
    moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    for round_ in range(3):
        for index, (tenant, stream_type, stream_id) in enumerate(AWKWARD_STREAMS):
            events = [
                NewEvent(
                    type=f"Kind{(round_ + index + k) % 3}",
                    data=canonical_json(AWKWARD_DATA[(round_ + k) % 3] | {"k": k}),
                    metadata=canonical_json({"actor": "tëster", "round": round_}),
                    recorded_at=moment + timedelta(microseconds=round_ * 7 + index),
                )
                for k in range(2)
            ]
            await store.append(tenant, stream_type, stream_id, round_ * 2, events)


def read_slice(backend: Backend, where: LogSlice) -> list[RecordedEvent]:
    """The events of ``where`` as ``read_all`` gives them (the oracle of page tests)."""
    return backend.read_all(
        after_position=where.after_position,
        upto_position=where.upto_position,
        limit=where.limit,
        types=where.types,
        stream_type=where.stream_type,
        tenant=where.tenant,
    )


def migrated(url: str) -> Backend:
    backend = open_backend(url)
    backend.migrate()
    return backend


async def opened_store(url: str) -> EventStore:
    store = EventStore(migrated(url))
    await store.open()
    return store


def event(kind: str = "Happened", **data: object) -> NewEvent:
    return NewEvent(type=kind, data=canonical_json(data))


def export_record(event: RecordedEvent) -> dict[str, Any]:
    """What an export line must hold, built in Python: the wire format plus the event's
    tenant (the oracle for the lines the database renders)."""
    return {**event_wire(event), "tenant": event.tenant}


def export_line(event: RecordedEvent) -> bytes:
    return orjson.dumps(export_record(event)) + b"\n"
