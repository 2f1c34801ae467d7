"""Reading ahead: pages in order, at most ``depth`` ahead, errors raised in order, an early
stop ends the reading thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from infra.read_ahead import read_ahead


def test_pages_come_in_order_and_all_of_them() -> None:
    assert list(read_ahead(iter(range(100)), depth=3)) == list(range(100))
    assert list(read_ahead(iter([]))) == []


def test_reading_stays_at_most_depth_pages_ahead() -> None:
    read: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(10):
            read.append(n)
            yield n

    ahead = read_ahead(pages(), depth=2)
    assert next(ahead) == 0
    time.sleep(0.3)  # time for the thread to run ahead as far as it may
    # page 0 handed over, pages 1-2 waiting in the queue, page 3 read and waiting to be put
    assert len(read) <= 4
    assert list(ahead) == list(range(1, 10))


def test_an_error_while_reading_is_raised_after_the_pages_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("database gone")

    got: list[int] = []
    with pytest.raises(RuntimeError, match="database gone"):
        for page in read_ahead(pages()):
            got.append(page)
    assert got == [1, 2]


def test_stopping_early_ends_the_reading_thread() -> None:
    def endless() -> Iterator[int]:
        n = 0
        while True:
            n += 1
            yield n

    ahead = read_ahead(endless(), depth=1)
    assert next(ahead) == 1
    ahead.close()
    assert not any(t.name == "ledger-read-ahead" for t in threading.enumerate())
