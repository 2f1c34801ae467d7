"""Projections on real PostgreSQL and SQLite: exactly once, rebuildable, failures visible."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from commands.ports import CommandContext
from commands.thread_commands import AddItem, CompleteTurn, StartThread, StartTurn
from domain.thread import Usage
from infra.bootstrap import Ledger, all_projections
from infra.config import Settings
from infra.projection_runner import ProjectionFailed, ProjectionRunner, ProjectionService
from infra.projection_store import projection_transaction
from infra.store.postgres import PostgresBackend
from projections.base import ProjectedEvent, Session, Table
from tests.integration.run_history import Runs
from tests.unit.run_builders import task, workflow


def _context() -> CommandContext:
    return CommandContext(tenant="default", actor="test", correlation_id="c")


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    service = Ledger(Settings(database_url=database_url))
    await service.start()
    service.projections.stop()  # the tests drive their own runners
    try:
        yield service
    finally:
        await service.stop()


async def _history(ledger: Ledger, threads: int = 4) -> None:
    handlers = ledger.threads
    ctx = _context()
    for n in range(threads):
        thread_id = f"thr_{n}"
        await handlers.start_thread(StartThread(thread_id=thread_id, title=f"t{n}"), ctx)
        await handlers.start_turn(thread_id, StartTurn(turn_id="t1", executor_id="rt-1"), ctx)
        await handlers.add_item(thread_id, "t1", AddItem(item_id="i1", tool_name="exec_shell"), ctx)
        thread = await handlers.load("default", thread_id)
        thread.request_approval(
            approval_id="a1",
            turn_id="t1",
            item_id="i1",
            approval_key="k",
            requires_full_access=False,
            now=thread.modified_on,
        )
        thread.record_usage(
            turn_id="t1",
            usage=Usage(input_tokens=10 * n, output_tokens=5, cost_usd=0.5),
            now=thread.modified_on,
        )
        await ledger.repository.save(thread, ctx, {})
        if n % 2:
            await handlers.complete_turn(thread_id, "t1", CompleteTurn(status="completed"), ctx)
    runs = Runs(ledger)
    run = await runs.create("run_1", flow=workflow([task("a"), task("b")]))
    await runs.claim(run, now=run.modified_on)


def _rows(ledger: Ledger, runner: ProjectionRunner) -> dict[str, list[tuple[Any, ...]]]:
    with projection_transaction(ledger.backend) as session:
        return {
            table.name: sorted(session.fetchall(f"SELECT * FROM {table.name}"))
            for table in runner.projection.tables
        }


async def test_rebuilding_each_projection_gives_the_live_rows(ledger: Ledger) -> None:
    await _history(ledger)
    for runner in ledger.projections.runners:
        if not runner.projection.tables:
            continue  # writes files, not rows (tests/integration/test_run_read_models.py)
        runner.catch_up()
        live = _rows(ledger, runner)
        assert any(live.values()), f"{runner.name} has no rows to compare"
        report = ProjectionRunner(ledger.backend, runner.projection).rebuild()
        assert report.equal and report.switched, report.describe()
        assert report.position == report.applied == await ledger.store.max_position()
        assert _rows(ledger, runner) == live, runner.name
        assert ProjectionRunner(ledger.backend, runner.projection).rebuild().equal  # again


async def test_rebuild_keeps_live_tables_when_they_differ_from_the_log(ledger: Ledger) -> None:
    await _history(ledger)
    runner = ProjectionRunner(ledger.backend, all_projections()[0])
    runner.catch_up()
    with projection_transaction(ledger.backend) as session:
        session.execute("UPDATE thread_summaries SET title = 'corrupted' WHERE thread_id = 'thr_1'")
    report = ProjectionRunner(ledger.backend, runner.projection).rebuild()
    assert not report.equal and not report.switched
    assert report.differences["thread_summaries"] == 2
    with projection_transaction(ledger.backend) as session:
        row = session.fetchone("SELECT title FROM thread_summaries WHERE thread_id = 'thr_1'")
    assert row == ("corrupted",)
    forced = ProjectionRunner(ledger.backend, runner.projection).rebuild(force=True)
    assert forced.switched
    with projection_transaction(ledger.backend) as session:
        row = session.fetchone("SELECT title FROM thread_summaries WHERE thread_id = 'thr_1'")
    assert row == ("t1",)


async def test_catching_up_twice_applies_nothing_twice(ledger: Ledger) -> None:
    await _history(ledger, threads=2)
    runner = ProjectionRunner(ledger.backend, all_projections()[0])
    runner.catch_up()
    before = _rows(ledger, runner)
    assert runner.catch_up() == 0
    assert _rows(ledger, runner) == before
    assert runner.position() == await ledger.store.max_position()


class _Fragile:
    """Counts events; fails on ItemAdded while ``broken``."""

    name = "fragile"
    tables: tuple[Table, ...] = (
        Table("fragile_counts", "kind text PRIMARY KEY, n bigint NOT NULL"),
    )

    def __init__(self) -> None:
        self.broken = True

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        if self.broken and event.type == "ItemAdded":
            raise ValueError("cannot handle items")
        session.execute(
            f"INSERT INTO {names['fragile_counts']} (kind, n) VALUES (%s, 1)"
            " ON CONFLICT (kind) DO UPDATE SET n = fragile_counts.n + 1",
            (event.type,),
        )


async def test_a_failing_projection_stops_at_the_event_and_resumes_after_a_fix(
    ledger: Ledger,
) -> None:
    await _history(ledger, threads=1)
    events = await ledger.store.read_all()
    failing = next(e.position for e in events if e.type == "ItemAdded")
    fragile = _Fragile()
    runner = ProjectionRunner(ledger.backend, fragile, batch=2)
    runner.ensure_tables()
    with pytest.raises(ProjectionFailed) as info:
        runner.catch_up()
    assert info.value.position == failing
    status = runner.status()
    assert status.position == failing - 1
    assert status.error_position == failing
    assert status.last_error is not None and "cannot handle items" in status.last_error
    with pytest.raises(ProjectionFailed):
        runner.catch_up()  # not skipped: it fails again at the same event
    assert runner.position() == failing - 1

    fragile.broken = False
    runner.catch_up()
    status = runner.status()
    assert (status.position, status.last_error, status.error_position) == (
        len(events),
        None,
        None,
    )
    with projection_transaction(ledger.backend) as session:
        total = session.fetchone("SELECT sum(n) FROM fragile_counts")
    assert total is not None and int(total[0]) == len(events)


async def test_one_runner_per_projection_is_active_on_postgres(pg_url: str) -> None:
    first = PostgresBackend(pg_url)
    second = PostgresBackend(pg_url)
    for backend in (first, second):
        backend.migrate()
    a = ProjectionService(first, [ProjectionRunner(first, p) for p in all_projections()])
    b = ProjectionService(second, [ProjectionRunner(second, p) for p in all_projections()])
    try:
        assert a._may_run("thread_summaries")
        assert not b._may_run("thread_summaries")
        a._release_locks()
        assert b._may_run("thread_summaries")
    finally:
        a.stop()
        b.stop()
        first.close()
        second.close()
