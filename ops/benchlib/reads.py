"""Scenarios 5, 6 and 8: projection catch-up, replay since a seq, and the scan by position."""

from __future__ import annotations

import contextlib
import ctypes
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from benchlib.common import Deadline, ledger_process_gc, percentile, rss_kib
from benchlib.data import EVENTS_PER_STREAM, TENANT, stream_name
from infra.bootstrap import all_projections
from infra.log_export import json_pages, record_pages
from infra.projection_runner import ProjectionRunner
from infra.store.backend import Backend
from infra.store.eventstore import EventStore
from infra.store.json_pages import StreamSlice

PAGE = 100
SCAN_PAGE = 1000


# scenario 5 -------------------------------------------------------------------


@dataclass
class CatchUp:
    applied: int
    seconds: float
    head: int
    complete: bool

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds else 0.0


def projection_catch_up(backend: Backend, name: str, budget: float) -> CatchUp:
    """Run one projection's :class:`ProjectionRunner` from zero toward the head, within a budget.

    ``ProjectionRunner.catch_up`` is ``run_once`` until the head; it is called here batch by
    batch only so a slow projection can be stopped at the budget (and reported as partial).
    """
    projection = next(p for p in all_projections() if p.name == name)
    runner = ProjectionRunner(backend, projection)
    runner.ensure_tables()
    head = backend.max_position()
    assert runner.position() == 0, "the projection must start from zero"
    deadline = Deadline(budget)
    applied = 0
    while runner.position() < head and not deadline.expired:
        applied += runner.run_once()
    return CatchUp(applied, deadline.elapsed, head, runner.position() >= head)


# scenario 6 -------------------------------------------------------------------


@dataclass
class Latencies:
    samples: list[float]
    events: int

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000


def _targets(streams: int, count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [
        (stream_name(rng.randrange(streams)), rng.randrange(EVENTS_PER_STREAM))
        for _ in range(count)
    ]


async def ours_replay(
    store: EventStore, streams: int, count: int, warmup: int, *, as_json: bool
) -> Latencies:
    """A page of 100 after a random seq of a random stream, one at a time: as the replay
    endpoint reads it (``as_json``: ``EventStore.read_json``, the page in the wire format
    rendered by the database) or as ``RecordedEvent`` objects (``EventStore.read_stream``)."""
    samples: list[float] = []
    events = 0
    for index, (stream, after) in enumerate(_targets(streams, count + warmup, 6)):
        started = time.perf_counter()
        if as_json:
            where = StreamSlice(TENANT, stream, after_seq=after, limit=PAGE)
            length = (await store.read_json(where)).count
        else:
            length = len(await store.read_stream(TENANT, stream, after_seq=after, limit=PAGE))
        elapsed = time.perf_counter() - started
        assert length == EVENTS_PER_STREAM - after, (stream, after, length)
        if index >= warmup:
            samples.append(elapsed)
            events += length
    return Latencies(samples, events)


def stock_replay(recorder: Any, streams: int, count: int, warmup: int) -> Latencies:
    """``recorder.select_events(id, gt=random, limit=100)`` on the same streams."""
    samples: list[float] = []
    events = 0
    for index, (stream, after) in enumerate(_targets(streams, count + warmup, 6)):
        started = time.perf_counter()
        page = recorder.select_events(stream, gt=after, limit=PAGE)
        elapsed = time.perf_counter() - started
        assert len(page) == EVENTS_PER_STREAM - after, (stream, after, len(page))
        if index >= warmup:
            samples.append(elapsed)
            events += len(page)
    return Latencies(samples, events)


# scenario 8 -------------------------------------------------------------------


class RssSampler:
    """Samples this process's RSS every 20 ms on a thread; keeps the peak."""

    def __init__(self) -> None:
        self.peak = rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib())


@dataclass
class Scan:
    events: int
    seconds: float
    rss_delta_kib: int
    rss_quarter_kib: int
    """RSS growth between a quarter of the scan and its end (0 when memory is constant)."""
    complete: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _trim_heap() -> None:
    """Hand freed heap back to the OS, so each scan starts level."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _scan(pages: Iterator[list[dict[str, Any]]], total: int, budget: float) -> Scan:
    """Consume ``pages`` with the collector set as in a ledger process, ours and stock
    alike (:func:`benchlib.common.ledger_process_gc`, which collects first)."""
    with ledger_process_gc():
        _trim_heap()
        return _consume(pages, total, budget)


def _consume(pages: Iterator[list[dict[str, Any]]], total: int, budget: float) -> Scan:
    base = rss_kib()
    quarter: int | None = None
    events = 0
    deadline = Deadline(budget)
    sink = None
    with RssSampler() as sampler:
        for page in pages:
            sink = page
            events += len(sink)
            if quarter is None and events >= total // 4:
                quarter = sampler.peak
            if deadline.expired:
                break
        seconds = deadline.elapsed
    del sink
    complete = events >= total
    return Scan(
        events,
        seconds,
        sampler.peak - base,
        max(0, sampler.peak - (quarter or base)),
        complete,
    )


def _stock_dict(notification: Any) -> dict[str, Any]:
    return {
        "position": notification.id,
        "stream_id": notification.originator_id,
        "seq": notification.originator_version,
        "type": notification.topic,
        "data": orjson.loads(notification.state),
    }


def ours_scan(backend: Backend, budget: float) -> Scan:
    """:func:`infra.log_export.record_pages` in pages of 1,000: each event a dict of its
    position, tenant, stream type and id, seq, type and data (decoded by ``orjson``),
    the next page read while this one is decoded."""
    total = backend.max_position()
    return _scan(record_pages(backend, page_size=SCAN_PAGE, upto=total), total, budget)


def ours_wire_scan(backend: Backend, budget: float) -> Scan:
    """Pages of 1,000 in the wire format as the database renders them for the feed and
    the export (:func:`infra.log_export.json_pages`, the next page read while this one
    is decoded), each decoded with one ``orjson.loads`` into a list of event dicts with
    every field of the wire format."""
    total = backend.max_position()
    pages = json_pages(backend, page_size=SCAN_PAGE, upto=total, with_tenant=False, separator=",")
    return _scan((orjson.loads(page.as_array()) for page in pages), total, budget)


def stock_scan(recorder: Any, budget: float) -> Scan:
    """``select_notifications`` pages of 1,000, each notification a dict with its state
    decoded by ``orjson.loads``."""
    total = recorder.max_notification_id() or 0

    def pages() -> Any:
        start = 1
        while True:
            page = recorder.select_notifications(start, SCAN_PAGE)
            if not page:
                return
            yield [_stock_dict(notification) for notification in page]
            start = page[-1].id + 1

    return _scan(pages(), total, budget)
