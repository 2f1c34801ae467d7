"""The embedded backend: one SQLite file, WAL, ``synchronous=FULL``.

One writer connection (used only by the writer thread) takes ``BEGIN IMMEDIATE``,
which is SQLite's whole-database write lock, so positions are assigned as
max + row number exactly as on PostgreSQL, also across processes sharing the
file. Readers get a connection per thread; WAL lets them read while the writer
writes.

The writer remembers the heads and the max position its own commits left
(:class:`_WriterMemory`) and trusts them only while ``PRAGMA data_version``,
read under the write lock, shows that no other connection has committed since;
otherwise it reads them again, as it does for streams it has not seen.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from infra.store.batch import (
    BatchPlan,
    StoredIdempotency,
    StreamKey,
    idempotency_keys,
    plan_batch,
    stream_keys,
)
from infra.store.errors import PositionNotAdvanced, StoreUnavailable
from infra.store.hashing import format_timestamp
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
from infra.store.schema import MIGRATIONS, SQLITE_MIGRATIONS_TABLE

BUSY_TIMEOUT_MS = 30_000
REMEMBERED_HEADS = 100_000
"""Stream heads the writer keeps between batches (all are dropped when it has more)."""


def _parse_time(value: object) -> datetime:
    """A stored ``recorded_at``: always written by :func:`format_timestamp`, so
    ``fromisoformat`` reads it (40x faster than ``strptime``, the same datetime)."""
    return datetime.fromisoformat(str(value))


class SqliteBackend:
    """The store on a SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        self._memory = _WriterMemory()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # connections -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (used by projections and tracking)."""
        conn = self.reader()
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._writer = None
        self._local = threading.local()

    # schema ------------------------------------------------------------------

    def migrate(self) -> None:
        conn = self._connect()
        try:
            conn.execute(SQLITE_MIGRATIONS_TABLE)
            conn.execute("BEGIN IMMEDIATE")
            try:
                applied = {row[0] for row in conn.execute("SELECT version FROM ledger_migrations")}
                for migration in MIGRATIONS:
                    if migration.version in applied:
                        continue
                    for statement in migration.sqlite:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO ledger_migrations (version, description) VALUES (?, ?)",
                        (migration.version, migration.description),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            with self._connections_lock:
                self._connections.remove(conn)
            conn.close()

    def schema_version(self) -> int:
        row = self.reader().execute("SELECT max(version) FROM ledger_migrations").fetchone()
        return int(row[0] or 0)

    # writing -------------------------------------------------------------------

    def write_batch(self, commits: list[Commit]) -> BatchPlan:
        if self._writer is None:
            self._writer = self._connect()
            self._memory = _WriterMemory()  # data_version numbers are per connection
        conn = self._writer
        memory = self._memory
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreUnavailable(f"could not start a write: {error}") from error
        try:
            memory.check(conn)
            keys = stream_keys(commits)
            heads = memory.heads(conn, keys)
            top = memory.max_position(conn)
            session = _SqliteWriteSession(conn)
            plan = plan_batch(commits, heads, session.idempotency(idempotency_keys(commits)), top)
            session.insert(plan)
            conn.execute("COMMIT")
        except BaseException:
            memory.forget()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        memory.committed(keys, heads, plan.last_position or top)
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
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = ? AND stream_id = ? AND seq > ?"
        params: list[object] = [tenant, stream_id, after_seq]
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        sql += " ORDER BY seq DESC" if desc else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self.reader().execute(sql, params).fetchall()
        return [event_from_row(row, _parse_time) for row in rows]

    def stream_head(self, tenant: str, stream_id: str) -> StreamHead | None:
        return _head(self.reader(), tenant, stream_id)

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
        rows = self.reader().execute(text.replace("%s", "?"), params).fetchall()
        return [event_from_row(row, _parse_time) for row in rows]

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
        rows = self.reader().execute(text.replace("%s", "?"), params).fetchall()
        return json_page(self.dialect, rows, separator)

    def read_record_rows(self, where: LogSlice, *, with_time: bool = False) -> RecordRows:
        text, params = records_query(where, with_time=with_time)
        rows = self.reader().execute(text.replace("%s", "?"), params).fetchall()
        return RecordRows(rows, _parse_time if with_time else None)

    def max_position(self) -> int:
        row = self.reader().execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def advance_position(self, name: str, position: int) -> None:
        with self.transaction() as conn:
            advance_position(conn, name, position)

    def projection_position(self, name: str) -> int | None:
        row = (
            self.reader()
            .execute("SELECT position FROM projection_positions WHERE name = ?", (name,))
            .fetchone()
        )
        return None if row is None else int(row[0])

    def last_acknowledged(self) -> AppendResult | None:
        row = (
            self.reader()
            .execute(
                "SELECT stream_id, first_seq, seq, first_position, position FROM idempotency_keys"
                " ORDER BY position DESC LIMIT 1"
            )
            .fetchone()
        )
        return None if row is None else AppendResult(*row)

    def projection_positions(self) -> list[tuple[str, int]]:
        rows = self.reader().execute("SELECT name, position FROM projection_positions").fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def purge_idempotency(self, older_than_seconds: float) -> int:
        """Forget idempotency keys recorded more than ``older_than_seconds`` ago."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM idempotency_keys"
                " WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)",
                (f"-{older_than_seconds:.3f} seconds",),
            )
            return cursor.rowcount

    def read_idempotency(self, tenant: str, key: str) -> StoredIdempotency | None:
        return _SqliteWriteSession(self.reader()).idempotency({(tenant, key)}).get((tenant, key))

    def ping(self) -> None:
        try:
            self.reader().execute("SELECT 1").fetchone()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the SQLite file cannot be read: {error}") from error


def advance_position(conn: sqlite3.Connection, name: str, position: int) -> None:
    """Move a projection's position forward inside the caller's transaction; a failure
    recorded before is cleared (the projection has moved past it)."""
    row = conn.execute(
        "INSERT INTO projection_positions (name, position) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
        " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
        " last_error = NULL, error_position = NULL"
        " WHERE projection_positions.position < excluded.position RETURNING position",
        (name, position),
    ).fetchone()
    if row is None:
        raise PositionNotAdvanced(name, position)


def advance_positions(conn: sqlite3.Connection, positions: Sequence[tuple[str, int]]) -> None:
    """:func:`advance_position` for several projections (an embedded database has no round
    trips to save)."""
    for name, position in positions:
        advance_position(conn, name, position)


def _head(conn: sqlite3.Connection, tenant: str, stream_id: str) -> StreamHead | None:
    row = conn.execute(
        "SELECT stream_type, seq, hash FROM events WHERE tenant = ? AND stream_id = ?"
        " ORDER BY seq DESC LIMIT 1",
        (tenant, stream_id),
    ).fetchone()
    return None if row is None else StreamHead(row[0], row[1], row[2])


class _WriterMemory:
    """Heads and max position as the writer connection's own last commit left them.

    Valid only while no other connection (another process, or this one's projections)
    has committed: ``PRAGMA data_version`` changes exactly then, so :meth:`check`,
    called under the write lock, drops everything when it moved. A stream known to
    be absent is remembered as ``None``.
    """

    def __init__(self) -> None:
        self._version: int | None = None
        self._heads: dict[StreamKey, StreamHead | None] = {}
        self._max: int | None = None

    def check(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self.forget()
            self._version = version

    def forget(self) -> None:
        self._version = None
        self._heads = {}
        self._max = None

    def heads(self, conn: sqlite3.Connection, keys: set[StreamKey]) -> dict[StreamKey, StreamHead]:
        found: dict[StreamKey, StreamHead] = {}
        remembered = self._heads
        for key in keys:
            head = remembered[key] if key in remembered else _head(conn, *key)
            if head is not None:
                found[key] = head
        return found

    def max_position(self, conn: sqlite3.Connection) -> int:
        if self._max is None:
            row = conn.execute("SELECT max(position) FROM events").fetchone()
            self._max = int(row[0] or 0)
        return self._max

    def committed(
        self, keys: set[StreamKey], heads: dict[StreamKey, StreamHead], max_position: int
    ) -> None:
        """After a commit: ``heads`` as the batch left them (planning updates them in place)."""
        if len(self._heads) + len(keys) > REMEMBERED_HEADS:
            self._heads = {}
        for key in keys:
            self._heads[key] = heads.get(key)
        self._max = max_position


class _SqliteWriteSession:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def heads(self, keys: set[StreamKey]) -> dict[StreamKey, StreamHead]:
        found = {}
        for tenant, stream_id in keys:
            head = _head(self._conn, tenant, stream_id)
            if head is not None:
                found[(tenant, stream_id)] = head
        return found

    def idempotency(self, keys: set[StreamKey]) -> dict[StreamKey, StoredIdempotency]:
        found = {}
        for tenant, key in keys:
            row = self._conn.execute(
                "SELECT fingerprint, stream_id, first_seq, seq, first_position, position, response"
                " FROM idempotency_keys WHERE tenant = ? AND key = ?",
                (tenant, key),
            ).fetchone()
            if row is not None:
                found[(tenant, key)] = StoredIdempotency(
                    tenant=tenant,
                    key=key,
                    fingerprint=row[0],
                    result=AppendResult(row[1], row[2], row[3], row[4], row[5]),
                    response=None if row[6] is None else bytes(row[6]),
                )
        return found

    def max_position(self) -> int:
        row = self._conn.execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def insert(self, plan: BatchPlan) -> None:
        self._conn.executemany(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [  # the rows as they are, with the time in its stored text form
                (*e[:9], format_timestamp(e.recorded_at), e.prev_hash, e.hash) for e in plan.rows
            ],
        )
        self._conn.executemany(
            "INSERT INTO idempotency_keys (tenant, key, fingerprint, stream_id, first_seq, seq,"
            " first_position, position, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    k.tenant,
                    k.key,
                    k.fingerprint,
                    k.result.stream_id,
                    k.result.first_seq,
                    k.result.seq,
                    k.result.first_position,
                    k.result.position,
                    k.response,
                )
                for k in plan.idempotency_rows
            ],
        )
