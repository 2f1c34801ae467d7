"""The port each database implements for the writer and the readers.

A backend knows SQL and connections; the rules of appending live in
:mod:`infra.store.batch` and are the same for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from infra.store.batch import BatchPlan, StoredIdempotency, StreamKey
from infra.store.json_pages import JsonPage, LogSlice, Separator, StreamSlice
from infra.store.log_records import RecordRows
from infra.store.records import AppendResult, Commit, RecordedEvent, StreamHead


class WriteSession(Protocol):
    """One write transaction, opened with the store's write lock held."""

    def heads(self, keys: set[StreamKey]) -> dict[StreamKey, StreamHead]: ...

    def idempotency(self, keys: set[StreamKey]) -> dict[StreamKey, StoredIdempotency]: ...

    def max_position(self) -> int: ...

    def insert(self, plan: BatchPlan) -> None: ...


class Backend(Protocol):
    """A database holding the store's schema."""

    dialect: str

    def migrate(self) -> None:
        """Bring the schema to the current version (idempotent)."""

    def write_batch(self, commits: list[Commit]) -> BatchPlan:
        """Plan and insert ``commits`` in one transaction under the write lock."""

    def read_stream(
        self,
        tenant: str,
        stream_id: str,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
        desc: bool = False,
    ) -> list[RecordedEvent]: ...

    def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None: ...

    def read_all(
        self,
        *,
        after_position: int = 0,
        upto_position: int | None = None,
        limit: int = 1000,
        types: Sequence[str] = (),
        stream_type: str | None = None,
        tenant: str | None = None,
    ) -> list[RecordedEvent]: ...

    def read_json(
        self,
        where: LogSlice | StreamSlice,
        *,
        with_tenant: bool = False,
        separator: Separator = ",",
    ) -> JsonPage:
        """The events of ``where`` rendered in the wire format by the database."""

    def read_record_rows(self, where: LogSlice, *, with_time: bool = False) -> RecordRows:
        """The events of ``where`` as rows of plain-dict records, decoded by the caller
        (:mod:`infra.store.log_records`)."""

    def max_position(self) -> int: ...

    def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None: ...

    def purge_idempotency(self, older_than_seconds: float) -> int:
        """Forget idempotency keys older than the retention; returns how many."""

    def last_acknowledged(self) -> AppendResult | None:
        """The idempotency record with the highest position (a witness of the log's end)."""

    def projection_positions(self) -> list[tuple[str, int]]: ...

    def advance_position(self, name: str, position: int) -> None:
        """Record that projection ``name`` has read up to ``position`` (forward only)."""

    def projection_position(self, name: str) -> int | None: ...

    def ping(self) -> None:
        """Raise :class:`~infra.store.errors.StoreUnavailable` unless the database answers."""

    def close(self) -> None: ...
