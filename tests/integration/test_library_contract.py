"""The eventsourcing library's own recorder contract tests, on Ledger's store.

Each test gets empty tables: a fresh PostgreSQL database cloned from the schema
template, or a new SQLite file. Per the design notes, originator ids are strings
and the library's ``IntegrityError`` is raised on duplicates.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, TrackingRecorder
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
    TrackingRecorderTestCase,
)

from infra.recorders import LedgerApplicationRecorder, LedgerTrackingRecorder
from infra.store.backend import Backend
from infra.store.postgres import PostgresBackend
from infra.store.sqlite import SqliteBackend
from infra.store.writer import GroupCommitWriter
from tests import pg


class _Stores:
    """Makes a fresh store per test and closes it afterwards."""

    backend_kind = ""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self._store_cleanups: list[Any] = []

    def tearDown(self) -> None:
        for cleanup in reversed(self._store_cleanups):
            cleanup()
        super().tearDown()  # type: ignore[misc]

    def new_originator_id(self) -> str:
        return str(uuid.uuid4())

    def _backend(self) -> Backend:
        backend: Backend
        if self.backend_kind == "postgres":
            name = pg.create_database()
            self._store_cleanups.append(lambda: pg.drop_database(name))
            backend = PostgresBackend(pg.url_for(name))
        else:
            folder = tempfile.TemporaryDirectory()
            self._store_cleanups.append(folder.cleanup)
            backend = SqliteBackend(Path(folder.name) / "ledger.db")
        backend.migrate()
        self._store_cleanups.append(backend.close)
        return backend

    def _application_recorder(self) -> LedgerApplicationRecorder:
        backend = self._backend()
        writer = GroupCommitWriter(backend)
        self._store_cleanups.append(writer.stop)
        return LedgerApplicationRecorder(backend, writer)


class _ApplicationContract(_Stores, ApplicationRecorderTestCase[ApplicationRecorder]):
    def create_recorder(self) -> ApplicationRecorder:
        return self._application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class _TrackingContract(_Stores, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return LedgerTrackingRecorder(self._backend())


class _NonInterleaving(_Stores, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self._application_recorder()


class TestSqliteApplicationRecorder(_ApplicationContract):
    backend_kind = "sqlite"


class TestPostgresApplicationRecorder(_ApplicationContract):
    backend_kind = "postgres"


class TestSqliteTrackingRecorder(_TrackingContract):
    backend_kind = "sqlite"


class TestPostgresTrackingRecorder(_TrackingContract):
    backend_kind = "postgres"


class TestSqliteNonInterleaving(_NonInterleaving):
    backend_kind = "sqlite"


class TestPostgresNonInterleaving(_NonInterleaving):
    backend_kind = "postgres"


del _ApplicationContract, _TrackingContract, _NonInterleaving
