"""A process that does not write (``ledger project``) hears every commit of the store on
PostgreSQL, whoever made it, and stops listening when told."""

from __future__ import annotations

import threading
import time

from infra.commit_listener import CommitListener
from infra.store.eventstore import EventStore
from tests.integration.store_helpers import event, opened_store

WAIT_S = 10.0


def _wait_until(condition: threading.Event) -> bool:
    return condition.wait(WAIT_S)


def _heard_up_to(heard: list[int], position: int) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if heard and heard[-1] >= position:
            return True
        time.sleep(0.01)
    return False


async def test_each_commit_reaches_the_listener_with_its_position(pg_url: str) -> None:
    heard: list[int] = []
    listener = CommitListener(pg_url, heard.append)
    store: EventStore = await opened_store(pg_url)
    listener.start()
    try:
        assert _wait_until(listener.listening)
        first = (await store.append("default", "thread", "thr_1", 0, [event(), event()])).last
        assert _heard_up_to(heard, first.position), heard
        second = (await store.append("default", "thread", "thr_2", 0, [event()])).last
        assert _heard_up_to(heard, second.position), heard
    finally:
        listener.stop()
        await store.close()

    assert heard == [first.position, second.position]


def test_stop_ends_the_listening_thread_promptly(pg_url: str) -> None:
    listener = CommitListener(pg_url, lambda position: None)
    listener.start()
    assert _wait_until(listener.listening)

    started = time.monotonic()
    listener.stop()

    assert time.monotonic() - started < WAIT_S
    assert not listener.listening.is_set()
    assert not [t for t in threading.enumerate() if t.name == "ledger-commit-listener"]


def test_a_listener_keeps_trying_while_the_database_is_away() -> None:
    heard: list[int] = []
    listener = CommitListener("postgresql://postgres@127.0.0.1:1/nowhere", heard.append)
    listener.start()
    time.sleep(0.3)

    assert not listener.listening.is_set()
    assert [t for t in threading.enumerate() if t.name == "ledger-commit-listener"]
    listener.stop()
    assert heard == []
