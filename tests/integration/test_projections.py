"""Projections on real PostgreSQL and SQLite: exactly once, rebuildable, failures visible."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from commands.ports import CommandContext
from commands.thread_commands import AddItem, CompleteTurn, StartThread, StartTurn
from domain.thread import Usage
from infra.bootstrap import Ledger, all_projections
from infra.config import Settings
from infra.projection_runner import ProjectionFailed, ProjectionRunner, ProjectionService
from infra.projection_store import projection_transaction
from infra.store.errors import PositionNotAdvanced
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


def _all_rows(ledger: Ledger, projection: Any) -> dict[str, list[tuple[Any, ...]]]:
    with projection_transaction(ledger.backend) as session:
        return {
            table.name: sorted(session.fetchall(f"SELECT * FROM {table.name}"))
            for table in projection.tables
        }


async def _mixed_history(ledger: Ledger) -> None:
    """Every kind of thread event, several threads interleaved, a run, usage replaced."""
    await _history(ledger, threads=3)
    handlers = ledger.threads
    ctx = _context()
    for thread_id in ("thr_0", "thr_2"):
        thread = await handlers.load("default", thread_id)
        thread.decide_approval(
            approval_id="a1",
            turn_id="t1",
            decision="approve",
            remember_for_session=False,
            actor="test",
            now=thread.modified_on,
        )
        thread.record_usage(
            turn_id="t1",
            usage=Usage(input_tokens=7, output_tokens=3, cost_usd=0.125, model="m2"),
            now=thread.modified_on,
        )
        await ledger.repository.save(thread, ctx, {})
        await handlers.complete_turn(thread_id, "t1", CompleteTurn(status="completed"), ctx)
    await handlers.start_turn("thr_1", StartTurn(turn_id="t2", executor_id="rt-2"), ctx)
    await handlers.start_thread(StartThread(thread_id="thr_late", title="late"), ctx)


async def test_a_page_of_mixed_events_gives_the_rows_of_one_event_at_a_time(
    ledger: Ledger,
) -> None:
    await _mixed_history(ledger)
    head = await ledger.store.max_position()
    kinds = {e.type for e in await ledger.store.read_all(limit=head)}
    assert {"ThreadStarted", "ApprovalDecided", "UsageRecorded", "TurnCompleted"} <= kinds
    for projection in all_projections():
        if not projection.tables:
            continue
        one_at_a_time = ProjectionRunner(ledger.backend, projection, batch=1)
        assert one_at_a_time.reset() == head
        expected = _all_rows(ledger, projection)
        assert any(expected.values()), projection.name
        for batch in (head, 7):  # one page holding everything; pages cutting threads apart
            paged = ProjectionRunner(ledger.backend, projection, batch=batch)
            assert paged.reset() == head
            assert _all_rows(ledger, projection) == expected, (projection.name, batch)


class _FragilePage(_Fragile):
    """As :class:`_Fragile`, applying a page at once (counts summed in memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[int] = []

    def apply_page(
        self, session: Session, events: Sequence[ProjectedEvent], names: dict[str, str]
    ) -> None:
        self.pages.append(len(events))
        counts: dict[str, int] = {}
        for event in events:
            if self.broken and event.type == "ItemAdded":
                raise ValueError("cannot handle items")
            counts[event.type] = counts.get(event.type, 0) + 1
        for kind, n in counts.items():
            session.execute(
                f"INSERT INTO {names['fragile_counts']} (kind, n) VALUES (%s, %s)"
                " ON CONFLICT (kind) DO UPDATE SET n = fragile_counts.n + excluded.n",
                (kind, n),
            )


async def test_a_failure_inside_a_page_keeps_the_events_before_it_exactly_once(
    ledger: Ledger,
) -> None:
    await _history(ledger, threads=2)
    events = await ledger.store.read_all()
    failing = next(e.position for e in events if e.type == "ItemAdded")
    assert failing > 2
    fragile = _FragilePage()
    runner = ProjectionRunner(ledger.backend, fragile, batch=len(events))
    runner.ensure_tables()
    with pytest.raises(ProjectionFailed) as info:
        runner.catch_up()
    assert info.value.position == failing
    status = runner.status()
    assert (status.position, status.error_position) == (failing - 1, failing)
    assert status.last_error is not None and "cannot handle items" in status.last_error
    assert _counted(ledger) == failing - 1  # the events before it, committed once
    with pytest.raises(ProjectionFailed):
        runner.catch_up()  # the next page starts at the failing event, and fails there again
    assert runner.position() == failing - 1 and _counted(ledger) == failing - 1

    fragile.broken = False
    runner.catch_up()
    status = runner.status()
    assert (status.position, status.last_error, status.error_position) == (
        len(events),
        None,
        None,
    )
    assert _counted(ledger) == len(events)  # every event exactly once
    assert fragile.pages[-1] == len(events) - failing + 1  # resumed as one page


def _counted(ledger: Ledger) -> int:
    with projection_transaction(ledger.backend) as session:
        total = session.fetchone("SELECT coalesce(sum(n), 0) FROM fragile_counts")
    return 0 if total is None else int(total[0])


class _FailsInTheDatabase(_Fragile):
    """Writes a page with one statement per event type; ItemAdded breaks a NOT NULL."""

    def apply_page(
        self, session: Session, events: Sequence[ProjectedEvent], names: dict[str, str]
    ) -> None:
        session.executemany(
            f"INSERT INTO {names['fragile_counts']} (kind, n) VALUES (%s, %s)"
            " ON CONFLICT (kind) DO UPDATE SET n = fragile_counts.n + 1",
            [(e.type, None if e.type == "ItemAdded" else 1) for e in events],
        )


async def test_a_statement_failing_for_a_page_is_traced_to_its_event(ledger: Ledger) -> None:
    await _history(ledger, threads=1)
    events = await ledger.store.read_all()
    failing = next(e.position for e in events if e.type == "ItemAdded")
    runner = ProjectionRunner(ledger.backend, _FailsInTheDatabase(), batch=len(events))
    runner.ensure_tables()
    with pytest.raises(ProjectionFailed) as info:
        runner.catch_up()
    assert info.value.position == failing
    assert runner.position() == failing - 1
    assert _counted(ledger) == failing - 1


async def test_a_tick_brings_runners_at_different_positions_to_the_head_together(
    ledger: Ledger,
) -> None:
    await _mixed_history(ledger)
    head = await ledger.store.max_position()
    expected = {}
    for projection in all_projections():
        alone = ProjectionRunner(ledger.backend, projection, batch=1)
        alone.catch_up()  # the rows of one event at a time
        expected[projection.name] = _all_rows(ledger, projection)
        alone.drop_tables()
    runners = [ProjectionRunner(ledger.backend, p, batch=5) for p in all_projections()]
    service = ProjectionService(ledger.backend, runners)
    service.ensure_tables()
    ProjectionRunner(ledger.backend, runners[0].projection, batch=head // 2).run_once()
    runners[1].catch_up()  # one halfway, one at the head already, the rest at zero
    assert 0 < runners[0].position() < head
    try:
        service.tick()
    finally:
        service.stop()  # its advisory-lock connection
    for runner in runners:
        assert runner.position() == head, runner.name
        assert _all_rows(ledger, runner.projection) == expected[runner.name], runner.name


async def test_a_projection_failing_in_a_shared_tick_stops_only_itself(ledger: Ledger) -> None:
    await _history(ledger, threads=2)
    events = await ledger.store.read_all()
    failing = next(e.position for e in events if e.type == "ItemAdded")
    fragile = _FragilePage()
    runners = [
        ProjectionRunner(ledger.backend, fragile, batch=4),
        ProjectionRunner(ledger.backend, all_projections()[0], batch=4),
    ]
    service = ProjectionService(ledger.backend, runners)
    service.ensure_tables()
    try:
        service.tick()
        fragile_status, summaries_status = (runner.status() for runner in runners)
        assert (fragile_status.position, fragile_status.error_position) == (failing - 1, failing)
        assert summaries_status.position == len(events)
        assert summaries_status.last_error is None

        fragile.broken = False
        service.tick()
    finally:
        service.stop()
    assert runners[0].status().position == len(events)
    assert runners[0].status().last_error is None
    with projection_transaction(ledger.backend) as session:
        total = session.fetchone("SELECT sum(n) FROM fragile_counts")
    assert total is not None and int(total[0]) == len(events)  # each event counted once


async def test_positions_move_together_or_not_at_all(ledger: Ledger) -> None:
    with projection_transaction(ledger.backend) as session:
        session.advance([("a", 5), ("b", 7)])
    with pytest.raises(PositionNotAdvanced), projection_transaction(ledger.backend) as session:
        session.advance([("a", 9), ("b", 7)])  # b is already at 7: neither moves
    assert dict(ledger.backend.projection_positions()) == {"a": 5, "b": 7}
