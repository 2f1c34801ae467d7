"""The PostgreSQL backend (psycopg 3, C build).

Writes: one connection owned by the writer thread. Each batch is one
transaction that takes a transaction-scoped advisory lock
(``pg_advisory_xact_lock``), reads the heads of the streams it touches and the
current max position, and inserts every row with one ``unnest`` statement.
Positions are max + row number under the lock, so they are gap-free and in
commit order across every process writing to the database. The advisory lock,
unlike ``LOCK TABLE``, does not stop autovacuum from working on the table.

The writer remembers the heads and max position its own commits left, plans
the next batch against them and sends it in one round trip, as one call of
``ledger_append`` (see :mod:`infra.store.schema`), which appends only if the
max position is still the remembered one and the streams assumed new and the
idempotency keys are absent. Otherwise (another process appended, a stream not
seen before exists, a retried key) it reads them under the lock and plans again,
in two round trips. Parameters go in binary: the text form of arrays of bytea
costs more Python than the rest of the batch.

A batch of at least ``COPY_FROM`` events (batched commands, ``ledger import``)
reads the heads under the lock and writes its events with a ``COPY`` into the
events table in the same transaction: positions are still max + row number under
the lock, computed in Python from the max read there. The commits are decided
first and each row is built (hashed) as the COPY sends it. The COPY is in text
format: in binary format PostgreSQL holds the rows until it has 1,000 and only
then inserts them, so it inserted nothing while the client hashed and sent a
1,000-event batch; in text format it inserts every ~64 KB as the rows arrive, and
the client's work overlaps the database's (a 1,000-event call 14.7-15.1 →
13.8-14.1 ms in alternating runs).

Reads: a small synchronous pool (library recorders, CLI) and an asyncio pool
(HTTP). When the connecting user is a superuser, every connection switches to
the service role (``SET ROLE``), which may read and append events but not
change them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from infra.store.batch import (
    BatchPlan,
    EventRow,
    StoredIdempotency,
    StreamKey,
    decide_batch,
    idempotency_keys,
    plan_batch,
    stream_keys,
)
from infra.store.errors import PositionNotAdvanced, StoreUnavailable
from infra.store.json_pages import (
    JsonPage,
    LogSlice,
    Separator,
    StreamSlice,
    json_page,
    json_page_query,
)
from infra.store.log_records import RecordRows, records_query
from infra.store.records import AppendResult, Commit, RecordedEvent, StreamHead
from infra.store.rows import EVENT_COLUMNS, event_from_row, feed_sql
from infra.store.schema import (
    EVENTS_CHANNEL,
    MIGRATION_LOCK_KEY,
    MIGRATIONS,
    PG_APP_ROLE_GRANTS,
    PG_MIGRATIONS_TABLE,
    WRITE_LOCK_KEY,
)

log = logging.getLogger(__name__)

DEFAULT_APP_ROLE = "ledger_app"


def parse_pg_time(value: Any) -> datetime:
    assert isinstance(value, datetime)
    return value


SELECT_STREAM = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = %s AND stream_id = %s AND seq > %s"
)
SELECT_HEAD = (
    "SELECT stream_type, seq, hash FROM events WHERE tenant = %s AND stream_id = %s"
    " ORDER BY seq DESC LIMIT 1"
)
SELECT_HEADS = """
    SELECT k.tenant, k.stream_id, e.stream_type, e.seq, e.hash
    FROM unnest(%s::text[], %s::text[]) AS k(tenant, stream_id)
    JOIN LATERAL (
        SELECT stream_type, seq, hash FROM events
        WHERE tenant = k.tenant AND stream_id = k.stream_id
        ORDER BY seq DESC LIMIT 1
    ) e ON true
"""
SELECT_KEYS = """
    SELECT i.tenant, i.key, i.fingerprint, i.stream_id, i.first_seq, i.seq,
           i.first_position, i.position, i.response
    FROM idempotency_keys i
    JOIN unnest(%s::text[], %s::text[]) AS k(tenant, key) ON i.tenant = k.tenant AND i.key = k.key
"""
EVENT_ARRAYS = (
    "%b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::text[],"
    " %b::integer[], %b::bytea[], %b::bytea[], %b::timestamptz[], %b::text[], %b::text[]"
)
KEY_ARRAYS = (
    "%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[],"
    " %b::bigint[], %b::bigint[], %b::bytea[]"
)
INSERT_EVENTS = f"INSERT INTO events ({EVENT_COLUMNS}) SELECT * FROM unnest({EVENT_ARRAYS})"
INSERT_KEYS = f"""
    INSERT INTO idempotency_keys (tenant, key, fingerprint, stream_id, first_seq, seq,
                                  first_position, position, response)
    SELECT * FROM unnest({KEY_ARRAYS})
"""
APPEND_BATCH = f"""
    SELECT ledger_append(%b::bigint, %b::text[], %b::text[], %b::text[], %b::text[],
                         {EVENT_ARRAYS}, {KEY_ARRAYS})
"""
COPY_FROM = 200
"""Batches with at least this many events write them with COPY instead of ``ledger_append``."""
COPY_EVENTS = f"COPY events ({EVENT_COLUMNS}) FROM STDIN"
COPY_TYPES = (
    "text", "text", "text", "int8", "int8", "text", "int4", "bytea", "bytea", "timestamptz",
    "text", "text",
)  # fmt: skip
REMEMBERED_HEADS = 100_000
"""Stream heads the writer keeps between batches (all are dropped when it has more)."""


def stream_query(
    *, upto_seq: int | None, limit: int | None, desc: bool
) -> tuple[str, list[object]]:
    """The tail of the stream read: bounds, order and limit (params follow the base three)."""
    text = SELECT_STREAM
    params: list[object] = []
    if upto_seq is not None:
        text += " AND seq <= %s"
        params.append(upto_seq)
    text += " ORDER BY seq DESC" if desc else " ORDER BY seq"
    if limit is not None:
        text += " LIMIT %s"
        params.append(limit)
    return text, params


class PostgresBackend:
    """The store on a PostgreSQL database."""

    dialect = "postgres"

    def __init__(self, url: str, *, app_role: str = DEFAULT_APP_ROLE, pool_size: int = 4) -> None:
        self.url = url
        self.app_role = app_role
        self._pool_size = pool_size
        self._switch_role = False
        self._writer: psycopg.Connection[Any] | None = None
        self._memory = _WriterMemory()
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()

    # connections -----------------------------------------------------------

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        """A new connection acting as the service role."""
        try:
            conn = psycopg.connect(self.url, autocommit=autocommit)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {error}") from error
        self._configure(conn)
        return conn

    def owner_connection(self) -> psycopg.Connection[Any]:
        """A connection as the connecting user itself (the schema owner), for DDL."""
        try:
            return psycopg.connect(self.url)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {error}") from error

    @property
    def grants_to_app_role(self) -> bool:
        """Whether this process owns the schema and acts as the service role."""
        return self._switch_role

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if self._switch_role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.app_role)))
            if not conn.autocommit:
                conn.commit()

    @property
    def pool(self) -> ConnectionPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            configure=self._configure,
            # a read is one statement, a write an explicit transaction: in autocommit
            # mode the pool needs no ROLLBACK round trip when a connection comes back
            kwargs={"autocommit": True},
            open=True,
            name="ledger-read",
        )

    def async_pool(self, max_size: int = 8) -> AsyncConnectionPool:
        """An asyncio pool acting as the service role; the caller opens and closes it."""

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            if self._switch_role:
                await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.app_role)))
                await conn.commit()

        return AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=max_size,
            configure=configure,
            kwargs={"autocommit": True},  # as the sync pool: no ROLLBACK per read
            open=False,
            name="ledger-async-read",
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # schema ------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply missing migrations as the connecting user, then decide the service role."""
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                superuser = _is_superuser(conn)
                applied = _applied_versions(conn)
                missing = [m for m in MIGRATIONS if m.version not in applied]
                if missing:
                    self._apply(conn, superuser)
                self._switch_role = superuser
                if superuser and not missing:
                    _ensure_role(conn, self.app_role)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {error}") from error

    def _apply(self, conn: psycopg.Connection[Any], superuser: bool) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(PG_MIGRATIONS_TABLE)
            applied = {row[0] for row in conn.execute("SELECT version FROM ledger_migrations")}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.postgres:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO ledger_migrations (version, description) VALUES (%s, %s)",
                    (migration.version, migration.description),
                )
            if superuser:
                _ensure_role(conn, self.app_role)
                for grant in PG_APP_ROLE_GRANTS:
                    conn.execute(sql.SQL(grant).format(role=sql.Identifier(self.app_role)))

    def schema_version(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT max(version) FROM ledger_migrations").fetchone()
            return int(row[0] or 0) if row else 0

    # writing -------------------------------------------------------------------

    def write_batch(self, commits: list[Commit]) -> BatchPlan:
        """One transaction: in one round trip when the log is as this writer left it
        (:meth:`_write_remembered`), else in two (:meth:`_write_read`)."""
        if self._writer is None or self._writer.closed:
            self._writer = self.connect(autocommit=True)
            self._memory = _WriterMemory()
        conn = self._writer
        try:
            if sum(len(part.events) for commit in commits for part in commit.parts) >= COPY_FROM:
                plan = self._write_read(conn, commits, copy=True)
            else:
                plan = self._write_remembered(conn, commits) or self._write_read(conn, commits)
        except psycopg.OperationalError as error:
            self._memory = _WriterMemory()
            conn.close()
            self._writer = None
            raise StoreUnavailable(f"PostgreSQL write failed: {error}") from error
        except BaseException:
            self._memory = _WriterMemory()
            raise
        return plan

    def _write_remembered(
        self, conn: psycopg.Connection[Any], commits: list[Commit]
    ) -> BatchPlan | None:
        """Plan against the remembered heads; ``ledger_append`` checks them under the lock.
        None when they were stale (nothing was written)."""
        memory = self._memory
        if memory.max_position is None:
            return None
        keys = stream_keys(commits)
        heads, unseen = memory.heads(keys)
        plan = plan_batch(commits, heads, {}, memory.max_position)
        unseen_tenants, unseen_ids = _columns(unseen, 2)
        key_tenants, key_names = _columns(idempotency_keys(commits), 2)
        cursor = conn.execute(  # autocommit: one statement is one transaction, one round trip
            APPEND_BATCH,
            (
                memory.max_position,
                unseen_tenants,
                unseen_ids,
                key_tenants,
                key_names,
                *_event_columns(plan),
                *_key_columns(plan),
            ),
        )
        if not _one(cursor):
            memory.forget()
            return None
        memory.committed(keys, heads, plan)
        return plan

    def _write_read(
        self, conn: psycopg.Connection[Any], commits: list[Commit], *, copy: bool = False
    ) -> BatchPlan:
        """Read under the lock, then write: the lock, the heads, the known idempotency keys
        and the max position travel together (pipeline mode); then the inserts, the NOTIFY
        and the COMMIT. With ``copy``, the events go in by a binary COPY instead."""
        keys = stream_keys(commits)
        session = _PostgresWriteSession(conn)
        with conn.transaction():
            with conn.pipeline():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                heads_later = session.heads_later(keys)
                known_later = session.idempotency_later(idempotency_keys(commits))
                top = int(_one(conn.execute("SELECT coalesce(max(position), 0) FROM events")))
                heads, known = heads_later(), known_later()
            self._memory.read(top, keys, heads)
            if copy:  # the rows are built as the COPY sends them
                plan = decide_batch(commits, heads, known, top)
                session.copy(plan)
            else:
                plan = plan_batch(commits, heads, known, top)
            with conn.pipeline():
                if not copy:
                    session.insert_events(plan)
                session.insert_keys(plan)
                session.notify(plan)
        self._memory.committed(keys, heads, plan)
        return plan

    # reading -------------------------------------------------------------------

    def read_stream(
        self,
        tenant: str,
        stream_id: str,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
        desc: bool = False,
    ) -> list[RecordedEvent]:
        text, extra = stream_query(upto_seq=upto_seq, limit=limit, desc=desc)
        rows = self._fetch(text, [tenant, stream_id, after_seq, *extra], binary=True)
        return [event_from_row(row, parse_pg_time) for row in rows]

    def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None:
        rows = self._fetch(SELECT_HEAD, [tenant, stream_id])
        return StreamHead(*rows[0]) if rows else None

    def read_all(
        self,
        *,
        after_position: int = 0,
        upto_position: int | None = None,
        limit: int = 1000,
        types: Sequence[str] = (),
        stream_type: str | None = None,
        tenant: str | None = None,
    ) -> list[RecordedEvent]:
        text, params = feed_sql(
            after_position=after_position,
            upto_position=upto_position,
            limit=limit,
            types=types,
            stream_type=stream_type,
            tenant=tenant,
        )
        rows = self._fetch(text, params, binary=True)
        return [event_from_row(row, parse_pg_time) for row in rows]

    def read_json(
        self,
        where: LogSlice | StreamSlice,
        *,
        with_tenant: bool = False,
        separator: Separator = ",",
    ) -> JsonPage:
        text, params = json_page_query(
            self.dialect, where, with_tenant=with_tenant, separator=separator
        )
        return json_page(self.dialect, self._fetch(text, params), separator)

    def read_record_rows(self, where: LogSlice, *, with_time: bool = False) -> RecordRows:
        text, params = records_query(where, with_time=with_time)
        rows = self._fetch(text, params, binary=True)
        return RecordRows(rows, parse_pg_time if with_time else None)

    def max_position(self) -> int:
        rows = self._fetch("SELECT max(position) FROM events", [])
        return int(rows[0][0] or 0)

    def advance_position(self, name: str, position: int) -> None:
        try:
            with self.pool.connection() as conn, conn.transaction():
                advance_position(conn, name, position)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"PostgreSQL write failed: {error}") from error

    def projection_position(self, name: str) -> int | None:
        rows = self._fetch("SELECT position FROM projection_positions WHERE name = %s", [name])
        return int(rows[0][0]) if rows else None

    def last_acknowledged(self) -> AppendResult | None:
        rows = self._fetch(
            "SELECT stream_id, first_seq, seq, first_position, position FROM idempotency_keys"
            " ORDER BY position DESC LIMIT 1",
            [],
        )
        return AppendResult(*rows[0]) if rows else None

    def projection_positions(self) -> list[tuple[str, int]]:
        rows = self._fetch("SELECT name, position FROM projection_positions", [])
        return [(str(r[0]), int(r[1])) for r in rows]

    def purge_idempotency(self, older_than_seconds: float) -> int:
        """Forget idempotency keys recorded more than ``older_than_seconds`` ago."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                cursor = conn.execute(
                    "DELETE FROM idempotency_keys"
                    " WHERE created_at < now() - make_interval(secs => %s)",
                    (older_than_seconds,),
                )
                return cursor.rowcount
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"PostgreSQL write failed: {error}") from error

    def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None:
        rows = self._fetch(SELECT_KEYS, [[tenant], [key]])
        return idempotency_from_row(rows[0]) if rows else None

    def ping(self) -> None:
        self._fetch("SELECT 1", [])

    def _fetch(
        self, text: str, params: Sequence[object], *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        """Rows of a query; ``binary`` results for events (bytea and timestamps decode
        without text parsing)."""
        try:
            with self.pool.connection() as conn:
                return conn.execute(text, params, binary=binary).fetchall()
        except (psycopg.OperationalError, TimeoutError) as error:
            raise StoreUnavailable(f"PostgreSQL read failed: {error}") from error


def advance_position(conn: psycopg.Connection[Any], name: str, position: int) -> None:
    """Move a projection's position forward inside the caller's transaction; a failure
    recorded before is cleared (the projection has moved past it)."""
    advance_positions(conn, [(name, position)])


def advance_positions(conn: psycopg.Connection[Any], positions: Sequence[tuple[str, int]]) -> None:
    """:func:`advance_position` for several projections in one statement; raises
    :class:`PositionNotAdvanced` (for the first that did not move) unless all moved."""
    names = [name for name, _ in positions]
    moved = conn.execute(
        "INSERT INTO projection_positions (name, position)"
        " SELECT * FROM unnest(%s::text[], %s::bigint[])"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now(),"
        " last_error = NULL, error_position = NULL"
        " WHERE projection_positions.position < excluded.position RETURNING name",
        (names, [position for _, position in positions]),
    ).fetchall()
    if len(moved) < len(positions):
        done = {row[0] for row in moved}
        name, position = next((n, p) for n, p in positions if n not in done)
        raise PositionNotAdvanced(name, position)


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return row[0] if row else None


def idempotency_from_row(r: Sequence[Any]) -> StoredIdempotency:
    return StoredIdempotency(
        tenant=r[0],
        key=r[1],
        fingerprint=r[2],
        result=AppendResult(r[3], r[4], r[5], r[6], r[7]),
        response=None if r[8] is None else bytes(r[8]),
    )


def _is_superuser(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def _applied_versions(conn: psycopg.Connection[Any]) -> set[int]:
    exists = conn.execute("SELECT to_regclass('ledger_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM ledger_migrations")}


def _ensure_role(conn: psycopg.Connection[Any], role: str) -> None:
    """Create the service role once per cluster (NOLOGIN: superusers act as it by SET ROLE)."""
    found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if found:
        return
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                    sql.Identifier(role)
                )
            )
    except psycopg.errors.DuplicateObject:
        pass  # created concurrently by another migrator


class _PostgresWriteSession:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def heads_later(self, keys: set[StreamKey]) -> Callable[[], dict[StreamKey, StreamHead]]:
        """Send the heads query now (pipelined); the returned call reads its answer."""
        if not keys:
            return dict
        tenants, ids = zip(*keys, strict=True)
        cursor = self._conn.execute(SELECT_HEADS, (list(tenants), list(ids)))
        return lambda: {(r[0], r[1]): StreamHead(r[2], r[3], r[4]) for r in cursor.fetchall()}

    def idempotency_later(
        self, keys: set[StreamKey]
    ) -> Callable[[], dict[StreamKey, StoredIdempotency]]:
        if not keys:
            return dict
        tenants, names = zip(*keys, strict=True)
        cursor = self._conn.execute(SELECT_KEYS, (list(tenants), list(names)))
        return lambda: {(r[0], r[1]): idempotency_from_row(r) for r in cursor.fetchall()}

    def insert_events(self, plan: BatchPlan) -> None:
        if plan.rows:
            self._conn.execute(INSERT_EVENTS, _event_columns(plan))

    def insert_keys(self, plan: BatchPlan) -> None:
        if plan.idempotency_rows:
            self._conn.execute(INSERT_KEYS, _key_columns(plan))

    def copy(self, plan: BatchPlan) -> None:
        """The batch's events with one COPY (inside the locked transaction), each row
        built as it is sent."""
        with self._conn.cursor().copy(COPY_EVENTS) as copy:
            copy.set_types(COPY_TYPES)
            write = copy.write_row
            for row in plan.rows_as_built():  # the table's columns in COPY_EVENTS's order
                write(row)

    def notify(self, plan: BatchPlan) -> None:
        if plan.last_position is not None:
            self._conn.execute(
                "SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, str(plan.last_position))
            )


class _WriterMemory:
    """Heads and max position as the writer's own last commit left them (None: not known).

    Events are never updated or deleted, so while the max position is the remembered
    one nothing else was appended and every remembered head (or absence) still holds;
    ``ledger_append`` checks exactly that under the lock.
    """

    def __init__(self) -> None:
        self.max_position: int | None = None
        self._heads: dict[StreamKey, StreamHead | None] = {}

    def forget(self) -> None:
        self.max_position = None
        self._heads = {}

    def heads(self, keys: set[StreamKey]) -> tuple[dict[StreamKey, StreamHead], list[StreamKey]]:
        """The remembered heads of ``keys`` (absent streams left out), and the keys not seen."""
        found: dict[StreamKey, StreamHead] = {}
        unseen: list[StreamKey] = []
        remembered = self._heads
        for key in keys:
            if key not in remembered:
                unseen.append(key)
                continue
            head = remembered[key]
            if head is not None:
                found[key] = head
        return found, unseen

    def read(
        self, max_position: int, keys: set[StreamKey], heads: dict[StreamKey, StreamHead]
    ) -> None:
        """Heads read under the lock at ``max_position``; older ones hold if it did not move."""
        if max_position != self.max_position:
            self._heads = {}
        self.max_position = max_position
        for key in keys:
            self._heads[key] = heads.get(key)

    def committed(
        self, keys: set[StreamKey], heads: dict[StreamKey, StreamHead], plan: BatchPlan
    ) -> None:
        """After a commit: ``heads`` as the batch left them (planning updates them in place)."""
        if len(self._heads) + len(keys) > REMEMBERED_HEADS:
            self._heads = {}
        for key in keys:
            self._heads[key] = heads.get(key)
        if plan.last_position is not None:
            self.max_position = plan.last_position


def _columns(rows: Collection[Sequence[Any]], width: int) -> list[list[Any]]:
    """``rows`` as ``width`` lists, one per column (array parameters of one statement)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _event_columns(plan: BatchPlan) -> list[list[Any]]:
    return _columns(plan.rows, len(EventRow._fields))


def _key_columns(plan: BatchPlan) -> tuple[list[Any], ...]:
    keys = plan.idempotency_rows
    return (
        [k.tenant for k in keys],
        [k.key for k in keys],
        [k.fingerprint for k in keys],
        [k.result.stream_id for k in keys],
        [k.result.first_seq for k in keys],
        [k.result.seq for k in keys],
        [k.result.first_position for k in keys],
        [k.result.position for k in keys],
        [k.response for k in keys],
    )
