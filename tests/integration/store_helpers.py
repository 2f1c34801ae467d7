"""Small helpers for store tests: open a migrated store, build events."""

from __future__ import annotations

from infra.store.backend import Backend
from infra.store.eventstore import EventStore, open_backend
from infra.store.hashing import canonical_json
from infra.store.records import NewEvent


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
