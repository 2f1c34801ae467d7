"""Histories recorded through Ledger's own handlers, for the usage and export tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from commands.ports import CommandContext
from commands.run_commands import AcknowledgeDispatch, StartRun
from commands.run_handlers import RunHandlers
from commands.thread_commands import (
    AddItem,
    CompleteTurn,
    DecideApproval,
    RecordUsage,
    RequestApproval,
    SetItemStatus,
    StartThread,
    StartTurn,
)
from commands.thread_handlers import ThreadHandlers
from infra.bootstrap import Ledger
from infra.workspace import WorkspaceRoot


@dataclass
class ManualClock:
    """A clock the test moves; each reading advances it a millisecond, as real time would."""

    now: datetime = field(default_factory=lambda: datetime(2024, 3, 1, 23, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


def context(tenant: str = "default", executor_id: str | None = None) -> CommandContext:
    return CommandContext(
        tenant=tenant, actor="tester", correlation_id="corr-1", executor_id=executor_id
    )


def handlers_with_clock(ledger: Ledger, clock: ManualClock) -> ThreadHandlers:
    return ThreadHandlers(ledger.repository, clock, WorkspaceRoot(ledger.settings.workspace))


def usage(
    input_tokens: int,
    output_tokens: int,
    reasoning: int = 0,
    replay: int = 0,
    cost: float = 0.0,
    model: str | None = None,
) -> RecordUsage:
    return RecordUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        reasoning_replay_tokens=replay,
        cost_usd=cost,
        model=model,
    )


def day(text: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(text).replace(hour=hour, tzinfo=UTC)


async def record_usage_history(ledger: Ledger, clock: ManualClock) -> int:
    """Two threads, four turns, one turn's usage replaced a day later; returns the last position.

    ====== ==== ========== ===== =========================== ======
    thread turn day        model tokens (in, out, rsn, rpl)  cost
    ====== ==== ========== ===== =========================== ======
    thr_a  t1   2024-03-01 m-b   20, 10, 4, 2 (replaced)     1.0
    thr_a  t2   2024-03-02 m-a   100, 50, 0, 0               0.25
    thr_b  t1   2024-03-02 none  1, 1, 0, 0                  0.0
    thr_b  t2   2024-03-03 m-a   3, 0, 0, 0                  0.125
    ====== ==== ========== ===== =========================== ======
    """
    threads = handlers_with_clock(ledger, clock)
    ctx = context()
    clock.set(day("2024-03-01", hour=23))
    await threads.start_thread(StartThread(thread_id="thr_a"), ctx)
    await threads.start_turn("thr_a", StartTurn(turn_id="t1"), ctx)
    await threads.record_usage("thr_a", "t1", usage(10, 5, 2, 1, 0.5, "m-a"), ctx)
    clock.set(day("2024-03-02", hour=0))  # the turn ran past midnight: its day stays the first
    await threads.record_usage("thr_a", "t1", usage(20, 10, 4, 2, 1.0, "m-b"), ctx)
    await threads.complete_turn("thr_a", "t1", CompleteTurn(), ctx)
    clock.set(day("2024-03-02"))
    await threads.start_turn("thr_a", StartTurn(turn_id="t2"), ctx)
    await threads.record_usage("thr_a", "t2", usage(100, 50, cost=0.25, model="m-a"), ctx)
    await threads.start_thread(StartThread(thread_id="thr_b"), ctx)
    await threads.start_turn("thr_b", StartTurn(turn_id="t1"), ctx)
    await threads.record_usage("thr_b", "t1", usage(1, 1), ctx)
    await threads.complete_turn("thr_b", "t1", CompleteTurn(), ctx)
    clock.set(day("2024-03-03"))
    await threads.start_turn("thr_b", StartTurn(turn_id="t2"), ctx)
    saved = await threads.record_usage("thr_b", "t2", usage(3, 0, cost=0.125, model="m-a"), ctx)
    return saved.position


async def record_mixed_history(
    ledger: Ledger, clock: ManualClock, threads: int = 3, start: int = 0
) -> int:
    """Threads with turns, items, approvals (decided by a person and by policy), usage and
    heartbeats, over several days; returns the last position."""
    handlers = handlers_with_clock(ledger, clock)
    ctx = context()
    position = 0
    for n in range(start, start + threads):
        thread_id = f"thr_{n}"
        clock.set(day(f"2024-04-0{n + 1}", hour=9))
        runtime = context(executor_id=f"rt-{n}")
        await handlers.start_thread(
            StartThread(thread_id=thread_id, title=f"thread {n}", metadata={"n": n}), ctx
        )
        await handlers.start_turn(
            thread_id, StartTurn(turn_id="t1", input="fix ✓", executor_id=f"rt-{n}"), runtime
        )
        await handlers.add_item(
            thread_id, "t1", AddItem(item_id="i1", tool_name="exec_shell", payload={"x": n}), ctx
        )
        await handlers.set_item_status(
            thread_id, "t1", "i1", SetItemStatus(status="completed"), ctx
        )
        await handlers.add_item(thread_id, "t1", AddItem(item_id="i2", kind="message"), ctx)
        await handlers.request_approval(
            thread_id, RequestApproval(approval_id="a1", turn_id="t1", item_id="i1"), ctx
        )
        if n % 2 == 0:
            await handlers.decide_approval(
                thread_id, "a1", DecideApproval(turn_id="t1", decision="approve"), ctx
            )
        await handlers.record_usage(thread_id, "t1", usage(10 * n, 5, 1, 0, 0.5, "m-a"), ctx)
        await handlers.record_usage(thread_id, "t1", usage(11 * n, 6, 1, 1, 0.75, "m-a"), ctx)
        await ledger.executors.heartbeat(f"rt-{n}", runtime)
        await handlers.complete_turn(thread_id, "t1", CompleteTurn(status="completed"), ctx)
        await handlers.start_turn(thread_id, StartTurn(turn_id="t2", auto_approve=True), ctx)
        await handlers.request_approval(
            thread_id, RequestApproval(approval_id="a2", turn_id="t2"), ctx
        )
        saved = await handlers.record_usage(thread_id, "t2", usage(n, n, model="m-b"), ctx)
        position = await _run_in_flight(ledger, clock, n) or saved.position
    return position


def _no_workspace(raw: str | None) -> str:
    """No workspace: these runs write no status.json (the tests' working directory is the
    checkout)."""
    return ""


async def _run_in_flight(ledger: Ledger, clock: ManualClock, n: int) -> int:
    """A run of two nodes whose first is dispatched and acknowledged; the last position.

    Claimed on the run itself (not through ``POST /v1/dispatch/claim``, which reads the
    run read models that some tests here stop)."""
    workflow = {
        "id": "wf",
        "nodes": [{"id": "a", "type": "task"}, {"id": "b", "type": "task"}],
        "edges": [{"source": {"node": "a"}, "target": {"node": "b"}}],
    }
    run_id = f"run_{n}"
    runs = RunHandlers(
        ledger.repository, ledger.run_reads, clock, _no_workspace, timedelta(seconds=30)
    )
    await runs.start_run(StartRun(run_id=run_id, client_id="c1", workflow=workflow), context())
    run = await runs.load("default", run_id)
    run.claim(
        worker_id=f"w-{n}",
        limit=1,
        ack_timeout=timedelta(seconds=30),
        new_dispatch_id=lambda: f"dsp-{n}",
        now=clock(),
    )
    await ledger.repository.save(run, context(executor_id=f"w-{n}"), {})
    saved = await runs.acknowledge(
        run_id, "a", AcknowledgeDispatch(dispatch_id=f"dsp-{n}"), context()
    )
    return saved.position


async def continue_thread(ledger: Ledger, clock: ManualClock, thread_id: str, turn_id: str) -> int:
    """One more turn with usage on an existing thread (its active turn completed first);
    returns the last position."""
    handlers = handlers_with_clock(ledger, clock)
    ctx = context()
    active = (await handlers.load(ctx.tenant, thread_id)).active_turn_id
    if active is not None:
        await handlers.complete_turn(thread_id, active, CompleteTurn(), ctx)
    await handlers.start_turn(thread_id, StartTurn(turn_id=turn_id), ctx)
    await handlers.record_usage(thread_id, turn_id, usage(7, 7, model="m-c"), ctx)
    saved = await handlers.complete_turn(thread_id, turn_id, CompleteTurn(), ctx)
    return saved.position
