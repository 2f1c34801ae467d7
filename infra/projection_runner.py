"""Running projections: follow the log by position, rows and position in one transaction.

A :class:`ProjectionRunner` catches one projection up from its stored position,
a page of events per transaction (a projection with ``apply_page`` applies the
page at once; others event by event).
:class:`ProjectionService` runs every runner of a process on one background
thread, woken by this process's writer and by polling (for commits of other
processes); it reads each page once for all its runners and commits their rows
and positions together. On PostgreSQL a runner only works while it holds a session-level
advisory lock named after its projection, so with several Ledger instances one
runner per projection is active and the others stand by. A projection that
fails on an event stops there: the events of its page before it are committed,
the event's position and the error are recorded and shown, nothing is skipped,
and the runner tries again on later ticks (so it resumes once the cause is fixed).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from infra.projection_store import (
    ProjectionSession,
    grant_rows,
    projection_transaction,
    read_page,
    schema_transaction,
)
from infra.store.backend import Backend
from infra.store.errors import PositionNotAdvanced, StoreUnavailable
from infra.store.postgres import PostgresBackend
from projections.base import ProjectedEvent, Projection, Table, apply_page

log = logging.getLogger(__name__)

BATCH = 2000
"""Events per page: one transaction, and a few statements per table for paged projections."""
POLL_SECONDS = 0.25
BUSY_INTERVAL = 0.025
"""While commits keep coming, ticks begin at most this often, so a page gathers more
events: a page costs the same few statements whether it holds 10 events or 100.
A reader waiting for the read models (:meth:`ProjectionService.hurry`) cuts it short."""
TRANSIENT = (psycopg.OperationalError, TimeoutError, StoreUnavailable)
"""Errors of the database rather than the projection: raised, the runner tries again later."""


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    last_error: str | None
    error_position: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lag_events": self.lag_events,
            "lag_seconds": self.lag_seconds,
            "last_error": self.last_error,
            "error_position": self.error_position,
        }


@dataclass(frozen=True)
class RebuildReport:
    name: str
    position: int
    applied: int
    equal: bool
    switched: bool
    differences: dict[str, int]

    def describe(self) -> str:
        if self.equal:
            return (
                f"rebuilt {self.name} at position {self.position}: {self.applied} events applied,"
                " rows equal to the live read model, switched over"
            )
        tables = ", ".join(f"{t} ({n} rows differ)" for t, n in self.differences.items() if n)
        verdict = "switched over anyway (--force)" if self.switched else "live tables kept"
        return f"rebuilt {self.name} at position {self.position}: differs in {tables}; {verdict}"


def _lock_for_swap(session: ProjectionSession, table: str) -> None:
    """Keep the live runner out while the rebuild compares and swaps (SQLite's
    BEGIN IMMEDIATE already holds the database's write lock)."""
    if session.dialect == "postgres":
        session.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")


def _create_indexes(session: ProjectionSession, table: Table, physical: str) -> None:
    for index, columns in enumerate(table.indexes):
        session.execute(f"CREATE INDEX IF NOT EXISTS {physical}_i{index} ON {physical} ({columns})")


def _differs(session: ProjectionSession, live: str, shadow: str) -> int:
    """How many rows are in one table and not the other."""
    row = session.fetchone(
        f"SELECT (SELECT count(*) FROM (SELECT * FROM {live} EXCEPT SELECT * FROM {shadow}) a)"
        f" + (SELECT count(*) FROM (SELECT * FROM {shadow} EXCEPT SELECT * FROM {live}) b)"
    )
    return int(row[0]) if row else 0


class _EventFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        self.index = index
        self.error = error
        super().__init__(str(error))


class ProjectionFailed(Exception):
    def __init__(self, name: str, position: int, cause: Exception) -> None:
        self.name = name
        self.position = position
        super().__init__(f"projection {name} failed at position {position}: {cause}")


class ProjectionRunner:
    """Catches one projection up with the log."""

    def __init__(self, backend: Backend, projection: Projection, *, batch: int = BATCH) -> None:
        self.backend = backend
        self.projection = projection
        self.batch = batch
        self.names = {table.name: table.name for table in projection.tables}
        self.shadow_of: str | None = None

    @property
    def name(self) -> str:
        """The position row's name (a rebuild's shadow tracks its own position)."""
        return f"{self.projection.name}__rebuild" if self.shadow_of else self.projection.name

    def ensure_tables(self) -> None:
        """Create the projection's tables if missing (as the schema owner)."""
        with schema_transaction(self.backend) as session:
            for table in self.projection.tables:
                physical = self.names[table.name]
                session.execute(f"CREATE TABLE IF NOT EXISTS {physical} ({table.columns})")
                _create_indexes(session, table, physical)
                grant_rows(self.backend, session, physical)

    def position(self) -> int:
        return self.backend.projection_position(self.name) or 0

    def run_once(self) -> int:
        """Apply the next page of events in one transaction; returns how many were applied.

        A page that fails is applied again one event at a time to find the event
        that fails; the events before it are committed (the position stops right
        before it), the failure is recorded, and :class:`ProjectionFailed` is raised.
        """
        page = read_page(self.backend, self.position(), self.batch)
        return self.apply_events(page) if page else 0

    def apply_events(self, page: Sequence[ProjectedEvent]) -> int:
        """Apply ``page``, the events right after this projection's position, as
        :meth:`run_once` applies the page it reads; returns how many were applied."""
        try:
            self._commit(page)
        except PositionNotAdvanced:
            return 0  # another runner applied these first; its rows stand, ours rolled back
        except TRANSIENT:
            raise
        except Exception:
            return self._salvage(page)
        return len(page)

    def _commit(self, events: Sequence[ProjectedEvent], *, one_by_one: bool = False) -> None:
        """Apply ``events`` and move the position past them, in one transaction.

        ``one_by_one`` applies each event as a page of its own, and reports the
        one that fails as :class:`_EventFailed`.
        """
        with projection_transaction(self.backend) as session:
            if not one_by_one:
                apply_page(self.projection, session, events, self.names)
            for index, event in enumerate(events if one_by_one else ()):
                try:
                    apply_page(self.projection, session, (event,), self.names)
                except TRANSIENT:
                    raise
                except Exception as error:
                    raise _EventFailed(index, error) from error
            session.advance([(self.name, events[-1].position)])  # clears a recorded failure

    def _salvage(self, events: Sequence[ProjectedEvent]) -> int:
        """The page failed: find the event that fails by applying the page again one event
        at a time, commit the events before it, and record the failure at it."""
        try:
            self._commit(events, one_by_one=True)
        except PositionNotAdvanced:
            return 0
        except _EventFailed as failed:
            index, error = failed.index, failed.error
        except TRANSIENT:
            raise
        except Exception as other:  # applied, but the position could not be written
            index, error = len(events) - 1, other
        else:
            log.warning("projection %s: a page failed, its events one by one did not", self.name)
            return len(events)
        try:
            if index:
                self._commit(events[:index])
        except PositionNotAdvanced:
            return 0
        position = events[index].position
        self._record_failure(position, error)
        raise ProjectionFailed(self.name, position, error) from error

    def catch_up(self) -> int:
        """Apply events until the projection reaches the head it finds."""
        applied = 0
        while self.position() < self.backend.max_position():
            applied += self.run_once()
        return applied

    def reset(self) -> int:
        """Empty the projection's tables and position in place, then replay the whole log."""
        self.ensure_tables()
        with projection_transaction(self.backend) as session:
            for table in self.projection.tables:
                session.execute(f"DELETE FROM {self.names[table.name]}")
            session.execute("DELETE FROM projection_positions WHERE name = %s", (self.name,))
        return self.catch_up()

    def rebuild(self, *, force: bool = False) -> RebuildReport:
        """Rebuild into fresh tables while the live ones keep serving, then switch over.

        The shadow tables are filled from position 0 up to the head; then, in one
        transaction holding the live tables' write lock and the projection's
        position row, the shadow is brought to exactly the live position, the two
        are compared row for row, and the shadow replaces the live tables only if
        they are equal (or ``force`` is given). A failed comparison leaves the
        live tables as they were.
        """
        shadow = ProjectionRunner(self.backend, self.projection, batch=self.batch)
        shadow.names = {name: f"{name}__rebuild" for name in self.names}
        shadow.shadow_of = self.name
        shadow.drop_tables()
        shadow.ensure_tables()
        self.ensure_tables()
        applied = shadow.catch_up()
        with schema_transaction(self.backend) as session:
            for table in self.projection.tables:
                _lock_for_swap(session, self.names[table.name])
            row = session.fetchone(
                "SELECT position FROM projection_positions WHERE name = %s"
                + (" FOR UPDATE" if session.dialect == "postgres" else ""),
                (self.name,),
            )
            live_position = int(row[0]) if row else 0
            shadow_position = shadow.position()
            if shadow_position > live_position:
                raise ProjectionFailed(
                    self.name,
                    live_position,
                    RuntimeError(
                        f"the live projection is at {live_position}, behind the rebuild at"
                        f" {shadow_position}: let it catch up and rebuild again"
                    ),
                )
            after = shadow_position
            while after < live_position:
                page = read_page(self.backend, after, self.batch, live_position)
                if not page:
                    break
                apply_page(self.projection, session, page, shadow.names)
                applied += len(page)
                after = page[-1].position
            differences = {
                table.name: _differs(session, self.names[table.name], shadow.names[table.name])
                for table in self.projection.tables
            }
            equal = not any(differences.values())
            if equal or force:
                for table in self.projection.tables:
                    live, fresh = self.names[table.name], shadow.names[table.name]
                    session.execute(f"DROP TABLE {live}")
                    for index in range(len(table.indexes)):
                        session.execute(f"DROP INDEX {fresh}_i{index}")
                    session.execute(f"ALTER TABLE {fresh} RENAME TO {live}")
                    _create_indexes(session, table, live)
                    grant_rows(self.backend, session, live)
            session.execute("DELETE FROM projection_positions WHERE name = %s", (shadow.name,))
        if not (equal or force):
            shadow.drop_tables()
        return RebuildReport(self.name, live_position, applied, equal, equal or force, differences)

    def drop_tables(self) -> None:
        with schema_transaction(self.backend) as session:
            for table in self.projection.tables:
                session.execute(f"DROP TABLE IF EXISTS {self.names[table.name]}")
            session.execute("DELETE FROM projection_positions WHERE name = %s", (self.name,))

    def status(self) -> ProjectionStatus:
        position = self.position()
        head = self.backend.max_position()
        lag_seconds = 0.0
        if head > position:
            nxt = self.backend.read_all(after_position=position, limit=1)
            if nxt:
                lag_seconds = max(0.0, (datetime.now(UTC) - nxt[0].recorded_at).total_seconds())
        error, error_position = self._failure()
        return ProjectionStatus(
            self.name, position, head, head - position, round(lag_seconds, 3), error, error_position
        )

    def _record_failure(self, position: int, error: Exception) -> None:
        log.error("projection %s failed at position %s: %s", self.name, position, error)
        with projection_transaction(self.backend) as session:
            session.execute(
                "INSERT INTO projection_positions (name, position, last_error, error_position)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE"
                " SET last_error = excluded.last_error, error_position = excluded.error_position",
                (self.name, position - 1, f"{type(error).__name__}: {error}", position),
            )

    def _failure(self) -> tuple[str | None, int | None]:
        with projection_transaction(self.backend) as session:
            row = session.fetchone(
                "SELECT last_error, error_position FROM projection_positions WHERE name = %s",
                (self.name,),
            )
        return (None, None) if row is None else (row[0], row[1])


def lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"ledger.projection.{name}".encode()).digest()[:8], "big", signed=True
    )


class ProjectionService:
    """Runs the process's projection runners on one background thread."""

    def __init__(self, backend: Backend, runners: list[ProjectionRunner]) -> None:
        self.backend = backend
        self.runners = runners
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()

    def wake(self, position: int = 0) -> None:
        """Something was committed (up to ``position``): apply it on the next tick."""
        self._wake.set()

    def hurry(self) -> None:
        """A reader waits for the read models: tick now, without gathering more commits."""
        self._hurry.set()
        self._wake.set()

    def ensure_tables(self) -> None:
        """Create every read model's tables (readers need them before the first event)."""
        for runner in self.runners:
            runner.ensure_tables()

    def start(self) -> None:
        self.ensure_tables()
        self._thread = threading.Thread(target=self._loop, name="ledger-projections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.hurry()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._lock_conn is not None:
            self._lock_conn.close()

    def tick(self) -> None:
        """Bring every runner whose projection this process may run up to the head."""
        runners = [runner for runner in self.runners if self._may_run(runner.name)]
        if not runners:
            return
        try:
            self._catch_up(runners)
        except Exception as error:  # database gone: try again next tick
            log.warning("projections paused: %s", error)
            self._release_locks()

    def _catch_up(self, runners: list[ProjectionRunner]) -> None:
        """Bring ``runners`` to the head, together: each page of the log is read once and
        applied, for every runner behind its end, in one transaction that also moves their
        positions (one commit per page rather than one per projection).

        If that transaction fails, each runner applies its events in a transaction of its
        own, so a projection that fails stops only itself (:meth:`ProjectionRunner.apply_events`
        finds and records the failing event) and is left out until the next tick.
        """
        positions = self._positions(runners)
        batch = min(runner.batch for runner in runners)
        active = list(runners)
        while active:
            page = read_page(self.backend, min(positions[r.name] for r in active), batch)
            if not page:
                return
            shares = [(r, _after(page, positions[r.name])) for r in active]
            shares = [(runner, events) for runner, events in shares if events]
            if len(shares) > 1 and self._commit_together(shares):
                positions.update((runner.name, events[-1].position) for runner, events in shares)
            else:
                for runner, events in shares:
                    try:
                        applied = runner.apply_events(events)
                    except ProjectionFailed:
                        active.remove(runner)
                        continue
                    if applied < len(events):
                        return  # its position moved under it (another process): next tick
                    positions[runner.name] = events[-1].position
            if len(page) < batch:
                return  # the head, as of this page

    def _positions(self, runners: list[ProjectionRunner]) -> dict[str, int]:
        stored = dict(self.backend.projection_positions())
        return {runner.name: stored.get(runner.name, 0) for runner in runners}

    def _commit_together(self, shares: list[tuple[ProjectionRunner, list[ProjectedEvent]]]) -> bool:
        """Apply every runner's share and move every position in one transaction; False
        (nothing kept) if any of it failed."""
        try:
            with projection_transaction(self.backend) as session:
                for runner, events in shares:
                    apply_page(runner.projection, session, events, runner.names)
                session.advance([(runner.name, events[-1].position) for runner, events in shares])
        except TRANSIENT:
            raise
        except Exception:
            return False
        return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            began = time.monotonic()
            self.tick()
            self._wake.wait(POLL_SECONDS)
            # Under a steady stream of commits, gather them for the rest of BUSY_INTERVAL;
            # after a quiet spell the first commit is applied at once.
            self._hurry.wait(BUSY_INTERVAL - (time.monotonic() - began))
            self._hurry.clear()
            self._wake.clear()

    def _may_run(self, name: str) -> bool:
        if not isinstance(self.backend, PostgresBackend):
            return True
        if name in self._held:
            return True
        try:
            if self._lock_conn is None or self._lock_conn.closed:
                self._lock_conn = self.backend.connect(autocommit=True)
                self._held.clear()
            row = self._lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (lock_key(name),)
            ).fetchone()
        except Exception as error:
            log.warning("projection lock for %s unavailable: %s", name, error)
            self._release_locks()
            return False
        if row and row[0]:
            self._held.add(name)
            return True
        return False

    def _release_locks(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.close()
        self._lock_conn = None
        self._held.clear()


def _after(page: list[ProjectedEvent], position: int) -> list[ProjectedEvent]:
    """The events of ``page`` (in position order) after ``position``."""
    return page[bisect.bisect_right(page, position, key=lambda event: event.position) :]
