"""Databases the bench creates for itself, and drops afterwards.

PostgreSQL: ``CREATE DATABASE bench_<run>_<name>`` on the server of ``--pg-url``
(default: the local server), dropped ``WITH (FORCE)`` at the end. SQLite: files
in a temporary directory, removed at the end. The stock ``eventsourcing``
recorders get their own databases, so both sides start from the same state.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from psycopg import sql

from benchlib.common import progress

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
STOCK_ID_TYPE = "text"
"""The stock recorders store originator ids as text, as Ledger's stream ids are."""


class Databases:
    """Every database and file of one bench run; ``drop_all`` removes them."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.run = uuid.uuid4().hex[:8]
        self.created: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"ledger-bench-{self.run}-"))

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.server_url, autocommit=True, connect_timeout=5)

    def check_server(self) -> str:
        with self._admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN"
                    " ('synchronous_commit', 'fsync', 'shared_buffers', 'wal_sync_method')"
                ).fetchall()
            )
        if settings.get("fsync") != "on" or settings.get("synchronous_commit") != "on":
            progress(f"WARNING: the server is not durable: {settings}")
        return f"PostgreSQL {row[0] if row else '?'} {settings}"

    def postgres(self, name: str) -> str:
        """A new empty database; returns its URL."""
        database = f"bench_{self.run}_{name}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        self.created.append(database)
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def sqlite(self, name: str) -> Path:
        return self.tmp / f"{name}.db"

    def drop_all(self) -> None:
        for database in reversed(self.created):
            try:
                with self._admin() as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(database)
                        )
                    )
            except psycopg.Error as error:
                progress(f"could not drop {database}: {error}")
        self.created.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def stock_postgres(
    url: str, pool_size: int
) -> tuple[PostgresDatastore, PostgresApplicationRecorder]:
    """The library's PostgreSQL application recorder on ``url``, its table created."""
    parts = urlsplit(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        pool_size=pool_size,
        originator_id_type=STOCK_ID_TYPE,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    return datastore, recorder


def stock_sqlite(path: Path, pool_size: int) -> tuple[SQLiteDatastore, SQLiteApplicationRecorder]:
    """The library's SQLite application recorder on a file, ``synchronous=FULL`` like ours.

    The library leaves ``synchronous`` at SQLite's compiled default; the bench sets
    FULL on each of its connections so both stores are equally durable.
    """
    datastore = SQLiteDatastore(
        str(path), pool_size=pool_size, max_overflow=pool_size, originator_id_type=STOCK_ID_TYPE
    )
    pool = datastore.pool
    create = pool._create_connection

    def create_full() -> Any:
        connection = create()
        connection._sqlite_conn.execute("PRAGMA synchronous=FULL")
        return connection

    pool._create_connection = create_full  # type: ignore[method-assign]
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    return datastore, recorder


def sqlite_synchronous(path: Path) -> int:
    """The default ``synchronous`` of a fresh connection in WAL mode (2 = FULL)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        conn.close()
