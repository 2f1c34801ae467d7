"""Several processes creating the read models' tables at once (a service, ``ledger project``
and ``ledger projections status`` starting together) take turns: on PostgreSQL two GRANTs on
one table at once fail with "tuple concurrently updated"."""

from __future__ import annotations

import threading

from infra.bootstrap import all_projections
from infra.projection_runner import ProjectionRunner
from infra.store.postgres import PostgresBackend
from tests.integration.store_helpers import migrated


def test_concurrent_table_creation_and_grants_all_succeed(pg_url: str) -> None:
    backends = [migrated(pg_url) for _ in range(4)]
    assert all(isinstance(b, PostgresBackend) and b.grants_to_app_role for b in backends)
    errors: list[BaseException] = []
    start = threading.Barrier(len(backends))

    def create_all(backend: PostgresBackend) -> None:
        runners = [ProjectionRunner(backend, projection) for projection in all_projections()]
        start.wait()
        try:
            for _ in range(5):
                for runner in runners:
                    runner.ensure_tables()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=create_all, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for backend in backends:
        backend.close()
    assert errors == []
