"""Recently used aggregates, kept at the version they had in the store.

A command on a hot stream then reads only the events appended since (by any
instance), instead of re-reading the whole stream. Entries hold committed state
only: a loaded aggregate is always a copy, so a refused or conflicting command
never changes what is cached, and an append that lost a race drops the entry.
"""

from __future__ import annotations

import pickle
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

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)

    @staticmethod
    def copy(aggregate: LedgerAggregate) -> LedgerAggregate:
        """An independent copy. A pickle round trip in memory is an exact deep copy at about a
        quarter of ``copy.deepcopy``'s cost; nothing here is ever unpickled from storage."""
        copied: LedgerAggregate = pickle.loads(pickle.dumps(aggregate, pickle.HIGHEST_PROTOCOL))
        return copied

    def __len__(self) -> int:
        return len(self._entries)
