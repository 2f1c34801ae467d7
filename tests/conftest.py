"""Fixtures shared by every suite: databases on both backends, made and dropped per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (schema applied), dropped after the test."""
    name = pg.create_database()
    try:
        yield pg.url_for(name)
    finally:
        pg.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    name = pg.create_database()
    try:
        yield pg.url_for(name)
    finally:
        pg.drop_database(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    pg.drop_template()
