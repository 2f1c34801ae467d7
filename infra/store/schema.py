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
- ``ledger_append`` (migration 3, PostgreSQL only): a whole writer batch in one
  call, taking arrays; it appends only if the log is as the writer last left it.
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

_PG_V3 = (
    f"""
    CREATE FUNCTION ledger_append(
        expected_max bigint,
        new_tenants text[], new_stream_ids text[],
        key_tenants text[], key_names text[],
        e_tenant text[], e_stream_type text[], e_stream_id text[], e_seq bigint[],
        e_position bigint[], e_type text[], e_class_version integer[], e_data bytea[],
        e_metadata bytea[], e_recorded_at timestamptz[], e_prev_hash text[], e_hash text[],
        k_tenant text[], k_key text[], k_fingerprint text[], k_stream_id text[],
        k_first_seq bigint[], k_seq bigint[], k_first_position bigint[], k_position bigint[],
        k_response bytea[]
    ) RETURNS boolean
    LANGUAGE plpgsql
    SET plan_cache_mode = force_custom_plan
    AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({WRITE_LOCK_KEY});
        IF (SELECT coalesce(max(position), 0) FROM events) <> expected_max
           OR EXISTS (SELECT 1 FROM unnest(new_tenants, new_stream_ids) AS n(tenant, stream_id)
                      JOIN events AS e ON e.tenant = n.tenant AND e.stream_id = n.stream_id)
           OR EXISTS (SELECT 1 FROM unnest(key_tenants, key_names) AS n(tenant, key)
                      JOIN idempotency_keys AS i ON i.tenant = n.tenant AND i.key = n.key)
        THEN
            RETURN false;
        END IF;
        INSERT INTO events (tenant, stream_type, stream_id, seq, position, type, class_version,
                            data, metadata, recorded_at, prev_hash, hash)
        SELECT * FROM unnest(e_tenant, e_stream_type, e_stream_id, e_seq, e_position, e_type,
                             e_class_version, e_data, e_metadata, e_recorded_at, e_prev_hash,
                             e_hash);
        INSERT INTO idempotency_keys (tenant, key, fingerprint, stream_id, first_seq, seq,
                                      first_position, position, response)
        SELECT * FROM unnest(k_tenant, k_key, k_fingerprint, k_stream_id, k_first_seq, k_seq,
                             k_first_position, k_position, k_response);
        IF cardinality(e_position) > 0 THEN
            PERFORM pg_notify('{EVENTS_CHANNEL}', e_position[cardinality(e_position)]::text);
        END IF;
        RETURN true;
    END
    $$
    """,
)
"""One call per writer batch. The writer plans a batch against the heads and max position
its own last commit left; under the write lock the function checks that the max position is
still that one (events are never updated or deleted, so then nothing else was appended),
that the streams the writer assumed new are absent and that none of the batch's idempotency
keys is known. Then it inserts and returns true; otherwise it inserts nothing and returns
false, and the writer reads the heads and plans again. ``force_custom_plan``: a generic plan
for these statements got slower as the table grew."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events, idempotency keys, projection positions, snapshots", _PG_V1, _SQLITE_V1),
    Migration(2, "API tokens (hashed), by tenant and scope", _PG_V2, _SQLITE_V2),
    Migration(3, "ledger_append: a writer batch in one call (PostgreSQL)", _PG_V3, ()),
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
