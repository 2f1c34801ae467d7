"""Reading the next page while the caller works on this one.

A page of the log is rendered by the database (another process, on another core)
and then written or decoded here; done in turn, each side waits for the other.
:func:`read_ahead` reads on a thread at most ``depth`` pages ahead, so memory
still holds a bounded number of pages. The database driver releases the GIL
while it waits, so the two overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def read_ahead(pages: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """The pages of ``pages`` in order, read up to ``depth`` ahead on a thread.

    An error while reading is raised here, in order; closing the returned iterator
    early stops the reading thread after the page it is on.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if not _put(ready, page, stop):
                    return
            _put(ready, _DONE, stop)
        except BaseException as error:  # handed to the consumer, raised there
            _put(ready, error, stop)

    thread = threading.Thread(target=produce, name="ledger-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _put(ready: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
