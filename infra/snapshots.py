"""Aggregate state as JSON, to store snapshots and fold only the events after them.

The state is the aggregate's attributes. Plain JSON values (strings, numbers, lists,
dicts with string keys none of which starts with ``$``, nested to any depth) are
stored as they are and decoded without being walked; anything else is tagged:
datetimes (``$dt``), sets (``$set``), the domain's dataclasses (``$dc``, fields by
position), lists of one dataclass (``$dcs``, one row of fields per item, decoded in
one pass), and lists or dicts holding any of those (``$list``, ``$map``). The
document names each dataclass's fields, so a snapshot written before a field was
added or moved is refused, never misread.

An :class:`~domain.entry_log.EntryLog` (a run's lifecycle history) is stored after
the document as its own JSON array, one line each, and restored still as those
bytes: time travel writes it out again without it ever being decoded.

Nothing is unpickled: a snapshot read from the database can only ever produce plain
data. ``SNAPSHOT_VERSION`` names the shape of aggregate state; a snapshot of another
version is ignored (the stream is folded from the start instead), so changing an
aggregate never needs a migration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from domain.base import LedgerAggregate
from domain.entry_log import EntryLog

SNAPSHOT_VERSION = 5
"""2: runs (and NodeState.dispatches); 3: plain JSON untagged, fields by position;
4: a run's lifecycle entries are plain dicts; 5: entry logs stored after the document."""
SKIP = frozenset({"_pending_events"})
SCALARS = (str, int, float, bool, type(None))

Encoded = tuple[Any, bool]
"""An encoded value and whether it is plain JSON (stored as it is, decoded as it is)."""


class StateCodec:
    """Encodes and decodes the state of the given aggregate classes."""

    def __init__(
        self, aggregates: tuple[type[LedgerAggregate], ...], dataclass_types: tuple[type, ...]
    ) -> None:
        self._aggregates = {cls.__name__: cls for cls in aggregates}
        self._dataclasses = {cls.__name__: cls for cls in dataclass_types}
        self._fields = {
            cls.__name__: [f.name for f in dataclasses.fields(cls)] for cls in dataclass_types
        }
        self._makers = {cls.__name__: _maker(cls) for cls in dataclass_types}

    # encoding ------------------------------------------------------------------

    def encode(self, aggregate: LedgerAggregate) -> bytes:
        used: set[str] = set()
        logs: list[bytes] = []
        state: dict[str, Any] = {}
        for key, value in vars(aggregate).items():
            if key in SKIP:
                continue
            if isinstance(value, EntryLog):
                state[key] = {"$log": len(logs)}
                logs.append(value.json())
            else:
                state[key] = self._encode(value, used)[0]
        fields = {name: self._fields[name] for name in sorted(used)}
        document = {"class": type(aggregate).__name__, "fields": fields, "state": state}
        # orjson writes no raw newline (not even inside strings), so lines separate the parts
        return b"\n".join([orjson.dumps(document), *logs])

    def _encode(self, value: Any, used: set[str]) -> Encoded:
        if isinstance(value, SCALARS):
            return value, True
        if isinstance(value, datetime):
            return {"$dt": value.isoformat()}, False
        if isinstance(value, dict):
            return self._encode_dict(value, used)
        if isinstance(value, list | tuple):
            return self._encode_list(value, used)
        if isinstance(value, set | frozenset):
            items = sorted((self._encode(v, used)[0] for v in value), key=repr)
            return {"$set": items}, False
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = type(value).__name__
            if name not in self._fields:
                raise ValueError(f"dataclass {name} is not registered with the snapshot codec")
            used.add(name)
            row = [self._encode(getattr(value, f), used)[0] for f in self._fields[name]]
            return {"$dc": name, "v": row}, False
        return value, True

    def _encode_dict(self, value: dict[Any, Any], used: set[str]) -> Encoded:
        kinds = {type(v) for v in value.values()}
        if (
            len(kinds) == 1
            and (kind := kinds.pop()).__name__ in self._fields
            and all(isinstance(k, str) for k in value)
        ):
            rows = self._encode_rows(kind.__name__, list(value.values()), used)
            return {"$dcm": kind.__name__, "keys": list(value), **rows}, False
        encoded = {k: self._encode(v, used) for k, v in value.items()}
        plain = all(
            isinstance(k, str) and not k.startswith("$") and is_plain
            for k, (_, is_plain) in encoded.items()
        )
        if plain:
            return value, True
        return {"$map": {str(k): v for k, (v, _) in encoded.items()}}, False

    def _encode_list(self, value: list[Any] | tuple[Any, ...], used: set[str]) -> Encoded:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and (kind := kinds.pop()).__name__ in self._fields:
            return {"$dcs": kind.__name__, **self._encode_rows(kind.__name__, value, used)}, False
        encoded = [self._encode(v, used) for v in value]
        if all(is_plain for _, is_plain in encoded):
            return list(value), True
        return {"$list": [v for v, _ in encoded]}, False

    def _encode_rows(
        self, name: str, value: list[Any] | tuple[Any, ...], used: set[str]
    ) -> dict[str, Any]:
        """Dataclasses of one class: a row of fields each; which columns hold datetimes (or
        None) only, stored as ISO strings; which other columns need decoding."""
        used.add(name)
        fields = self._fields[name]
        columns = [[getattr(item, field) for item in value] for field in fields]
        times = [
            c
            for c, column in enumerate(columns)
            if all(v is None or isinstance(v, datetime) for v in column)
            and any(v is not None for v in column)
        ]
        for c in times:
            columns[c] = [None if v is None else v.isoformat() for v in columns[c]]
        tagged = []
        for c, column in enumerate(columns):
            if c in times:
                continue
            encoded = [self._encode(v, used) for v in column]
            columns[c] = [v for v, _ in encoded]
            if not all(plain for _, plain in encoded):
                tagged.append(c)
        rows = [list(row) for row in zip(*columns, strict=True)]
        return {"times": times, "tagged": tagged, "rows": rows}

    # decoding ------------------------------------------------------------------

    def decode(self, raw: bytes) -> LedgerAggregate:
        head, *logs = raw.split(b"\n")
        document = orjson.loads(head)
        for name, names in document["fields"].items():
            if self._fields.get(name) != names:
                raise ValueError(f"snapshot fields of {name} differ from this build's")
        cls = self._aggregates[document["class"]]
        aggregate = cls.__new__(cls)
        for key, value in document["state"].items():
            if type(value) is dict and "$log" in value:
                setattr(aggregate, key, EntryLog.from_json(logs[value["$log"]]))
            else:
                setattr(aggregate, key, self._decode(value))
        aggregate._pending_events = []
        return aggregate

    def _decode(self, value: Any) -> Any:
        if type(value) is not dict:  # scalars and plain lists
            return value
        if "$dc" in value:
            make = self._makers[value["$dc"]]
            return make([self._decode(v) for v in value["v"]])
        if "$dcm" in value:
            return dict(zip(value["keys"], self._decode_rows(value), strict=True))
        if "$dcs" in value:
            return self._decode_rows(value)
        if "$map" in value:
            return {k: self._decode(v) for k, v in value["$map"].items()}
        if "$list" in value:
            return [self._decode(v) for v in value["$list"]]
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$set" in value:
            return {self._decode(v) for v in value["$set"]}
        if any(k.startswith("$") for k in value):
            raise ValueError(f"unknown tagged value in snapshot: {sorted(value)}")
        return value

    def _decode_rows(self, value: dict[str, Any]) -> list[Any]:
        make = self._makers[value["$dcm"] if "$dcm" in value else value["$dcs"]]
        rows: list[list[Any]] = value["rows"]
        parse = datetime.fromisoformat
        for column in value["times"]:
            for row in rows:
                if row[column] is not None:
                    row[column] = parse(row[column])
        for column in value["tagged"]:
            for row in rows:
                row[column] = self._decode(row[column])
        return [make(row) for row in rows]


def _maker(cls: type) -> Callable[[list[Any]], Any]:
    """Builds an instance from its fields in ``dataclasses.fields`` order."""
    names = [f.name for f in dataclasses.fields(cls)]
    if all(f.init for f in dataclasses.fields(cls)):
        return lambda values: cls(*values)

    def make(values: list[Any]) -> Any:
        instance: Any = object.__new__(cls)
        for name, value in zip(names, values, strict=True):
            object.__setattr__(instance, name, value)
        return instance

    return make
