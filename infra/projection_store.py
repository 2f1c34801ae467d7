"""Projection transactions on each backend: rows and position committed together."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from infra.store.backend import Backend
from infra.store.errors import StoreUnavailable
from infra.store.postgres import PostgresBackend
from infra.store.postgres import advance_positions as pg_advance_positions
from infra.store.sqlite import SqliteBackend
from infra.store.sqlite import advance_positions as sqlite_advance_positions
from projections.base import ProjectedEvent

PAGE_SQL = (
    "SELECT tenant, stream_type, stream_id, seq, position, type, class_version, data,"
    " metadata, recorded_at FROM events WHERE position > %s AND position <= %s"
    " ORDER BY position LIMIT %s"
)
"""A page of the log as projections need it (no hash chain columns)."""

SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"ledger.schema").digest()[:8], "big", signed=True)


class SqliteSession:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql.replace("%s", "?"), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql.replace("%s", "?"), rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql.replace("%s", "?"), params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql.replace("%s", "?"), params).fetchall()]

    def advance(self, positions: Sequence[tuple[str, int]]) -> None:
        sqlite_advance_positions(self._conn, positions)


class PostgresSession:
    """Projection statements on PostgreSQL, never prepared: each is planned for its own
    parameters. A read model's table grows from empty while its runner keeps one
    connection, and a plan cached while it was small (a sequential scan of a few rows)
    would go on scanning it whole at every page; the planning this costs is far less."""

    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql.encode(), params, prepare=False)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(sql.encode(), rows)  # one pipeline: one round trip

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._conn.execute(sql.encode(), params, prepare=False).fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql.encode(), params, prepare=False).fetchall()

    def advance(self, positions: Sequence[tuple[str, int]]) -> None:
        """Move each named projection's position forward (and clear its recorded failure);
        :class:`PositionNotAdvanced` unless every one moved."""
        pg_advance_positions(self._conn, positions)


ProjectionSession = SqliteSession | PostgresSession


@contextmanager
def schema_transaction(backend: Backend) -> Iterator[ProjectionSession]:
    """A transaction as the schema owner, for creating read-model tables.

    On PostgreSQL the service role may not create tables, so DDL runs on a
    connection as the connecting user, and the service role is granted the rows.
    Schema transactions of every process take turns (a transaction-scoped advisory
    lock): two GRANTs on one table at once fail with "tuple concurrently updated".
    """
    if isinstance(backend, PostgresBackend):
        with backend.owner_connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            yield PostgresSession(conn)
    else:
        with projection_transaction(backend) as session:
            yield session


def grant_rows(backend: Backend, session: ProjectionSession, table: str) -> None:
    if isinstance(backend, PostgresBackend) and backend.grants_to_app_role:
        session.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {backend.app_role}")


@contextmanager
def projection_transaction(backend: Backend) -> Iterator[ProjectionSession]:
    """A write transaction for projection rows (not the events table)."""
    if isinstance(backend, SqliteBackend):
        with backend.transaction() as lite:
            yield SqliteSession(lite)
    elif isinstance(backend, PostgresBackend):
        with backend.pool.connection() as conn, conn.transaction():
            yield PostgresSession(conn)
    else:  # pragma: no cover - only two backends exist
        raise TypeError(f"unsupported backend {backend!r}")


def read_page(
    backend: Backend, after_position: int, limit: int, upto_position: int | None = None
) -> list[ProjectedEvent]:
    """Up to ``limit`` events after ``after_position`` (up to ``upto_position``), in order."""
    params = (after_position, 2**62 if upto_position is None else upto_position, limit)
    if isinstance(backend, PostgresBackend):
        try:
            with backend.pool.connection() as conn:
                rows = conn.execute(PAGE_SQL, params, binary=True).fetchall()
        except (psycopg.OperationalError, TimeoutError) as error:
            raise StoreUnavailable(f"PostgreSQL read failed: {error}") from error
        return [_event(row, row[9]) for row in rows]
    if isinstance(backend, SqliteBackend):
        rows = backend.reader().execute(PAGE_SQL.replace("%s", "?"), params).fetchall()
        return [_event(row, datetime.fromisoformat(row[9])) for row in rows]
    raise TypeError(f"unsupported backend {backend!r}")  # pragma: no cover


def _event(row: Sequence[Any], recorded_at: datetime) -> ProjectedEvent:
    return ProjectedEvent(
        tenant=row[0],
        stream_type=row[1],
        stream_id=row[2],
        seq=row[3],
        position=row[4],
        type=row[5],
        class_version=row[6],
        data=bytes(row[7]),
        metadata=bytes(row[8]),
        recorded_at=recorded_at,
    )
