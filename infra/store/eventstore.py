"""The event store as the rest of Ledger sees it: one append port and the reads.

``append`` is the port of the design: ``append(tenant, stream_type, stream_id,
expected_version, events, idempotency_key) -> (seq, position)``. Every append of
the process goes through one :class:`GroupCommitWriter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from infra.store.backend import Backend
from infra.store.batch import StoredIdempotency
from infra.store.json_pages import JsonPage, LogSlice, Separator, StreamSlice
from infra.store.postgres import PostgresBackend
from infra.store.readers import AsyncPostgresReader, AsyncReader, InlineSqliteReader
from infra.store.records import (
    AppendResult,
    Commit,
    CommitResult,
    IdempotencyKey,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    StreamHead,
)
from infra.store.sqlite import SqliteBackend
from infra.store.writer import GroupCommitWriter


class EventStore:
    """Append port and reads over one backend, with this process's single writer."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.writer = GroupCommitWriter(backend)
        self._count: Callable[[float], None] = _ignore
        self._latency: Callable[[float], None] = _ignore
        self.reader: AsyncReader
        if isinstance(backend, PostgresBackend):
            self.reader = AsyncPostgresReader(backend)
        elif isinstance(backend, SqliteBackend):
            self.reader = InlineSqliteReader(backend)
        else:  # pragma: no cover - only two backends exist
            raise TypeError(f"unsupported backend {backend!r}")

    def observe(self, count: Callable[[float], None], latency: Callable[[float], None]) -> None:
        """Report events appended and append latency (seconds) to these callbacks."""
        self._count = count
        self._latency = latency

    async def open(self) -> None:
        self.writer.start()
        await self.reader.open()

    async def close(self) -> None:
        self.writer.stop()
        await self.reader.close()
        self.backend.close()

    async def append(
        self,
        tenant: str,
        stream_type: str,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        idempotency_key: IdempotencyKey | None = None,
        *,
        response: bytes | None = None,
    ) -> CommitResult:
        """Append ``events`` to a stream at ``expected_version`` (0 creates the stream).

        Raises :class:`~infra.store.errors.WrongExpectedVersion` when the stream
        moved, :class:`~infra.store.errors.IdempotencyKeyReused` when the key came
        with another request. A retry under a known key returns the first result
        (``replayed``) and appends nothing.
        """
        commit = Commit(
            parts=(StreamAppend(tenant, stream_type, stream_id, expected_version, tuple(events)),),
            idempotency=idempotency_key,
            response=response,
        )
        return await self.commit(commit)

    async def commit(self, commit: Commit) -> CommitResult:
        """Append every part of ``commit`` in one transaction, or none of them.

        Raises as :meth:`append` does, for whichever part breaks a rule; a retry under
        a known key returns the first result (``replayed``) and appends nothing.
        """
        started = time.perf_counter()
        result = await self.writer.append(commit)
        self._latency(time.perf_counter() - started)
        if not result.replayed:
            self._count(sum(len(part.events) for part in commit.parts))
        return result

    def append_sync(self, commit: Commit) -> CommitResult:
        return self.writer.append_sync(commit)

    async def read_stream(
        self,
        tenant: str,
        stream_id: str,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return await self.reader.read_stream(
            tenant, stream_id, after_seq=after_seq, upto_seq=upto_seq, limit=limit
        )

    async def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None:
        return await self.reader.stream_head(tenant, stream_id)

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] = (),
        stream_type: str | None = None,
        tenant: str | None = None,
    ) -> list[RecordedEvent]:
        return await self.reader.read_all(
            after_position=after_position,
            limit=limit,
            types=types,
            stream_type=stream_type,
            tenant=tenant,
        )

    async def read_json(
        self,
        where: LogSlice | StreamSlice,
        *,
        with_tenant: bool = False,
        separator: Separator = ",",
    ) -> JsonPage:
        """The events of ``where`` in the wire format, rendered by the database
        (see :mod:`infra.store.json_pages`)."""
        return await self.reader.read_json(where, with_tenant=with_tenant, separator=separator)

    async def max_position(self) -> int:
        return await self.reader.max_position()

    async def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None:
        return await self.reader.read_idempotency(tenant, key)

    async def ping(self) -> None:
        await self.reader.ping()

    async def fetch(
        self, sql: str, params: Sequence[object] = (), *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        """Rows of a read-model query (``%s`` placeholders, on either backend); ``binary``:
        PostgreSQL sends the rows in its binary format (large ``bytea`` without hex)."""
        return await self.reader.fetch(sql, params, binary=binary)


def _ignore(value: float) -> None:
    return None


def open_backend(url: str) -> Backend:
    """The backend named by a database URL (``sqlite:///path`` or ``postgresql://…``)."""
    if url.startswith("sqlite:///"):
        return SqliteBackend(url.removeprefix("sqlite:///"))
    if url.startswith("sqlite://"):
        return SqliteBackend(url.removeprefix("sqlite://"))
    if url.startswith(("postgresql://", "postgres://")) or url == "postgresql:":
        return PostgresBackend(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://…")


__all__ = ["AppendResult", "EventStore", "open_backend"]
