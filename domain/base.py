"""Base classes for aggregates and their events.

Aggregates are :class:`eventsourcing.domain.BaseAggregate` with string ids.
Events are frozen pydantic models. Public aggregate methods validate and compute
everything impure (clock readings, durations, ids) and pass it in; the
``@event`` method bodies only assign, because they are replayed for time travel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from pydantic import BaseModel, ConfigDict

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DomainEvent(BaseModel):
    """A fact, past tense. ``class_version`` and ``upcasters`` let old stored shapes load.

    ``upcasters[v]`` turns the data of version ``v`` into version ``v + 1``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: str
    originator_version: int
    timestamp: datetime

    class_version: ClassVar[int] = 1
    upcasters: ClassVar[dict[int, Upcaster]] = {}


class LedgerAggregate(BaseAggregate[str]):
    """An aggregate whose id is the client-facing external id (``thr_…``, ``run_…``)."""

    stream_type: ClassVar[str] = ""

    class Event(DomainEvent, CanMutateAggregate[str]):
        pass

    class Created(Event, CanInitAggregate[str]):
        originator_topic: str


def event_classes(aggregate: type[LedgerAggregate]) -> dict[str, type[LedgerAggregate.Event]]:
    """The aggregate's event classes by name, from its own body and its bases' bodies.

    A base's class wins: the library re-creates a base's event classes on each subclass,
    but instances trigger (and apply) the ones of the class whose method was decorated.
    """
    found: dict[str, type[LedgerAggregate.Event]] = {}
    for klass in reversed(aggregate.__mro__):
        if klass is LedgerAggregate or not issubclass(klass, LedgerAggregate):
            continue
        for name, value in vars(klass).items():
            # Skip the Event and Created bases the library makes for every aggregate.
            if name in ("Event", "Created") or name in found:
                continue
            if isinstance(value, type) and issubclass(value, LedgerAggregate.Event):
                found[name] = value
    return found


def rebuild_event(
    event_class: type[LedgerAggregate.Event],
    data: dict[str, Any],
    *,
    stream_id: str,
    seq: int,
    recorded_at: datetime,
    class_version: int,
    topic: str,
) -> LedgerAggregate.Event:
    """A stored event as its domain event: ``data`` upcast from ``class_version`` to the
    class's current shape, the envelope filled in (``topic``: the aggregate's, for creation)."""
    for version in range(class_version, event_class.class_version):
        data = event_class.upcasters[version](data)
    fields = {
        **data,
        "originator_id": stream_id,
        "originator_version": seq,
        "timestamp": recorded_at,
    }
    if issubclass(event_class, CanInitAggregate):
        fields["originator_topic"] = topic
    return event_class.model_validate(fields)


def fold(events: list[LedgerAggregate.Event]) -> LedgerAggregate | None:
    """The aggregate as after the last of ``events`` (replayed in order), or None."""
    aggregate: LedgerAggregate | None = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate
