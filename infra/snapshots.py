"""Aggregate state as JSON, to store snapshots and fold only the events after them.

The state is the aggregate's attributes with a few tagged values (datetimes,
sets, the domain's dataclasses). Nothing is unpickled: a snapshot read from the
database can only ever produce plain data. ``SNAPSHOT_VERSION`` names the shape
of aggregate state; a snapshot of another version is ignored (the stream is
folded from the start instead), so changing an aggregate never needs a migration.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import orjson

from domain.base import LedgerAggregate

SNAPSHOT_VERSION = 2  # 2: runs (and NodeState.dispatches)
SKIP = frozenset({"_pending_events"})


class StateCodec:
    """Encodes and decodes the state of the given aggregate classes."""

    def __init__(
        self, aggregates: tuple[type[LedgerAggregate], ...], dataclass_types: tuple[type, ...]
    ) -> None:
        self._aggregates = {cls.__name__: cls for cls in aggregates}
        self._dataclasses = {cls.__name__: cls for cls in dataclass_types}

    def encode(self, aggregate: LedgerAggregate) -> bytes:
        state = {k: _encode(v) for k, v in vars(aggregate).items() if k not in SKIP}
        return orjson.dumps({"class": type(aggregate).__name__, "state": state})

    def decode(self, raw: bytes) -> LedgerAggregate:
        document = orjson.loads(raw)
        cls = self._aggregates[document["class"]]
        aggregate = cls.__new__(cls)
        for key, value in document["state"].items():
            setattr(aggregate, key, self._decode(value))
        aggregate._pending_events = []
        return aggregate

    def _decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$set" in value:
            return {self._decode(v) for v in value["$set"]}
        if "$dc" in value:
            cls = self._dataclasses[value["$dc"]]
            fields = {k: self._decode(v) for k, v in value["fields"].items()}
            return cls(**fields)
        if "$map" in value:
            return {k: self._decode(v) for k, v in value["$map"].items()}
        raise ValueError(f"unknown tagged value in snapshot: {sorted(value)}")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, set | frozenset):
        return {"$set": sorted((_encode(v) for v in value), key=repr)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$dc": type(value).__name__, "fields": fields}
    if isinstance(value, dict):
        return {"$map": {str(k): _encode(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value
