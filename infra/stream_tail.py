"""The end of a stream as domain events (:class:`commands.ports.StreamTail`)."""

from __future__ import annotations

from domain.base import LedgerAggregate
from infra.mapper import EventMapper
from infra.store.eventstore import EventStore


class StoredStreamTail:
    """Reads a stream's events after a seq from the store and maps them to domain events."""

    def __init__(self, store: EventStore, mapper: EventMapper) -> None:
        self._store = store
        self._mapper = mapper

    async def events_after(
        self, tenant: str, stream_id: str, seq: int
    ) -> list[LedgerAggregate.Event]:
        records = await self._store.read_stream(tenant, stream_id, after_seq=seq)
        return [self._mapper.to_domain_event(record) for record in records]
