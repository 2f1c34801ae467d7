"""Scenarios 1-3: single-event appends with concurrent writers, and batched ingest.

Ours: asyncio tasks awaiting :meth:`EventStore.append` (the append port, group
commit underneath), one event per call, each writer on its own stream at its
known version (optimistic concurrency as commands do). Stock: threads calling
the library recorder's ``insert_events([StoredEvent])``, which is how the stock
recorder is used. Figures cover a measured window after a warm-up: events/s of
appends acknowledged in the window, and p50/p99 of their latencies.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent

from benchlib.common import ledger_process_gc, percentile
from benchlib.data import TENANT, ThreadEvents
from infra.store.eventstore import EventStore
from infra.store.records import Commit, NewEvent, StreamAppend

STREAM_TYPE = "bench"
_runs = itertools.count(1)


@dataclass
class Throughput:
    events: int
    seconds: float
    latencies: list[float]
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


def combine(rounds: list[Throughput]) -> Throughput:
    """Several rounds as one: the median round's rate, every round's latencies."""
    ordered = sorted(rounds, key=lambda r: r.rate)
    middle = ordered[len(ordered) // 2]
    latencies = [value for r in rounds for value in r.latencies]
    return Throughput(middle.events, middle.seconds, latencies, sum(r.errors for r in rounds))


def _sample_event(events: ThreadEvents) -> NewEvent:
    return events.new_event(1, 3)  # an ItemAdded with its payload


async def ours_single(
    store: EventStore, events: ThreadEvents, writers: int, warmup: float, duration: float
) -> Throughput:
    """``writers`` tasks, each appending one event at a time to its own stream."""
    event = _sample_event(events)
    run = next(_runs)
    loop = asyncio.get_running_loop()
    window_start = loop.time() + warmup
    window_end = window_start + duration
    latencies: list[float] = []
    errors = 0

    async def writer(index: int) -> None:
        nonlocal errors
        stream = f"bench_w{run}_{writers}_{index}"
        version = 0
        while True:
            started = time.perf_counter()
            now = loop.time()
            if now >= window_end:
                return
            try:
                await store.append(TENANT, STREAM_TYPE, stream, version, [event])
            except Exception:
                errors += 1
                return
            version += 1
            if now >= window_start and loop.time() <= window_end:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(writer(i) for i in range(writers)))
    return Throughput(len(latencies), duration, latencies, errors)


def stock_single(
    recorder: Any, events: ThreadEvents, writers: int, warmup: float, duration: float
) -> Throughput:
    """``writers`` threads, each inserting one stored event at a time for its own originator."""
    sample = _sample_event(events)
    run = next(_runs)
    window_start = time.perf_counter() + warmup
    window_end = window_start + duration
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors = [0] * writers

    def writer(index: int) -> None:
        originator = f"bench_s{run}_{writers}_{index}"
        version = 1
        mine = latencies[index]
        while True:
            started = time.perf_counter()
            if started >= window_end:
                return
            try:
                recorder.insert_events([StoredEvent(originator, version, sample.type, sample.data)])
            except Exception:
                errors[index] += 1
                return
            version += 1
            finished = time.perf_counter()
            if started >= window_start and finished <= window_end:
                mine.append(finished - started)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = [value for values in latencies for value in values]
    return Throughput(len(merged), duration, merged, sum(errors))


def ours_batched(store: EventStore, events: ThreadEvents, calls: int, size: int) -> Throughput:
    """One caller appending commits of ``size`` events (one new stream each), with the
    collector set as in ``ledger import`` (:func:`benchlib.common.ledger_process_gc`)."""
    batch = tuple(events.new_event(7, seq) for seq in range(2, size + 2))
    run = next(_runs)
    latencies: list[float] = []
    with ledger_process_gc():
        for call in range(calls + 2):
            part = StreamAppend(TENANT, STREAM_TYPE, f"bench_b{run}_{call}", 0, batch)
            started = time.perf_counter()
            store.writer.append_sync(Commit(parts=(part,)))
            if call >= 2:  # two warm-up calls
                latencies.append(time.perf_counter() - started)
    return Throughput(calls * size, sum(latencies), latencies)


def stock_batched(recorder: Any, events: ThreadEvents, calls: int, size: int) -> Throughput:
    """``insert_events`` with ``size`` stored events per call (one new originator each),
    with the collector set as for ours."""
    sample = [events.new_event(7, seq) for seq in range(2, size + 2)]
    run = next(_runs)
    latencies: list[float] = []
    with ledger_process_gc():
        for call in range(calls + 2):
            originator = f"bench_sb{run}_{call}"
            started = time.perf_counter()
            recorder.insert_events(
                [StoredEvent(originator, v, e.type, e.data) for v, e in enumerate(sample, start=1)]
            )
            if call >= 2:
                latencies.append(time.perf_counter() - started)
    return Throughput(calls * size, sum(latencies), latencies)
