"""Asyncio reads for the HTTP path.

On PostgreSQL reads go through psycopg's asyncio pool; on SQLite they run inline
on the event loop's thread (a local file read of a few pages is cheaper than a
thread hop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from infra.store.batch import StoredIdempotency
from infra.store.errors import StoreUnavailable
from infra.store.json_pages import (
    JsonPage,
    LogSlice,
    Separator,
    StreamSlice,
    json_page,
    json_page_query,
)
from infra.store.postgres import (
    SELECT_HEAD,
    SELECT_KEYS,
    PostgresBackend,
    idempotency_from_row,
    parse_pg_time,
    stream_query,
)
from infra.store.records import RecordedEvent, StreamHead
from infra.store.rows import event_from_row, feed_sql
from infra.store.sqlite import SqliteBackend


class AsyncReader(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def read_stream(
        self,
        tenant: str,
        stream_id: str,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]: ...

    async def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None: ...

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] = (),
        stream_type: str | None = None,
        tenant: str | None = None,
    ) -> list[RecordedEvent]: ...

    async def read_json(
        self,
        where: LogSlice | StreamSlice,
        *,
        with_tenant: bool = False,
        separator: Separator = ",",
    ) -> JsonPage: ...

    async def max_position(self) -> int: ...

    async def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None: ...

    async def ping(self) -> None: ...

    async def fetch(
        self, sql: str, params: Sequence[object], *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        """Rows of a read-model query written with ``%s`` placeholders (``binary``: in
        PostgreSQL's binary format; the values are the same)."""
        ...


class InlineSqliteReader:
    """Reads from the SQLite file on the calling thread."""

    def __init__(self, backend: SqliteBackend) -> None:
        self._backend = backend

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def read_stream(
        self,
        tenant: str,
        stream_id: str,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return self._backend.read_stream(
            tenant, stream_id, after_seq=after_seq, upto_seq=upto_seq, limit=limit
        )

    async def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None:
        return self._backend.stream_head(tenant, stream_id)

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] = (),
        stream_type: str | None = None,
        tenant: str | None = None,
    ) -> list[RecordedEvent]:
        return self._backend.read_all(
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
        return self._backend.read_json(where, with_tenant=with_tenant, separator=separator)

    async def max_position(self) -> int:
        return self._backend.max_position()

    async def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None:
        return self._backend.read_idempotency(tenant, key)

    async def ping(self) -> None:
        self._backend.ping()

    async def fetch(
        self, sql: str, params: Sequence[object], *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        rows = self._backend.reader().execute(sql.replace("%s", "?"), params).fetchall()
        return [tuple(row) for row in rows]


class AsyncPostgresReader:
    """Reads through an asyncio connection pool acting as the service role."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._pool: AsyncConnectionPool = backend.async_pool()

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def _fetch(
        self, text: str, params: Sequence[object], *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cursor = await conn.execute(text, params, binary=binary)
                return await cursor.fetchall()
        except (psycopg.OperationalError, TimeoutError) as error:
            raise StoreUnavailable(f"PostgreSQL read failed: {error}") from error

    async def read_stream(
        self,
        tenant: str,
        stream_id: str,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        text, extra = stream_query(upto_seq=upto_seq, limit=limit, desc=False)
        rows = await self._fetch(text, [tenant, stream_id, after_seq, *extra], binary=True)
        return [event_from_row(row, parse_pg_time) for row in rows]

    async def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None:
        rows = await self._fetch(SELECT_HEAD, [tenant, stream_id])
        return StreamHead(*rows[0]) if rows else None

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        types: Sequence[str] = (),
        stream_type: str | None = None,
        tenant: str | None = None,
    ) -> list[RecordedEvent]:
        text, params = feed_sql(
            after_position=after_position,
            upto_position=None,
            limit=limit,
            types=types,
            stream_type=stream_type,
            tenant=tenant,
        )
        rows = await self._fetch(text, params, binary=True)
        return [event_from_row(row, parse_pg_time) for row in rows]

    async def read_json(
        self,
        where: LogSlice | StreamSlice,
        *,
        with_tenant: bool = False,
        separator: Separator = ",",
    ) -> JsonPage:
        text, params = json_page_query(
            "postgres", where, with_tenant=with_tenant, separator=separator
        )
        return json_page("postgres", await self._fetch(text, params), separator)

    async def max_position(self) -> int:
        rows = await self._fetch("SELECT max(position) FROM events", [])
        return int(rows[0][0] or 0)

    async def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None:
        rows = await self._fetch(SELECT_KEYS, [[tenant], [key]])
        return idempotency_from_row(rows[0]) if rows else None

    async def ping(self) -> None:
        await self._fetch("SELECT 1", [])

    async def fetch(
        self, sql: str, params: Sequence[object], *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        return await self._fetch(sql, params, binary=binary)
