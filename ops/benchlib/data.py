"""Realistic thread events, generated fast, for our store and the stock recorders.

Every stream is a thread: ``ThreadStarted``, then turns of ``TurnStarted``, six
``ItemAdded`` (tool calls with a small payload), ``UsageRecorded`` and
``TurnCompleted``. Data shapes come from the domain's own event classes through
Ledger's :class:`~infra.mapper.EventMapper` (a template per type), so a
generated stream folds into a valid :class:`~domain.thread.Thread`; a sample is
checked by mapping it back to domain events before anything is written.

Layout of a bulk load: ``events / 100`` streams of 100 events each, in blocks of
1,000 streams; within a block, streams advance in rounds of 10 events, 100
streams per commit (1,000 events per commit), so each stream's events are spread
over the log as concurrent agents would leave them. The long run (and the long
thread) of scenario 7 are built differently: by the domain's own methods, one save
through the repository per command, as the HTTP commands would.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from benchlib.common import progress
from domain.base import fold
from domain.executor import Executor
from domain.thread import Thread, Usage
from infra.mapper import EventMapper
from infra.store.eventstore import EventStore
from infra.store.hashing import canonical_json
from infra.store.records import (
    DEFAULT_TENANT,
    Commit,
    CommitResult,
    NewEvent,
    RecordedEvent,
    StreamAppend,
)

TENANT = DEFAULT_TENANT
STREAM_TYPE = "thread"
EVENTS_PER_STREAM = 100
ROUND = 10
STREAMS_PER_COMMIT = 100
BLOCK_STREAMS = 1000
ITEMS_PER_TURN = 6
TURN_LENGTH = ITEMS_PER_TURN + 3
OUTPUT = "collected 42 items\n" + "." * 42 + "\n42 passed in 0.84s\n"


def stream_name(index: int) -> str:
    return f"thr_bench_{index:06d}"


def _templates(mapper: EventMapper) -> dict[str, dict[str, Any]]:
    """Each event type's data as the mapper writes it, from a sample domain event."""
    now = datetime.now(UTC)
    envelope = {"originator_id": "thr_sample", "originator_version": 1, "timestamp": now}
    samples = [
        Thread.ThreadStarted(
            **envelope,
            originator_topic=get_topic(Thread),
            workspace=None,
            title="sample",
            metadata={},
        ),
        Thread.TurnStarted(**envelope, turn_id="turn_1"),
        Thread.ItemAdded(**envelope, turn_id="turn_1", item_id="item_1", kind="tool_call"),
        Thread.UsageRecorded(**envelope, turn_id="turn_1"),
        Thread.TurnCompleted(**envelope, turn_id="turn_1"),
    ]
    return {
        type(sample).__name__: orjson.loads(mapper.to_new_event(sample, {}).data)
        for sample in samples
    }


class ThreadEvents:
    """Builds the events of bench threads by stream index and seq."""

    def __init__(self) -> None:
        self.mapper = EventMapper((Thread, Executor))
        self.templates = _templates(self.mapper)

    def kind(self, seq: int) -> str:
        if seq == 1:
            return "ThreadStarted"
        step = (seq - 2) % TURN_LENGTH
        if step == 0:
            return "TurnStarted"
        if step <= ITEMS_PER_TURN:
            return "ItemAdded"
        return "UsageRecorded" if step == ITEMS_PER_TURN + 1 else "TurnCompleted"

    def data(self, index: int, seq: int) -> tuple[str, dict[str, Any]]:
        kind = self.kind(seq)
        base = self.templates[kind]
        if kind == "ThreadStarted":
            return kind, {
                **base,
                "title": f"bench thread {index}",
                "workspace": None,
                "metadata": {"agent": "bench", "index": index},
            }
        turn = f"turn_{(seq - 2) // TURN_LENGTH + 1}"
        step = (seq - 2) % TURN_LENGTH
        if kind == "TurnStarted":
            return kind, {
                **base,
                "turn_id": turn,
                "input": "Run the unit tests and fix whatever fails in the parser module.",
            }
        if kind == "ItemAdded":
            return kind, {
                **base,
                "turn_id": turn,
                "item_id": f"{turn}_item_{step}",
                "kind": "command_execution",
                "tool_name": "exec_shell",
                "status": "completed",
                "payload": {"command": "pytest -q tests/unit", "exit_code": 0, "output": OUTPUT},
            }
        if kind == "UsageRecorded":
            return kind, {
                **base,
                "turn_id": turn,
                "input_tokens": 1200 + seq,
                "output_tokens": 300,
                "reasoning_tokens": 150,
                "cost_usd": 0.0125,
                "model": "bench-model",
            }
        return kind, {**base, "turn_id": turn, "duration_ms": 5400}

    def new_event(self, index: int, seq: int) -> NewEvent:
        kind, data = self.data(index, seq)
        metadata = {"actor": "bench", "causation_id": None, "correlation_id": f"req_{index}_{seq}"}
        return NewEvent(type=kind, data=canonical_json(data), metadata=canonical_json(metadata))

    def stored_event(self, stream_id: str, index: int, seq: int) -> StoredEvent:
        kind, data = self.data(index, seq)
        return StoredEvent(
            originator_id=stream_id, originator_version=seq, topic=kind, state=canonical_json(data)
        )

    def check(self, count: int = 2 * TURN_LENGTH + 1) -> None:
        """Fold a sample stream through the mapper: the shapes match the domain's events."""
        now = datetime.now(UTC)
        records = []
        for seq in range(1, count + 1):
            new = self.new_event(0, seq)
            records.append(
                RecordedEvent(
                    tenant=TENANT,
                    stream_type=STREAM_TYPE,
                    stream_id="thr_check",
                    seq=seq,
                    position=seq,
                    type=new.type,
                    class_version=new.class_version,
                    data=new.data,
                    metadata=new.metadata,
                    recorded_at=now,
                    prev_hash="",
                    hash="",
                )
            )
        thread = fold([self.mapper.to_domain_event(record) for record in records])
        if not isinstance(thread, Thread) or thread.version != count:
            raise RuntimeError(f"generated events do not fold into a thread: {thread!r}")


@dataclass(frozen=True)
class Layout:
    """``events`` events in streams of 100, in blocks of up to 1,000 streams (100,000 events).

    Within a block, streams advance in rounds of 10 events, 100 streams per commit, so
    a stream's events are spread over its block. A load may stop after any block and
    every stream written is complete.
    """

    events: int

    @property
    def streams(self) -> int:
        return max(1, self.events // EVENTS_PER_STREAM)

    def blocks(self) -> Iterator[list[list[tuple[int, int]]]]:
        """Per block, its commits; per commit, (stream index, first seq) of 10-event slices."""
        for block in range(0, self.streams, BLOCK_STREAMS):
            last_stream = min(self.streams, block + BLOCK_STREAMS)
            commits = []
            for round_start in range(1, EVENTS_PER_STREAM + 1, ROUND):
                for first in range(block, last_stream, STREAMS_PER_COMMIT):
                    last = min(last_stream, first + STREAMS_PER_COMMIT)
                    commits.append([(index, round_start) for index in range(first, last)])
            yield commits


@dataclass
class Loaded:
    events: int
    streams: int
    seconds: float
    complete: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def load_ours(
    store: EventStore, layout: Layout, events: ThreadEvents, label: str, budget: float
) -> Loaded:
    """Append the layout through the store's writer (up to 3 commits in flight), block by
    block, stopping after the block during which ``budget`` seconds ran out."""
    started = time.perf_counter()
    window: deque[Future[CommitResult]] = deque()
    written = streams = 0
    next_report = started + 10
    for commits in layout.blocks():
        for batch in commits:
            parts = tuple(
                StreamAppend(
                    TENANT,
                    STREAM_TYPE,
                    stream_name(index),
                    first - 1,
                    tuple(events.new_event(index, seq) for seq in range(first, first + ROUND)),
                )
                for index, first in batch
            )
            window.append(store.writer.submit(Commit(parts=parts)))
            written += len(parts) * ROUND
            if len(window) >= 3:
                window.popleft().result()
            if time.perf_counter() > next_report:
                progress(f"  {label}: {written:,} events written")
                next_report += 10
        while window:
            window.popleft().result()
        streams = written // EVENTS_PER_STREAM
        if time.perf_counter() - started > budget:
            break
    seconds = time.perf_counter() - started
    return Loaded(written, streams, seconds, written >= layout.streams * EVENTS_PER_STREAM)


def _thread_step(thread: Thread, turn_id: str, step: int, now: datetime) -> None:
    """Step ``step`` of a turn: start, six tool items, usage, end (the domain's own methods)."""
    if step == 0:
        thread.start_turn(
            turn_id=turn_id,
            input="Run the unit tests and fix whatever fails.",
            executor_id=None,
            auto_approve=False,
            trust_mode=False,
            now=now,
        )
    elif step <= ITEMS_PER_TURN:
        thread.add_item(
            turn_id=turn_id,
            item_id=f"{turn_id}_item_{step}",
            tool_name="exec_shell",
            kind=None,
            status="completed",
            payload={"command": "pytest -q", "exit_code": 0, "output": OUTPUT},
            now=now,
        )
    elif step == ITEMS_PER_TURN + 1:
        usage = Usage(
            input_tokens=1200,
            output_tokens=300,
            reasoning_tokens=150,
            cost_usd=0.0125,
            model="bench-model",
        )
        thread.record_usage(turn_id=turn_id, usage=usage, now=now)
    else:
        thread.end_turn(turn_id=turn_id, status="completed", error=None, now=now)


async def build_long_thread(url: str, workdir: Path, thread_id: str, count: int) -> int:
    """One thread of ``count`` events built by the domain and saved through Ledger's own
    repository (about 100 events per save), so it gets whatever a real long thread gets
    on the way (snapshots, for one). Returns the events written."""
    from commands.ports import CommandContext
    from infra.bootstrap import Ledger
    from infra.config import Settings

    ledger = Ledger(Settings(database_url=url, workspace=workdir))
    ledger.backend.migrate()
    await ledger.store.open()
    running = asyncio.all_tasks()  # the store's own (pool workers): not side jobs
    context = CommandContext(tenant=TENANT, actor="bench", correlation_id="bench-long-thread")
    clock = datetime.now(UTC)
    tick = timedelta(milliseconds=250)
    try:
        thread = Thread(
            id=thread_id, workspace=None, title="long thread", metadata={}, timestamp=clock
        )
        written = unsaved = 1
        while written < count:
            turn_id = f"turn_{(written - 1) // TURN_LENGTH + 1}"
            clock += tick
            _thread_step(thread, turn_id, (written - 1) % TURN_LENGTH, clock)
            written += 1
            unsaved += 1
            if unsaved >= 100 and (written - 1) % TURN_LENGTH == 0:
                await ledger.repository.save(thread, context, {})
                unsaved = 0
                # Go on from a fresh load, as the next command would (the saved object may
                # still be read by side jobs, such as a snapshot write).
                loaded = await ledger.repository.load(TENANT, thread_id)
                if not isinstance(loaded, Thread):
                    raise RuntimeError(f"{thread_id} did not load back as a thread: {loaded!r}")
                thread = loaded
        if unsaved:
            await ledger.repository.save(thread, context, {})
        side_jobs = [  # e.g. snapshot writes, which run on threads off the event loop
            task
            for task in asyncio.all_tasks() - running
            if getattr(task.get_coro(), "__name__", "") == "to_thread"
        ]
        if side_jobs:
            await asyncio.wait(side_jobs, timeout=10)
    finally:
        await ledger.store.close()
    return written


RUN_NODES = 100
RUN_CHAINS = 10
FEEDBACK_ROUNDS = 12
CHUNKS_PER_FEEDBACK = 6


def long_run_workflow(nodes: int = RUN_NODES, chains: int = RUN_CHAINS) -> dict[str, Any]:
    """``chains`` lines of tasks, each node's ``out`` port bound to the next one's input."""
    spec: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for index in range(nodes):
        ui: dict[str, Any] = {"outputPorts": [{"key": "out", "binding": {"path": "/results/step"}}]}
        if index >= chains:
            ui["inputPorts"] = [{"key": "in", "binding": {"path": "/parameters/previous_step"}}]
            source = {"node": f"n{index - chains}", "port": "out"}
            edges.append({"source": source, "target": {"node": f"n{index}", "port": "in"}})
        spec.append({"id": f"n{index}", "type": "task", "parameters": {"index": index}, "ui": ui})
    return {"id": "wf_bench", "nodes": spec, "edges": edges}


async def build_long_run(url: str, workdir: Path, run_id: str, count: int) -> int:
    """One run of about ``count`` events, driven as a worker would over HTTP: claims, acks,
    feedback (a result delta and log chunks each), usage and results, one repository save
    per command. ``count`` / 100 nodes of about 100 events each; returns the events written."""
    from commands.ports import CommandContext
    from domain.run import Run
    from domain.run_state import NodeUsage
    from domain.workflow import definition_hash
    from infra.bootstrap import Ledger
    from infra.config import Settings

    ledger = Ledger(Settings(database_url=url, workspace=workdir))
    ledger.backend.migrate()
    await ledger.store.open()
    running = asyncio.all_tasks()
    context = CommandContext(tenant=TENANT, actor="bench", correlation_id="bench-long-run")
    clock = datetime.now(UTC)
    tick = timedelta(milliseconds=50)
    nodes = max(1, count // 100)
    flow = long_run_workflow(nodes, min(RUN_CHAINS, nodes))
    dispatches = iter(range(1, 10**9))

    async def save(run: Run) -> None:
        await ledger.repository.save(run, context, {})

    try:
        run = Run.create(
            run_id=run_id,
            client_id="bench",
            executor_id="bench-executor",
            workspace=None,
            automation_id="bench-automation",
            trigger={"kind": "bench"},
            max_attempts=1,
            workflow=flow,
            definition_hash=definition_hash(flow),
            now=clock,
        )
        await save(run)
        while not run.terminal:
            clock += tick
            claimed = run.claim(
                worker_id="bench-worker",
                limit=RUN_CHAINS,
                ack_timeout=timedelta(seconds=30),
                new_dispatch_id=lambda: f"dsp_{next(dispatches)}",
                now=clock,
            )
            if not claimed:
                raise RuntimeError(f"{run_id}: nothing to claim while {run.status}")
            await save(run)
            for task_id in claimed:
                await _drive_node(run, task_id, clock, save, NodeUsage)
                clock += tick
    finally:
        await ledger.snapshots.drain()
        side_jobs = [t for t in asyncio.all_tasks() - running if not t.done()]
        if side_jobs:
            await asyncio.wait(side_jobs, timeout=10)
        await ledger.store.close()
    return run.version


async def _drive_node(run: Any, task_id: str, now: datetime, save: Any, usage_of: Any) -> None:
    dispatch_id = str(run.nodes[task_id].dispatch_id)
    run.acknowledge(
        task_id=task_id, dispatch_id=dispatch_id, worker_id="bench-worker", now=now, launching=False
    )
    await save(run)
    for step in range(1, FEEDBACK_ROUNDS + 1):
        chunks = [
            {"channel": "stdout", "text": f"{task_id} step {step} line {line}: " + OUTPUT}
            for line in range(CHUNKS_PER_FEEDBACK)
        ]
        run.record_feedback(
            task_id=task_id,
            dispatch_id=dispatch_id,
            feedback_id=f"{task_id}_fb_{step}",
            stage="working",
            progress=step / FEEDBACK_ROUNDS,
            message=f"step {step} of {FEEDBACK_ROUNDS}",
            metadata={"results": {"step": step}},
            metrics={"lines": step * CHUNKS_PER_FEEDBACK},
            chunks=chunks,
            usage=None,
            now=now,
        )
        await save(run)
    run.record_result(
        task_id=task_id,
        dispatch_id=dispatch_id,
        status="succeeded",
        result=None,
        error=None,
        metadata={"exit_code": 0},
        artifacts=[],
        duration_ms=1200,
        usage=usage_of(input_tokens=1200, output_tokens=300, cost_usd=0.0125, model="bench"),
        now=now,
    )
    await save(run)


def load_stock(
    recorder: Any, layout: Layout, events: ThreadEvents, label: str, budget: float
) -> Loaded:
    """The same events through the stock recorder, 1,000 per ``insert_events`` call, block
    by block, stopping after the block during which ``budget`` seconds ran out."""
    started = time.perf_counter()
    written = 0
    next_report = started + 10
    for commits in layout.blocks():
        for batch in commits:
            stored = [
                events.stored_event(stream_name(index), index, seq)
                for index, first in batch
                for seq in range(first, first + ROUND)
            ]
            recorder.insert_events(stored)
            written += len(stored)
            if time.perf_counter() > next_report:
                progress(f"  {label}: {written:,} events written")
                next_report += 10
        if time.perf_counter() - started > budget:
            break
    seconds = time.perf_counter() - started
    complete = written >= layout.streams * EVENTS_PER_STREAM
    return Loaded(written, written // EVENTS_PER_STREAM, seconds, complete)
