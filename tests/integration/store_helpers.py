"""Small helpers for store tests: open a migrated store, build events."""

from __future__ import annotations

from typing import Any

import orjson

from infra.http.wire import event_wire
from infra.store.backend import Backend
from infra.store.eventstore import EventStore, open_backend
from infra.store.hashing import canonical_json
from infra.store.records import NewEvent, RecordedEvent


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
