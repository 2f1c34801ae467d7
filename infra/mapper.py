"""Our mapper: domain events (pydantic) to stored events (canonical JSON via orjson) and back.

The stored ``type`` is the event class name; ``class_version`` is the class's
version when it was written. On load, each upcaster from the stored version up
to the current one reshapes the data before the event is built, so the domain
only ever sees current shapes. Stream id, seq and timestamp live in the envelope
(``stream_id``, ``seq``, ``recorded_at``), not in ``data``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from domain.base import DomainEvent, LedgerAggregate, event_classes, rebuild_event
from infra.store.hashing import canonical_json
from infra.store.records import NewEvent, RecordedEvent

ENVELOPE_FIELDS: set[str] = {"originator_id", "originator_version", "timestamp", "originator_topic"}


class UnknownEventType(Exception):
    """A stored event names a type this build of Ledger does not know."""


class EventMapper:
    """Maps the events of the given aggregate classes."""

    def __init__(self, aggregates: Iterable[type[LedgerAggregate]]) -> None:
        self._classes: dict[str, type[LedgerAggregate.Event]] = {}
        self._topics: dict[str, str] = {}
        for aggregate in aggregates:
            for event_class in event_classes(aggregate).values():
                self.register(event_class, aggregate)

    def register(
        self, event_class: type[LedgerAggregate.Event], aggregate: type[LedgerAggregate]
    ) -> None:
        name = event_class.__name__
        if self._classes.get(name, event_class) is not event_class:
            raise ValueError(f"two event classes are named {name}")
        self._classes[name] = event_class
        self._topics[name] = get_topic(aggregate)

    def to_new_event(self, domain_event: DomainEvent, metadata: dict[str, Any]) -> NewEvent:
        data = domain_event.model_dump(mode="json", exclude=ENVELOPE_FIELDS)
        return NewEvent(
            type=type(domain_event).__name__,
            data=canonical_json(data),
            metadata=canonical_json(metadata),
            recorded_at=domain_event.timestamp,
            class_version=type(domain_event).class_version,
        )

    def to_domain_event(self, recorded: RecordedEvent) -> LedgerAggregate.Event:
        event_class = self._classes.get(recorded.type)
        if event_class is None:
            raise UnknownEventType(f"unknown event type {recorded.type!r}")
        return rebuild_event(
            event_class,
            orjson.loads(recorded.data),
            stream_id=recorded.stream_id,
            seq=recorded.seq,
            recorded_at=recorded.recorded_at,
            class_version=recorded.class_version,
            topic=self._topics[recorded.type],
        )
