"""API tokens on PostgreSQL and SQLite: the token store, migration 2, the service role's rights,
and the HTTP app with authentication on (in process)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from infra.auth import Principal, Scope, hash_token, new_token
from infra.bootstrap import Ledger
from infra.config import Settings
from infra.http.app import create_app
from infra.projection_store import projection_transaction
from infra.store.eventstore import EventStore
from infra.store.postgres import PostgresBackend
from infra.store.schema import MIGRATIONS, SQLITE_MIGRATIONS_TABLE
from infra.store.sqlite import SqliteBackend
from infra.token_store import TokenNotFound, TokenStore, find_active
from tests import pg
from tests.integration.store_helpers import migrated

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    events = EventStore(migrated(database_url))
    await events.open()
    try:
        yield events
    finally:
        await events.close()


async def test_a_created_token_resolves_to_its_tenant_and_scope(store: EventStore) -> None:
    tokens = TokenStore(store.backend)
    token = new_token()

    record = tokens.create(token, "acme", "write", now=T0)

    assert record.token_hash == hash_token(token)
    assert await find_active(store.fetch, hash_token(token)) == Principal("acme", "write")
    assert await find_active(store.fetch, hash_token(new_token())) is None
    assert tokens.active_count() == 1


async def test_only_the_hash_is_stored_and_listed(store: EventStore) -> None:
    tokens = TokenStore(store.backend)
    token = new_token()
    tokens.create(token, "acme", "read", now=T0)

    rows = await store.fetch("SELECT token_hash, tenant, scope FROM api_tokens", [])
    listed = tokens.all()

    assert rows == [(hash_token(token), "acme", "read")]
    assert [r.as_dict() for r in listed] == [
        {
            "id": hash_token(token)[:12],
            "token_hash": hash_token(token),
            "tenant": "acme",
            "scope": "read",
            "created_at": "2025-01-02T03:04:05.678901Z",
            "revoked_at": None,
        }
    ]
    assert token not in repr(listed)


@pytest.mark.parametrize("name_by", ["token", "hash", "prefix", "upper-case prefix"])
async def test_a_revoked_token_no_longer_resolves(store: EventStore, name_by: str) -> None:
    tokens = TokenStore(store.backend)
    token, other = new_token(), new_token()
    tokens.create(token, "acme", "admin", now=T0)
    tokens.create(other, "acme", "admin", now=T0)
    which = {
        "token": token,
        "hash": hash_token(token),
        "prefix": hash_token(token)[:10],
        "upper-case prefix": hash_token(token)[:10].upper(),
    }[name_by]

    revoked = tokens.revoke(which, now=T0)

    assert revoked.token_hash == hash_token(token)
    assert await find_active(store.fetch, hash_token(token)) is None
    assert await find_active(store.fetch, hash_token(other)) == Principal("acme", "admin")
    assert tokens.active_count() == 1
    assert [r.revoked_at for r in tokens.all() if r.token_hash == hash_token(token)] == [T0]


async def test_revoking_twice_keeps_the_first_revocation(store: EventStore) -> None:
    tokens = TokenStore(store.backend)
    token = new_token()
    tokens.create(token, "acme", "read", now=T0)
    tokens.revoke(token, now=T0)

    again = tokens.revoke(token, now=datetime(2030, 1, 1, tzinfo=UTC))

    assert again.revoked_at == T0


@pytest.mark.parametrize("which", ["", "abc", "zzzzzzzzzz", "0" * 64, "ldg_not-a-token"])
async def test_revoking_names_exactly_one_token(store: EventStore, which: str) -> None:
    tokens = TokenStore(store.backend)
    tokens.create(new_token(), "acme", "read", now=T0)

    with pytest.raises(TokenNotFound):
        tokens.revoke(which)

    assert tokens.active_count() == 1


async def test_an_ambiguous_prefix_revokes_nothing(store: EventStore) -> None:
    tokens = TokenStore(store.backend)
    with projection_transaction(store.backend) as session:
        for last in "01":
            session.execute(
                "INSERT INTO api_tokens (token_hash, tenant, scope, created_at)"
                " VALUES (%s, %s, %s, %s)",
                ("deadbeef" + last * 56, "acme", "read", "2025-01-02T03:04:05.000000Z"),
            )

    with pytest.raises(TokenNotFound, match="2 tokens with a hash starting 'deadbeef'"):
        tokens.revoke("deadbeef")

    assert tokens.active_count() == 2
    tokens.revoke("deadbeef1")
    assert tokens.active_count() == 1


def test_postgres_service_role_may_create_and_revoke_tokens_but_never_delete_them(
    pg_url: str,
) -> None:
    backend = PostgresBackend(pg_url)
    backend.migrate()
    assert backend.grants_to_app_role
    tokens = TokenStore(backend)  # acts as the service role
    token = new_token()
    tokens.create(token, "acme", "write")
    tokens.revoke(token)
    conn = backend.connect()
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM api_tokens")
    finally:
        conn.close()
        backend.close()


def test_a_postgres_database_at_version_1_gains_api_tokens(tmp_path: Path) -> None:
    name = pg.create_empty_database()
    url = pg.url_for(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE ledger_migrations (version integer PRIMARY KEY,"
                " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for statement in MIGRATIONS[0].postgres:
                conn.execute(statement.encode())
            conn.execute("INSERT INTO ledger_migrations VALUES (1, 'v1')")
        backend = PostgresBackend(url)
        backend.migrate()
        try:
            assert backend.schema_version() == MIGRATIONS[-1].version
            TokenStore(backend).create(new_token(), "acme", "read")
            assert TokenStore(backend).active_count() == 1
        finally:
            backend.close()
    finally:
        pg.drop_database(name)


def test_a_sqlite_database_at_version_1_gains_api_tokens(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.execute(SQLITE_MIGRATIONS_TABLE)
        for statement in MIGRATIONS[0].sqlite:
            conn.execute(statement)
        conn.execute("INSERT INTO ledger_migrations (version, description) VALUES (1, 'v1')")
    conn.close()
    backend = SqliteBackend(path)
    backend.migrate()
    try:
        assert backend.schema_version() == MIGRATIONS[-1].version
        TokenStore(backend).create(new_token(), "acme", "read")
        assert TokenStore(backend).active_count() == 1
    finally:
        backend.close()


# The HTTP app with authentication on, in process ------------------------------------------


@pytest.fixture
async def secured(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Ledger, httpx.AsyncClient]]:
    settings = Settings(database_url=database_url, workspace=tmp_path, auth=True, auth_cache_ms=0)
    ledger = Ledger(settings)
    await ledger.start(policies=False)
    app = create_app(settings, ledger)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
            yield ledger, client
    finally:
        await ledger.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(secured: tuple[Ledger, httpx.AsyncClient]) -> Iterator[dict[str, str]]:
    ledger, _ = secured
    store = TokenStore(ledger.backend)
    made = {}
    grants: tuple[tuple[str, str, Scope], ...] = (
        ("a-write", "tenant-a", "write"),
        ("b-write", "tenant-b", "write"),
        ("a-read", "tenant-a", "read"),
    )
    for name, tenant, scope in grants:
        made[name] = new_token()
        store.create(made[name], tenant, scope)
    yield made


async def test_no_token_or_a_wrong_one_answers_401_with_a_bearer_challenge(
    secured: tuple[Ledger, httpx.AsyncClient], tokens: dict[str, str]
) -> None:
    _, client = secured
    for headers in ({}, _bearer("nonsense"), _bearer(new_token()), {"Authorization": "Basic x"}):
        response = await client.get("/v1/threads", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthenticated"
    for public in ("/healthz", "/readyz", "/openapi.json"):
        assert (await client.get(public)).status_code == 200


async def test_a_read_token_reads_but_may_not_command(
    secured: tuple[Ledger, httpx.AsyncClient], tokens: dict[str, str]
) -> None:
    _, client = secured
    refused = await client.post("/v1/threads", json={}, headers=_bearer(tokens["a-read"]))
    listed = await client.get("/v1/threads", headers=_bearer(tokens["a-read"]))
    metrics = await client.get("/metrics", headers=_bearer(tokens["a-write"]))

    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"scope": "read", "required_scope": "write"}
    assert listed.status_code == 200
    assert metrics.status_code == 403


async def test_commands_land_in_the_callers_tenant(
    secured: tuple[Ledger, httpx.AsyncClient], tokens: dict[str, str]
) -> None:
    ledger, client = secured
    a, b = _bearer(tokens["a-write"]), _bearer(tokens["b-write"])
    first = await client.post("/v1/threads", json={"thread_id": "thr_same"}, headers=a)
    second = await client.post("/v1/threads", json={"thread_id": "thr_same"}, headers=b)

    assert (first.status_code, second.status_code) == (201, 201)
    rows = await ledger.store.fetch(
        "SELECT tenant, stream_id, seq FROM events ORDER BY position", []
    )
    assert rows == [("tenant-a", "thr_same", 1), ("tenant-b", "thr_same", 1)]
    assert (await client.get("/v1/threads/thr_same", headers=a)).status_code == 200
    assert (await client.get("/v1/threads/thr_same", headers=_bearer(tokens["a-read"]))).json()[
        "seq"
    ] == 1
