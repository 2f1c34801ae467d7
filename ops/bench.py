"""Ledger's benchmark: every scenario of issue 7, ours against the stock eventsourcing recorders.

Usage: ``ops/bench [--quick] [--out PATH] [--pg-url URL] [--events N] [--only 1,4,...]``

The bench creates its own databases (``bench_<run>_…`` on the PostgreSQL server of
``--pg-url``, default the local server; SQLite files in a temporary directory) and
drops them at the end. Each scenario runs against Ledger's store and, where a stock
counterpart makes sense, against ``eventsourcing.postgres.PostgresApplicationRecorder``
or ``eventsourcing.sqlite.SQLiteApplicationRecorder`` in the same run. It prints a
table (figures, ours/stock ratios, the issue's targets and whether they are met) and
writes the same as JSON (``--out``, default ``bench-results.json``).

``--quick`` runs every scenario small (well under a minute): a smoke check of the
bench itself, asserting nothing about speed. The full run loads 1M events per store
unless the machine cannot write them within the load budget, in which case it stops
at a whole block of 100k events and says so in the table and the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from benchlib import reads, service, writes
from benchlib.common import (
    Report,
    Row,
    all_met,
    at_least,
    at_most,
    fmt,
    ledger_process_gc,
    progress,
)
from benchlib.data import (
    Layout,
    ThreadEvents,
    build_long_run,
    build_long_thread,
    load_ours,
    load_stock,
)
from benchlib.databases import (
    LOCAL_SERVER,
    Databases,
    sqlite_synchronous,
    stock_postgres,
    stock_sqlite,
)

from infra.bootstrap import all_projections
from infra.store.eventstore import EventStore
from infra.store.postgres import PostgresBackend
from infra.store.sqlite import SqliteBackend

LONG_THREAD = "thr_bench_long"
IN_SERVE = "projections in ledger serve"
APART = "projections in ledger project"
LONG_RUN = "run_bench_long"
PROJECTION = "thread_summaries"


@dataclass(frozen=True)
class Config:
    mode: str
    events: int
    """Events generated per store for scenarios 5, 6, 8 and 9 (1M in the full run)."""
    load_budget: float
    """Seconds of data loading per store of ours before the bench stops at a whole block."""
    long_thread: int
    write_warmup: float
    write_seconds: float
    write_rounds: int
    writers: tuple[int, ...]
    sqlite_writers: int
    batch_calls: int
    batch_size: int
    replay_samples: int
    replay_warmup: int
    projection_budget: float
    scan_budget: float
    at_requests: int
    at_budget: float
    http_seconds: float
    http_connections: int
    http_turns: int

    @classmethod
    def full(cls) -> Config:
        return cls(
            mode="full",
            events=1_000_000,
            load_budget=150.0,
            long_thread=10_000,
            write_warmup=1.0,
            write_seconds=3.0,
            write_rounds=3,
            writers=(1, 8, 32),
            sqlite_writers=8,
            batch_calls=100,
            batch_size=1000,
            replay_samples=3000,
            replay_warmup=100,
            projection_budget=60.0,
            scan_budget=75.0,
            at_requests=300,
            at_budget=40.0,
            http_seconds=10.0,
            http_connections=32,
            http_turns=64,
        )

    @classmethod
    def quick(cls) -> Config:
        return cls(
            mode="quick",
            events=20_000,
            load_budget=15.0,
            long_thread=1_000,
            write_warmup=0.2,
            write_seconds=1.0,
            write_rounds=1,
            writers=(1, 8, 32),
            sqlite_writers=8,
            batch_calls=3,
            batch_size=1000,
            replay_samples=200,
            replay_warmup=20,
            projection_budget=3.0,
            scan_budget=10.0,
            at_requests=20,
            at_budget=3.0,
            http_seconds=2.0,
            http_connections=32,
            http_turns=64,
        )


class Bench:
    def __init__(self, config: Config, databases: Databases, only: set[str] | None) -> None:
        self.config = config
        self.db = databases
        self.only = only
        self.report = Report()
        self.events = ThreadEvents()
        self.sizes: dict[str, Any] = {}
        self.servers: list[service.Server] = []
        self.cleanups: list[Callable[[], None]] = []
        self.long_thread = False
        self.long_run = 0

    def wants(self, *scenarios: str) -> bool:
        return self.only is None or any(s in self.only for s in scenarios)

    @contextlib.contextmanager
    def scenario(self, label: str) -> Iterator[None]:
        """Run one scenario; a failure is recorded and the bench goes on with the next."""
        progress(f"scenario {label}")
        try:
            yield
        except KeyboardInterrupt:
            raise
        except Exception as error:
            progress(f"FAILED {label}: {type(error).__name__}: {error}")
            traceback.print_exc(file=sys.stderr)
            self.report.failures.append(f"{label}: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        self.events.check()
        if self.wants("1", "3", "4", "5", "6", "7", "8", "9", "load"):
            with self.scenario("PostgreSQL stores"):
                self.postgres()
        if self.wants("2", "5", "6", "8", "load"):
            with self.scenario("SQLite stores"):
                self.sqlite()

    # ----------------------------------------------------------- PostgreSQL

    def postgres(self) -> None:
        cfg = self.config
        ours_url = self.db.postgres("ours")
        stock_url = self.db.postgres("stock")
        backend = _pg_backend(ours_url)
        datastore, recorder = stock_postgres(stock_url, pool_size=max(cfg.writers))
        self.cleanups.append(datastore.close)

        progress(f"loading PostgreSQL stores: up to {cfg.events:,} events each")
        store = EventStore(backend)
        ours = load_ours(store, Layout(cfg.events), self.events, "ours/postgres", cfg.load_budget)
        store.writer.stop()
        backend.close()
        stock = load_stock(
            recorder, Layout(ours.events), self.events, "stock/postgres", cfg.load_budget * 1.5
        )
        self.long_thread = False
        self.long_run = 0
        if self.wants("4", "7", "9"):
            with self.scenario("long run for scenario 7, through the repository"):
                built = time.perf_counter()
                self.long_run = asyncio.run(
                    build_long_run(ours_url, self.db.tmp, LONG_RUN, cfg.long_thread)
                )
                progress(
                    f"long run of {self.long_run:,} events saved through the repository"
                    f" in {time.perf_counter() - built:.1f}s"
                )
            with self.scenario("long thread for scenario 7, through the repository"):
                built = time.perf_counter()
                asyncio.run(build_long_thread(ours_url, self.db.tmp, LONG_THREAD, cfg.long_thread))
                self.long_thread = True
                progress(
                    f"long thread of {cfg.long_thread:,} events saved through the repository"
                    f" in {time.perf_counter() - built:.1f}s"
                )
        self.sizes["postgres"] = {
            "events": ours.events,
            "streams": min(ours.streams, stock.streams),
            "stock_events": stock.events,
            "long_thread_events": cfg.long_thread if self.long_thread else 0,
            "long_run_events": self.long_run,
            "complete": ours.complete and stock.complete,
        }
        self._load_row("postgres", ours, stock)
        vacuumed = time.perf_counter()
        _vacuum(ours_url, "events")
        _vacuum(stock_url, "stored_events")
        _checkpoint(ours_url)  # the load's dirty pages are written now, not during a scenario
        progress(
            f"VACUUM (ANALYZE) and CHECKPOINT of both stores: {time.perf_counter() - vacuumed:.1f}s"
        )
        streams = self.sizes["postgres"]["streams"]

        if self.wants("6"):
            with self.scenario("6 replay since seq, PostgreSQL"):
                self._replay("postgres", _pg_backend(ours_url), recorder, streams)
        if self.wants("8"):
            with self.scenario("8 scan by position, PostgreSQL"):
                self._scan("postgres", _pg_backend(ours_url), recorder)
        if self.wants("5"):
            with self.scenario("5 projection catch-up, PostgreSQL"):
                self._catch_up("postgres", _pg_backend(ours_url))
        if self.wants("1"):
            with self.scenario("1 single-event appends, PostgreSQL"):
                for writers in cfg.writers:
                    self._single("1", "postgres", ours_url, recorder, writers)
        if self.wants("3"):
            with self.scenario("3 batched ingest, PostgreSQL"):
                self._batched(_pg_backend(ours_url), recorder)
        datastore.close()
        if self.wants("4", "7", "9"):
            with self.scenario("4/7/9 ledger serve on PostgreSQL"):
                self._served(ours_url)

    # --------------------------------------------------------------- SQLite

    def sqlite(self) -> None:
        cfg = self.config
        ours_path = self.db.sqlite("ours")
        stock_path = self.db.sqlite("stock")
        default_sync = sqlite_synchronous(self.db.sqlite("probe"))
        self.report.notes.append(
            f"SQLite: both stores use WAL and synchronous=FULL (this build's default in WAL"
            f" mode is {default_sync}; the bench sets FULL on every stock connection)."
        )
        backend = _sqlite_backend(ours_path)
        datastore, recorder = stock_sqlite(stock_path, pool_size=cfg.sqlite_writers)
        self.cleanups.append(datastore.close)
        progress(f"loading SQLite stores: up to {cfg.events:,} events each")
        store = EventStore(backend)
        ours = load_ours(store, Layout(cfg.events), self.events, "ours/sqlite", cfg.load_budget)
        store.writer.stop()
        backend.close()
        stock = load_stock(
            recorder, Layout(ours.events), self.events, "stock/sqlite", cfg.load_budget * 1.5
        )
        self.sizes["sqlite"] = {
            "events": ours.events,
            "streams": min(ours.streams, stock.streams),
            "stock_events": stock.events,
            "complete": ours.complete and stock.complete,
        }
        self._load_row("sqlite", ours, stock)
        if self.wants("6"):
            with self.scenario("6 replay since seq, SQLite"):
                streams = self.sizes["sqlite"]["streams"]
                self._replay("sqlite", _sqlite_backend(ours_path), recorder, streams)
        if self.wants("8"):
            with self.scenario("8 scan by position, SQLite"):
                self._scan("sqlite", _sqlite_backend(ours_path), recorder)
        if self.wants("5"):
            with self.scenario("5 projection catch-up, SQLite"):
                self._catch_up("sqlite", _sqlite_backend(ours_path))
        if self.wants("2"):
            with self.scenario("2 single-event appends, SQLite"):
                self._single("2", "sqlite", str(ours_path), recorder, cfg.sqlite_writers)
        datastore.close()

    # ------------------------------------------------------------ scenarios

    def _load_row(self, db: str, ours: Any, stock: Any) -> None:
        note = (
            f"{ours.events:,} events in {ours.streams:,} streams (stock: {stock.events:,}),"
            " 1,000 per commit"
        )
        if not (ours.complete and stock.complete):
            note += (
                f"; SCALED DOWN: loading stopped at the time budget"
                f" ({self.config.load_budget:.0f}s ours, {self.config.load_budget * 1.5:.0f}s"
                f" stock) instead of the {self.config.events:,} events asked"
            )
        self.report.add(
            Row(
                "load",
                "data generation through the writer (1,000-event commits)",
                db,
                "events/s",
                ours.rate,
                stock.rate,
                note=note,
            )
        )

    def _single(self, scenario: str, db: str, target: str, recorder: Any, writers: int) -> None:
        """Ours and stock in alternating rounds (the machine is noisy): the rate is the median
        of the rounds, the latencies are pooled over them."""
        cfg = self.config

        async def ours_run() -> writes.Throughput:
            backend = _pg_backend(target) if db == "postgres" else _sqlite_backend(Path(target))
            store = EventStore(backend)
            await store.open()
            try:
                return await writes.ours_single(
                    store, self.events, writers, cfg.write_warmup, cfg.write_seconds
                )
            finally:
                await store.close()

        rounds: list[tuple[writes.Throughput, writes.Throughput]] = []
        for _ in range(cfg.write_rounds):
            ours_round = asyncio.run(ours_run())
            stock_round = writes.stock_single(
                recorder, self.events, writers, cfg.write_warmup, cfg.write_seconds
            )
            rounds.append((ours_round, stock_round))
        ours = writes.combine([pair[0] for pair in rounds])
        stock = writes.combine([pair[1] for pair in rounds])
        name = f"single-event appends, {writers} writer{'s' if writers > 1 else ''}"
        rate_target, rate_met, p99_target, p99_met = "", None, "", None
        ratio = ours.rate / stock.rate if stock.rate else None
        if scenario == "1" and writers == 32:
            rate_target = ">= 10,000/s and >= 8x stock"
            rate_met = all_met(at_least(ours.rate, 10_000), at_least(ratio, 8))
            p99_target, p99_met = "<= 15 ms", at_most(ours.p99_ms, 15)
        if scenario == "2":
            rate_target, rate_met = ">= 3x stock", at_least(ratio, 3)
        note = (
            f"median of {cfg.write_rounds} alternating {cfg.write_seconds:.0f}s rounds; per round"
            f" ours {', '.join(fmt(r[0].rate) for r in rounds)},"
            f" stock {', '.join(fmt(r[1].rate) for r in rounds)}"
        )
        if ours.errors or stock.errors:
            note += f"; errors: ours {ours.errors}, stock {stock.errors}"
        self.report.add(
            Row(
                scenario,
                name,
                db,
                "events/s",
                ours.rate,
                stock.rate,
                rate_target,
                rate_met,
                note=note,
                extra={
                    "writers": writers,
                    "rounds": cfg.write_rounds,
                    "seconds_per_round": cfg.write_seconds,
                    "ours_rounds": [r[0].rate for r in rounds],
                    "stock_rounds": [r[1].rate for r in rounds],
                },
            )
        )
        self.report.add(Row(scenario, name, db, "p50 ms", ours.p50_ms, stock.p50_ms))
        self.report.add(
            Row(scenario, name, db, "p99 ms", ours.p99_ms, stock.p99_ms, p99_target, p99_met)
        )

    def _batched(self, backend: PostgresBackend, recorder: Any) -> None:
        cfg = self.config
        store = EventStore(backend)
        # Each side starts from a checkpointed server, so neither pays for a checkpoint
        # the load or the other side's writes set off (the window is a second or two).
        _checkpoint(backend.url)
        try:
            ours = writes.ours_batched(store, self.events, cfg.batch_calls, cfg.batch_size)
        finally:
            store.writer.stop()
            backend.close()
        _checkpoint(backend.url)
        stock = writes.stock_batched(recorder, self.events, cfg.batch_calls, cfg.batch_size)
        name = f"batched ingest, {cfg.batch_size:,} events per call"
        self.report.add(
            Row(
                "3",
                name,
                "postgres",
                "events/s",
                ours.rate,
                stock.rate,
                ">= 75,000/s",
                at_least(ours.rate, 75_000),
                note=(
                    f"{cfg.batch_calls} calls after 2 warm-up calls, each side after a"
                    " CHECKPOINT; ours: one Commit each"
                ),
            )
        )
        for metric, ours_ms, stock_ms in (
            ("p50 ms per call", ours.p50_ms, stock.p50_ms),
            ("p99 ms per call", ours.p99_ms, stock.p99_ms),
        ):
            self.report.add(Row("3", name, "postgres", metric, ours_ms, stock_ms))

    def _replay(self, db: str, backend: Any, recorder: Any, streams: int) -> None:
        cfg = self.config

        async def ours_run() -> tuple[reads.Latencies, reads.Latencies]:
            store = EventStore(backend)
            await store.open()
            try:
                pages = await reads.ours_replay(
                    store, streams, cfg.replay_samples, cfg.replay_warmup, as_json=True
                )
                objects = await reads.ours_replay(
                    store, streams, cfg.replay_samples, cfg.replay_warmup, as_json=False
                )
                return pages, objects
            finally:
                await store.close()

        with ledger_process_gc():
            ours, objects = asyncio.run(ours_run())
            stock = reads.stock_replay(recorder, streams, cfg.replay_samples, cfg.replay_warmup)
        name = "replay since seq, page of 100"
        size = self.sizes[db]
        note = (
            f"{len(ours.samples):,} reads, {size['events']:,} events in {size['streams']:,}"
            " streams; ours EventStore.read_json (the replay endpoint's page, rendered by"
            " the database), stock select_events"
        )
        self.report.add(Row("6", name, db, "p50 ms", ours.p50_ms, stock.p50_ms, note=note))
        self.report.add(
            Row(
                "6",
                name,
                db,
                "p99 ms",
                ours.p99_ms,
                stock.p99_ms,
                "<= 1 ms",
                at_most(ours.p99_ms, 1),
            )
        )
        name += " as RecordedEvent objects"
        note = "informational: EventStore.read_stream, each event a Python object"
        self.report.add(Row("6", name, db, "p50 ms", objects.p50_ms, stock.p50_ms, note=note))
        self.report.add(Row("6", name, db, "p99 ms", objects.p99_ms, stock.p99_ms))

    def _scan(self, db: str, backend: Any, recorder: Any) -> None:
        cfg = self.config
        try:
            ours = reads.ours_scan(backend, cfg.scan_budget)
            wire = reads.ours_wire_scan(backend, cfg.scan_budget)
        finally:
            backend.close()
        stock = reads.stock_scan(recorder, cfg.scan_budget)
        name = "scan by position, decoded (orjson)"
        self._scan_rows(name, db, ours, stock)
        name = "scan by position, feed/export wire pages decoded (orjson)"
        self.report.add(
            Row(
                "8",
                name,
                db,
                "events/s",
                wire.rate,
                stock.rate,
                note="informational: json_pages, every field of the wire format"
                f" (metadata, time, hashes); {wire.events:,} events",
            )
        )

    def _scan_rows(self, name: str, db: str, ours: Any, stock: Any) -> None:
        cfg = self.config
        partial = [side for side, scan in (("ours", ours), ("stock", stock)) if not scan.complete]
        note = f"{ours.events:,} events (ours), {stock.events:,} (stock), pages of 1,000"
        if partial:
            note += f"; stopped at the {cfg.scan_budget:.0f}s budget: {', '.join(partial)}"
        self.report.add(
            Row(
                "8",
                name,
                db,
                "events/s",
                ours.rate,
                stock.rate,
                ">= 400,000/s",
                at_least(ours.rate, 400_000),
                note=note,
            )
        )
        self.report.add(
            Row(
                "8",
                name,
                db,
                "RSS growth after 1/4 MiB",
                ours.rss_quarter_kib / 1024,
                stock.rss_quarter_kib / 1024,
                "constant (<= 16 MiB)",
                at_most(ours.rss_quarter_kib / 1024, 16),
                note=f"peak RSS delta: ours {ours.rss_delta_kib / 1024:.1f} MiB,"
                f" stock {stock.rss_delta_kib / 1024:.1f} MiB",
            )
        )

    def _catch_up(self, db: str, backend: Any) -> None:
        try:
            result = reads.projection_catch_up(backend, PROJECTION, self.config.projection_budget)
        finally:
            backend.close()
        note = f"{result.applied:,} of {result.head:,} events applied in {result.seconds:.1f}s"
        if not result.complete:
            note += f" (stopped at the {self.config.projection_budget:.0f}s budget)"
        self.report.add(
            Row(
                "5",
                f"projection catch-up from zero ({PROJECTION})",
                db,
                "events/s",
                result.rate,
                None,
                ">= 50,000/s",
                at_least(result.rate, 50_000),
                note=note + "; no stock counterpart (the projection is Ledger's)",
            )
        )

    def _served(self, url: str) -> None:
        cfg = self.config
        head = _set_projections_to_head(url)
        self.report.notes.append(
            f"Scenarios 4/7/9: the server's projection positions were set to the head"
            f" ({head:,}) before it started, so it measures a service whose read models are"
            " current rather than one replaying the whole log in the background"
            " (scenario 5 measures catch-up)."
        )
        server = service.Server(url, self.db.tmp)
        self.servers.append(server)
        ready = server.start()
        progress(f"ledger serve ready in {ready:.1f}s (pid {server.pid}, {server.url})")
        try:
            with httpx.Client(base_url=server.url, timeout=30.0) as client:
                warm = []
                if self.long_thread:
                    warm.append((f"/v1/threads/{LONG_THREAD}", cfg.long_thread))
                if self.long_run:
                    warm.append((f"/v1/runs/{LONG_RUN}", self.long_run))
                service.warm_requests(client, warm)
                time.sleep(0.5)
                rss = server.rss_mib()
                size = self.sizes["postgres"]
                stored = size["events"] + size["long_thread_events"] + size["long_run_events"]
                self.report.add(
                    Row(
                        "9",
                        f"service memory, {stored:,}-event store",
                        "postgres",
                        "RSS MiB",
                        rss,
                        None,
                        "< 250 MB",
                        at_most(rss * 1.048576, 250),
                        note="VmRSS of ledger serve after startup and a few requests",
                    )
                )
                if self.wants("7"):
                    self._time_travel(url, client)
                if self.wants("4"):
                    with self.scenario("4 HTTP commands"):
                        self._http_load(server, client, IN_SERVE)
            after = server.rss_mib()
            self.report.add(
                Row(
                    "9",
                    "service memory after the HTTP scenarios",
                    "postgres",
                    "RSS MiB",
                    after,
                    note="informational: after /at and the command load",
                )
            )
        finally:
            server.stop()
        if self.wants("4"):
            with self.scenario("4 HTTP commands, projections in their own process"):
                self._served_apart(url)

    def _served_apart(self, url: str) -> None:
        """Scenario 4 again with ``LEDGER_PROJECTIONS=off`` and a ``ledger project``
        process applying the read models (the deployment for a heavy command load)."""
        projector = service.Projector(url, self.db.tmp)
        server = service.Server(url, self.db.tmp, env={"LEDGER_PROJECTIONS": "off"})
        self.servers.append(server)
        try:
            projector.start()
            server.start()
            with httpx.Client(base_url=server.url, timeout=30.0) as client:
                self._http_load(server, client, APART)
        finally:
            server.stop()
            projector.stop()

    def _time_travel(self, url: str, client: httpx.Client) -> None:
        """Scenario 7 on the long run (the issue's figure), then on the long thread (extra)."""
        cfg = self.config
        streams = []
        if self.long_run:
            streams.append(("runs", LONG_RUN, self.long_run, "run", True))
        if self.long_thread:
            streams.append(("threads", LONG_THREAD, cfg.long_thread, "thread", False))
        for collection, stream_id, count, noun, primary in streams:
            with self.scenario(f"7 /at/{{seq}} on a {noun}"):
                path = f"/v1/{collection}/{stream_id}"
                at = service.time_travel(client, path, count, cfg.at_requests, cfg.at_budget)
                name = f"GET /v1/{collection}/{{id}}/at/{{seq}}, {count:,}-event {noun}"
                note = (
                    f"{len(at.samples)} sequential HTTP requests at random seqs;"
                    f" snapshots stored for the {noun}: {_snapshots_of(url, stream_id)};"
                    f" response body at the last seq {at.last_body_bytes:,} bytes"
                )
                target, met = ("<= 20 ms", at_most(at.p99_ms, 20)) if primary else ("", None)
                extra = {"stream": noun, "events": count}
                self.report.add(
                    Row("7", name, "postgres", "p50 ms", at.p50_ms, note=note, extra=extra)
                )
                self.report.add(
                    Row("7", name, "postgres", "p99 ms", at.p99_ms, None, target, met, extra=extra)
                )

    def _http_load(self, server: service.Server, client: httpx.Client, topology: str) -> None:
        cfg = self.config
        paths = service.prepare_turns(client, cfg.http_turns)
        loads = [
            ("POST /v1/threads (start a thread)", ["/v1/threads"], "{}", "threads"),
            (
                f"POST .../turns/{{turn}}/items ({cfg.http_turns} active turns)",
                paths,
                service.ITEM_BODY,
                "items",
            ),
        ]
        for name, targets, body, label in loads:
            load = service.run_load(
                server.url,
                targets,
                body,
                cfg.http_connections,
                cfg.http_seconds,
                self.db.tmp,
                label,
            )
            title = f"HTTP commands, {cfg.http_connections} connections, {topology}: {name}"
            note = f"{load.tool}, {load.requests:,} requests in {load.seconds:.1f}s"
            if load.errors:
                note += f"; {load.errors} errors or non-2xx answers"
            self.report.add(
                Row(
                    "4",
                    title,
                    "postgres",
                    "commands/s",
                    load.rate,
                    None,
                    ">= 5,000/s",
                    all_met(at_least(load.rate, 5_000), load.errors == 0),
                    note=note,
                    extra={"tool": load.tool, "errors": load.errors},
                )
            )
            self.report.add(
                Row(
                    "4",
                    title,
                    "postgres",
                    "p50 ms",
                    load.p50_ms,
                    None,
                    "<= 5 ms",
                    at_most(load.p50_ms, 5),
                )
            )
            self.report.add(
                Row(
                    "4",
                    title,
                    "postgres",
                    "p99 ms",
                    load.p99_ms,
                    None,
                    "<= 50 ms",
                    at_most(load.p99_ms, 50),
                )
            )

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        for cleanup in self.cleanups:
            with contextlib.suppress(Exception):
                cleanup()


def _pg_backend(url: str) -> PostgresBackend:
    backend = PostgresBackend(url)
    backend.migrate()
    return backend


def _sqlite_backend(path: Path) -> SqliteBackend:
    backend = SqliteBackend(path)
    backend.migrate()
    return backend


def _vacuum(url: str, table: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {table}")  # type: ignore[arg-type]


def _checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _snapshots_of(url: str, stream_id: str) -> int | None:
    """How many snapshots the store holds for a stream (None without a snapshots table)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM snapshots WHERE stream_id = %s", (stream_id,)
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return int(row[0]) if row else 0


def _set_projections_to_head(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        head = int(row[0]) if row else 0
        for projection in all_projections():
            conn.execute(
                "INSERT INTO projection_positions (name, position) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (projection.name, head),
            )
    return head


# ---------------------------------------------------------------- output


def _pressure() -> str | None:
    """The kernel's CPU pressure line (how often runnable tasks waited for a CPU)."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
        "wrk": shutil.which("wrk"),
    }
    info["cpu_pressure"] = _pressure()
    with contextlib.suppress(Exception):
        import psycopg.pq

        info["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["eventsourcing"] = version("eventsourcing")
    return info


def table(rows: list[Row]) -> str:
    header = ("#", "scenario", "db", "metric", "ours", "stock", "ours/stock", "target", "met")
    lines = [
        (
            row.scenario,
            row.name,
            row.backend,
            row.metric,
            fmt(row.ours),
            fmt(row.stock),
            fmt(row.ratio, ratio=True),
            row.target,
            "" if row.met is None else ("yes" if row.met else "NO"),
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {4, 5, 6}

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    out = [render(header), render(tuple("-" * w for w in widths))]
    out.extend(render(line) for line in lines)
    return "\n".join(out)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ops/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario, small (< 1 min)")
    parser.add_argument("--out", default="bench-results.json", help="JSON results file")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("LEDGER_BENCH_DATABASE_URL", LOCAL_SERVER),
        help="admin URL of the PostgreSQL server to create bench databases on",
    )
    parser.add_argument("--events", type=int, help="events per store (default 1M, quick 20k)")
    parser.add_argument("--only", help="comma-separated scenarios to run (1-9, load)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = Config.quick() if args.quick else Config.full()
    if args.events:
        config = replace(config, events=args.events)
    only = {s.strip() for s in args.only.split(",")} if args.only else None

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    random.seed(1)
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    host = machine()
    databases = Databases(args.pg_url)
    server = databases.check_server()
    progress(f"{config.mode} run on {server}; {host['cpus']} CPUs, load {host['loadavg']}")
    bench = Bench(config, databases, only)
    status = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        progress("interrupted: cleaning up")
        status = 130
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        bench.report.failures.append(f"bench: {type(error).__name__}: {error}")
    finally:
        bench.close()
        databases.drop_all()
        progress("databases dropped")
    seconds = time.perf_counter() - started
    report = bench.report
    report.notes.append(
        "Ratios are ours/stock: above 1 is better for rates, below 1 for latencies."
    )
    output = {
        "mode": config.mode,
        "started_at": started_at,
        "seconds": round(seconds, 1),
        "server": server,
        "machine": {**host, "loadavg_at_end": os.getloadavg(), "cpu_pressure_at_end": _pressure()},
        "config": asdict(config),
        "sizes": bench.sizes,
        "rows": [row.as_dict() for row in report.rows],
        "notes": report.notes,
        "failures": report.failures,
    }
    Path(args.out).write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(table(report.rows))
    print()
    for row in report.rows:
        if row.note:
            print(f"[{row.scenario} {row.backend} {row.metric}] {row.note}")
    for note in report.notes:
        print(f"note: {note}")
    for failure in report.failures:
        print(f"FAILED: {failure}")
    print(
        f"{config.mode} run: {seconds:.0f}s, load average {host['loadavg'][0]:.1f} at start,"
        f" {os.getloadavg()[0]:.1f} at end; results in {args.out}"
    )
    if status:
        return status
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
