"""Recently used aggregates, kept at the version they had in the store.

A command on a hot stream then reads only the events appended since (by any
instance), instead of re-reading the whole stream. Entries hold committed state
only. Nothing is copied: a command takes its aggregate out of the cache while it
decides (see :meth:`EventSourcedRepository.checkout`) and the saved aggregate goes
back in, so a refused or conflicting command never changes what is cached, and
the cost of a command does not grow with the size of its aggregate's state.
"""

from __future__ import annotations

from collections import OrderedDict

from domain.base import LedgerAggregate

Key = tuple[str, str]


class AggregateCache:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Key, LedgerAggregate] = OrderedDict()

    def get(self, key: Key) -> LedgerAggregate | None:
        """The cached aggregate itself (advance it only with committed events)."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Key, aggregate: LedgerAggregate) -> None:
        self._entries[key] = aggregate
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def take(self, key: Key) -> LedgerAggregate | None:
        """Remove and return the cached aggregate (the caller owns it now)."""
        return self._entries.pop(key, None)

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
