"""The store's schema, one logical design on PostgreSQL and SQLite, as numbered migrations.

Tables:

- ``events``: the append-only log. ``position`` is the store-wide, gap-free order
  (assigned by the writer as max + row number under the write lock);
  ``(tenant, stream_id, seq)`` is unique. ``data`` and ``metadata`` are the
  canonical JSON bytes that were hashed, kept byte for byte. UPDATE, DELETE and
  TRUNCATE are refused by triggers (and, on PostgreSQL, by the service role's
  privileges).
- ``idempotency_keys``: a client's retry key, the fingerprint of its first
  request and where that request's events landed.
- ``projection_positions``: how far each projection (or the library's tracking
  recorder) has read, written in the same transaction as its rows.
- ``snapshots``: folded aggregate state at a seq, to bound load and time travel.
- ``api_tokens`` (migration 2): the SHA-256 of each API token, its tenant and
  scope, and when it was revoked (rows are never deleted).
- ``ledger_migrations``: which of these migrations were applied.
"""

from __future__ import annotations

from dataclasses import dataclass

WRITE_LOCK_KEY = 7_405_110_917_332_011
"""The transaction-scoped advisory lock every PostgreSQL writer takes."""

MIGRATION_LOCK_KEY = 7_405_110_917_332_012
EVENTS_CHANNEL = "ledger_events"
"""LISTEN/NOTIFY channel carrying the new max position after each commit."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]


_PG_V1 = (
    """
    CREATE TABLE events (
        position bigint PRIMARY KEY,
        tenant text NOT NULL,
        stream_type text NOT NULL,
        stream_id text NOT NULL,
        seq bigint NOT NULL,
        type text NOT NULL,
        class_version integer NOT NULL DEFAULT 1,
        data bytea NOT NULL,
        metadata bytea NOT NULL,
        recorded_at timestamptz NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        CONSTRAINT events_stream_seq UNIQUE (tenant, stream_id, seq),
        CONSTRAINT events_position_positive CHECK (position > 0),
        CONSTRAINT events_seq_not_negative CHECK (seq >= 0)
    )
    """,
    "CREATE INDEX events_type_position ON events (type, position)",
    "CREATE INDEX events_tenant_position ON events (tenant, position)",
    """
    CREATE FUNCTION ledger_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger events are immutable: % on events refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_event_change()
    """,
    """
    CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_event_change()
    """,
    """
    CREATE TABLE idempotency_keys (
        tenant text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        stream_id text NOT NULL,
        first_seq bigint NOT NULL,
        seq bigint NOT NULL,
        first_position bigint NOT NULL,
        position bigint NOT NULL,
        response bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, key)
    )
    """,
    "CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)",
    """
    CREATE TABLE projection_positions (
        name text PRIMARY KEY,
        position bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        last_error text,
        error_position bigint
    )
    """,
    """
    CREATE TABLE snapshots (
        tenant text NOT NULL,
        stream_id text NOT NULL,
        seq bigint NOT NULL,
        type text NOT NULL,
        class_version integer NOT NULL DEFAULT 1,
        state bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, stream_id, seq)
    )
    """,
)

_SQLITE_V1 = (
    """
    CREATE TABLE events (
        position INTEGER PRIMARY KEY CHECK (position > 0),
        tenant TEXT NOT NULL,
        stream_type TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        type TEXT NOT NULL,
        class_version INTEGER NOT NULL DEFAULT 1,
        data BLOB NOT NULL,
        metadata BLOB NOT NULL,
        recorded_at TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (tenant, stream_id, seq)
    )
    """,
    "CREATE INDEX events_type_position ON events (type, position)",
    "CREATE INDEX events_tenant_position ON events (tenant, position)",
    """
    CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'ledger events are immutable: UPDATE on events refused'); END
    """,
    """
    CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'ledger events are immutable: DELETE on events refused'); END
    """,
    """
    CREATE TABLE idempotency_keys (
        tenant TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        first_position INTEGER NOT NULL,
        position INTEGER NOT NULL,
        response BLOB,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (tenant, key)
    )
    """,
    "CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)",
    """
    CREATE TABLE projection_positions (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        last_error TEXT,
        error_position INTEGER
    )
    """,
    """
    CREATE TABLE snapshots (
        tenant TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        class_version INTEGER NOT NULL DEFAULT 1,
        state BLOB NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (tenant, stream_id, seq)
    )
    """,
)

_PG_V2 = (
    """
    CREATE TABLE api_tokens (
        token_hash text PRIMARY KEY,
        tenant text NOT NULL,
        scope text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    )
    """,
)

_SQLITE_V2 = (
    """
    CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        revoked_at TEXT
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events, idempotency keys, projection positions, snapshots", _PG_V1, _SQLITE_V1),
    Migration(2, "API tokens (hashed), by tenant and scope", _PG_V2, _SQLITE_V2),
)

CURRENT_VERSION = MIGRATIONS[-1].version

PG_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS ledger_migrations (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

SQLITE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS ledger_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""

PG_APP_ROLE_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT ON events TO {role}",
    "GRANT SELECT ON ledger_migrations TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys, projection_positions, snapshots"
    " TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON api_tokens TO {role}",
)
"""What the service role may do: read everything, append events, never change them;
create and revoke API tokens, never delete them."""
