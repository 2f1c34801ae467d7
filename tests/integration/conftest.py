"""Fixtures shared by the store's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from infra.store.eventstore import EventStore
from tests.integration.store_helpers import append_awkward_log, opened_store


@pytest.fixture
async def awkward_store(database_url: str) -> AsyncIterator[EventStore]:
    """A store holding :func:`append_awkward_log`'s 18 events."""
    opened = await opened_store(database_url)
    try:
        await append_awkward_log(opened)
        yield opened
    finally:
        await opened.close()
