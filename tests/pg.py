"""PostgreSQL for tests: one server, a template database with the schema, a clone per test.

The server comes from ``LEDGER_TEST_DATABASE_URL``, else a testcontainers
PostgreSQL when ``docker info`` succeeds, else the local server at
127.0.0.1:5432. If none answers, the tests that need it fail loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from infra.store.postgres import PostgresBackend

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"

_lock = threading.RLock()
_server_url: str | None = None
_template: str | None = None
_container: object | None = None


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def server_url() -> str:
    """The admin URL of the test server (a superuser, connected to a maintenance database)."""
    global _server_url, _container
    with _lock:
        if _server_url is None:
            configured = os.environ.get("LEDGER_TEST_DATABASE_URL")
            if configured:
                _server_url = configured
            elif _docker_available():
                from testcontainers.postgres import PostgresContainer

                container = PostgresContainer("postgres:15", driver=None)
                container.start()
                _container = container
                _server_url = container.get_connection_url()
            else:
                _server_url = LOCAL_SERVER
            try:
                with psycopg.connect(_server_url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError as error:
                raise RuntimeError(
                    f"no PostgreSQL server for the tests at {_server_url}: {error}. "
                    "Set LEDGER_TEST_DATABASE_URL or start the local server."
                ) from error
        return _server_url


def url_for(database: str, base: str | None = None) -> str:
    parts = urlsplit(base or server_url())
    return urlunsplit(parts._replace(path=f"/{database}"))


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server_url(), autocommit=True)


def template() -> str:
    """A database holding the current schema, made once per test process."""
    global _template
    with _lock:
        if _template is None:
            name = f"ledger_tpl_{uuid.uuid4().hex[:12]}"
            with _admin() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            backend = PostgresBackend(url_for(name))
            backend.migrate()
            backend.close()
            _template = name
        return _template


def create_database() -> str:
    """A fresh database with the schema; returns its name."""
    name = f"ledger_test_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template())
            )
        )
    return name


def create_empty_database() -> str:
    name = f"ledger_test_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def drop_template() -> None:
    global _template
    if _template is not None:
        drop_database(_template)
        _template = None
    if _container is not None:
        _container.stop()  # type: ignore[attr-defined]
