"""Hearing the store's commits in a process that does not write them (``ledger project``).

Every PostgreSQL commit of the store sends ``NOTIFY ledger_events, '<max position>'``
in its transaction. ``ledger serve`` hears its own writer and LISTENs on its event
loop (:mod:`infra.notifier`); a worker without a writer or an event loop, such as
the projection process, LISTENs here, on a thread, and is woken by each commit
instead of finding it at its next poll. SQLite has no notifications: a worker on a
SQLite file keeps polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from infra.store.schema import EVENTS_CHANNEL

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.5
"""How often the listening thread looks up from the connection to see if it should stop."""


class CommitListener:
    """Calls ``on_commit(position)`` for each commit notification until stopped;
    reconnects (with a growing pause) when the connection is lost."""

    def __init__(self, url: str, on_commit: Callable[[int], None]) -> None:
        self._url = url
        self._on_commit = on_commit
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while a LISTEN connection is open (cleared while reconnecting)."""

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="ledger-commit-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=CHECK_SECONDS * 4)

    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=CHECK_SECONDS):
                            if notice.payload.isdigit():
                                self._on_commit(int(notice.payload))
            except psycopg.Error as error:
                self.listening.clear()
                log.warning("LISTEN %s lost (%s); reconnecting", EVENTS_CHANNEL, error)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
        self.listening.clear()
