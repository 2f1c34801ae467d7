"""A growing list of plain-JSON entries whose stored part may stay JSON until it is read.

A run records a lifecycle entry for every event, so a long run holds thousands of
them, and a snapshot stores them as one JSON array. Time travel folds a run from
a snapshot only to write its view, where those entries go out as the same JSON:
decoding them into Python objects and encoding them again was most of the work.
An :class:`EntryLog` restored from JSON keeps those bytes; appending adds entries
after them without decoding anything; reading an entry decodes the stored part
once. :meth:`EntryLog.json` gives the whole log as a JSON array either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSequence
from typing import Any, TypeVar, overload

import orjson

T = TypeVar("T")


class EntryLog(MutableSequence[T]):
    """A list of plain-JSON values (dicts, strings, numbers, lists)."""

    __slots__ = ("_items", "_stored")

    def __init__(self, items: Iterable[T] = ()) -> None:
        self._items: list[T] = list(items)
        self._stored: bytes | None = None
        """A JSON array of the entries before ``_items``, not decoded yet."""

    @classmethod
    def from_json(cls, stored: bytes) -> EntryLog[T]:
        """The log of a JSON array (as :meth:`json` wrote it), decoded only when read."""
        log: EntryLog[T] = cls()
        if stored.strip() != b"[]":
            log._stored = stored
        return log

    def json(self) -> bytes:
        """The entries as a JSON array, without decoding the stored ones."""
        if self._stored is None:
            return orjson.dumps(self._items)
        if not self._items:
            return self._stored
        return self._stored[:-1] + b"," + orjson.dumps(self._items)[1:]

    def _decoded(self) -> list[T]:
        if self._stored is not None:
            self._items[:0] = orjson.loads(self._stored)
            self._stored = None
        return self._items

    def append(self, value: T) -> None:
        self._items.append(value)

    def insert(self, index: int, value: T) -> None:
        self._decoded().insert(index, value)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._decoded()[index]

    @overload
    def __setitem__(self, index: int, value: T) -> None: ...

    @overload
    def __setitem__(self, index: slice, value: Iterable[T]) -> None: ...

    def __setitem__(self, index: Any, value: Any) -> None:
        self._decoded()[index] = value

    def __delitem__(self, index: int | slice) -> None:
        del self._decoded()[index]

    def __len__(self) -> int:
        return len(self._decoded())

    def __iter__(self) -> Iterator[T]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EntryLog):
            return self._decoded() == other._decoded()
        if isinstance(other, list):
            return self._decoded() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        return f"EntryLog({self._decoded()!r})"
