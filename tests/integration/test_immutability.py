"""Stored events cannot be changed: the database itself refuses UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from infra.store.postgres import PostgresBackend
from infra.store.sqlite import SqliteBackend
from tests.integration.store_helpers import event, opened_store

CHANGES = {
    "update": "UPDATE events SET data = '{}'",
    "delete": "DELETE FROM events WHERE seq = 1",
    "truncate": "TRUNCATE events",
}


async def _one_event(url: str) -> None:
    store = await opened_store(url)
    await store.append("default", "thread", "thr_1", 0, [event(x=1)])
    await store.close()


def _stored_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_postgres_triggers_refuse_changes_even_to_a_superuser(
    pg_url: str, change: str
) -> None:
    await _one_event(pg_url)
    with (
        psycopg.connect(pg_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as info,
    ):
        conn.execute(CHANGES[change])
    assert "immutable" in str(info.value)
    assert _stored_count(pg_url) == 1


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_postgres_service_role_may_not_change_events(pg_url: str, change: str) -> None:
    await _one_event(pg_url)
    backend = PostgresBackend(pg_url)
    backend.migrate()
    conn = backend.connect()
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(CHANGES[change])
        assert "permission denied" in str(info.value)
    finally:
        conn.close()
        backend.close()
    assert _stored_count(pg_url) == 1


def test_postgres_service_role_is_not_a_superuser(pg_url: str) -> None:
    backend = PostgresBackend(pg_url)
    backend.migrate()
    conn = backend.connect()
    try:
        row = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == ("ledger_app", False)
    finally:
        conn.close()
        backend.close()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE events SET data = x'00'", "DELETE FROM events WHERE seq = 1", "DELETE FROM events"],
    ids=["update", "delete", "delete-all (SQLite's truncate)"],
)
async def test_sqlite_triggers_refuse_changes(sqlite_url: str, statement: str) -> None:
    await _one_event(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
    finally:
        conn.close()
    assert SqliteBackend(path).max_position() == 1
