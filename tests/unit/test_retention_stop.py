"""Stopping the idempotency retention waits for a purge in flight: its thread still uses the
store's connection, and closing that under it crashed the process (SQLite)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, cast

from infra.retention import IdempotencyRetention
from infra.store.backend import Backend


class SlowBackend:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()

    def purge_idempotency(self, older_than_seconds: float) -> int:
        self.started.set()
        time.sleep(0.3)
        self.finished.set()
        return 0


async def test_stop_returns_only_after_the_purge_in_flight_has_finished() -> None:
    backend = SlowBackend()
    retention = IdempotencyRetention(cast(Any, backend), ttl_ms=1000)
    retention.start()
    assert await asyncio.to_thread(backend.started.wait, 5.0)
    await retention.stop()
    assert backend.finished.is_set(), "stop() returned while the purge thread was still running"


async def test_stop_without_a_purge_in_flight_returns_at_once() -> None:
    retention = IdempotencyRetention(cast(Backend, SlowBackend()), ttl_ms=1000)
    started = time.monotonic()
    await retention.stop()
    assert time.monotonic() - started < 0.1
