"""Run read models on real PostgreSQL and SQLite: summaries, dispatches, the run list,
the policies' candidate queries and the ``status.json`` files."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from domain.run import Run
from domain.run_state import NodeUsage
from domain.workflow import definition_hash
from infra.bootstrap import Ledger
from infra.config import Settings
from infra.http.app import create_app
from infra.projection_runner import ProjectionRunner
from infra.projection_store import projection_transaction
from projections import run_fold, run_status_files
from projections.base import Session
from projections.run_fold import RunFolder
from projections.run_status_files import RunStatusFiles, render, status_path, write_atomically
from projections.run_summaries import RunSummaries
from queries import run_list
from queries.pagination import BadCursor, encode_cursor
from queries.run_status import status_document
from tests.integration.run_history import Runs
from tests.unit.builders import at
from tests.unit.run_builders import gate, linear, task, workflow


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    service = Ledger(Settings(database_url=database_url))
    await service.start(policies=False)
    service.projections.stop()  # the tests drive their own runners
    try:
        yield service
    finally:
        await service.stop()


def _caught_up(ledger: Ledger, projection: Any = None) -> ProjectionRunner:
    runner = ProjectionRunner(ledger.backend, projection or RunSummaries())
    runner.ensure_tables()
    runner.catch_up()
    return runner


def _rows(ledger: Ledger, table: str) -> list[tuple[Any, ...]]:
    with projection_transaction(ledger.backend) as session:
        return sorted(session.fetchall(f"SELECT * FROM {table}"))


async def _page(
    ledger: Ledger, *, limit: int = 50, cursor: str | None = None, **filters: str | None
) -> dict[str, Any]:
    return await run_list.list_runs(
        ledger.store.fetch,
        "default",
        status=filters.get("status"),
        client_id=filters.get("client_id"),
        automation_id=filters.get("automation_id"),
        limit=limit,
        cursor=cursor,
    )


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["run_id"] for item in page["items"]]


async def _mixed_history(runs: Runs) -> None:
    """run_1 queued; run_2 running; run_3 succeeded with usage; run_4 failed;
    run_5 another tenant's."""
    await runs.create("run_1", client_id="c1", automation_id="auto_1", now=at(1))
    second = await runs.create("run_2", client_id="c2", automation_id="auto_2", now=at(2))
    await runs.claim(second, now=at(3))
    third = await runs.create("run_3", client_id="c1", automation_id="auto_2", now=at(4))
    usage = NodeUsage(input_tokens=10, output_tokens=5, reasoning_tokens=1, cost_usd=0.25)
    await runs.complete(third, "a", now=at(5), usage=usage)
    await runs.complete(third, "b", now=at(6), usage=usage)
    fourth = await runs.create("run_4", client_id="c1", automation_id=None, now=at(7))
    await runs.claim(fourth, now=at(8))
    await runs.ack(fourth, "a", now=at(8))
    await runs.result(fourth, "a", "failed", now=at(9), error={"code": "x", "message": "boom"})
    await runs.create("run_5", client_id="c1", tenant="acme", now=at(10))


async def test_the_list_filters_by_status_client_and_automation_within_the_tenant(
    ledger: Ledger,
) -> None:
    await _mixed_history(Runs(ledger))
    _caught_up(ledger)
    assert _ids(await _page(ledger)) == ["run_4", "run_3", "run_2", "run_1"]
    assert _ids(await _page(ledger, client_id="c1")) == ["run_4", "run_3", "run_1"]
    assert _ids(await _page(ledger, automation_id="auto_2")) == ["run_3", "run_2"]
    assert _ids(await _page(ledger, status="running")) == ["run_2"]
    assert _ids(await _page(ledger, status="succeeded", client_id="c1")) == ["run_3"]
    assert _ids(await _page(ledger, status="succeeded", client_id="c2")) == []
    assert _ids(await _page(ledger, client_id="c1", automation_id="auto_1")) == ["run_1"]


async def test_a_summary_carries_status_nodes_usage_and_times(ledger: Ledger) -> None:
    await _mixed_history(Runs(ledger))
    _caught_up(ledger)
    items = {item["run_id"]: item for item in (await _page(ledger))["items"]}
    done = items["run_3"]
    assert done["status"] == "succeeded"
    assert done["nodes"] == {"total": 2, "succeeded": 2, "failed": 0}
    assert done["usage"] == {"total_tokens": 32, "cost_usd": 0.5}
    assert done["created_at"] == "2026-01-01T12:00:04.000000Z"
    assert done["started_at"] == "2026-01-01T12:00:05.000000Z"
    assert done["finished_at"] == "2026-01-01T12:00:06.000000Z"
    assert done["definition_hash"] == definition_hash(linear("a", "b"))
    failed = items["run_4"]
    assert (failed["status"], failed["automation_id"]) == ("failed", None)
    assert failed["nodes"] == {"total": 2, "succeeded": 0, "failed": 1}
    assert failed["detail"] is not None and "boom" in failed["detail"]
    queued = items["run_1"]
    assert (queued["status"], queued["started_at"], queued["finished_at"]) == (
        "queued",
        None,
        None,
    )
    assert set(queued) >= {
        "run_id",
        "status",
        "client_id",
        "automation_id",
        "executor_id",
        "definition_hash",
        "detail",
        "stop_kind",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
        "nodes",
        "usage",
    }


async def test_pages_run_newest_first_and_stay_stable_while_runs_are_created(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    for n in range(5):
        await runs.create(f"run_{n}", now=at(n))
    _caught_up(ledger)
    first = await _page(ledger, limit=2)
    assert _ids(first) == ["run_4", "run_3"]
    for n in range(5, 8):  # created between pages: they belong before page one
        await runs.create(f"run_{n}", now=at(n))
    _caught_up(ledger)
    second = await _page(ledger, limit=2, cursor=first["next_cursor"])
    third = await _page(ledger, limit=2, cursor=second["next_cursor"])
    assert _ids(second) == ["run_2", "run_1"]
    assert _ids(third) == ["run_0"]
    assert third["next_cursor"] is None
    assert _ids(await _page(ledger, limit=3)) == ["run_7", "run_6", "run_5"]


async def test_a_cursor_not_made_here_is_refused(ledger: Ledger) -> None:
    _caught_up(ledger)
    for cursor in ("not-a-cursor", "e30", encode_cursor(-1)):
        with pytest.raises(BadCursor):
            await _page(ledger, cursor=cursor)


async def test_get_runs_serves_the_list_and_answers_400_for_a_bad_cursor(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    for n in range(3):
        await runs.create(f"run_{n}", client_id="c1" if n else "c2", now=at(n))
    head = await ledger.store.max_position()
    runner = ProjectionRunner(ledger.backend, RunSummaries())
    runner.ensure_tables()
    app = create_app(ledger.settings, ledger)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        waiting = threading.Timer(0.2, runner.catch_up)
        waiting.start()
        response = await client.get(
            "/v1/runs", params={"client_id": "c1", "limit": 1, "min_position": head}
        )
        waiting.join()
        assert response.status_code == 200, response.text
        body = response.json()
        assert _ids(body) == ["run_2"] and body["next_cursor"]
        more = await client.get(
            "/v1/runs", params={"client_id": "c1", "cursor": body["next_cursor"]}
        )
        assert _ids(more.json()) == ["run_1"] and more.json()["next_cursor"] is None
        bad = await client.get("/v1/runs", params={"cursor": "garbage!"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_cursor"
        wrong = await client.get("/v1/runs", params={"status": "finished"})
        assert wrong.status_code in (400, 422)
        spec = (await client.get("/openapi.json")).json()
        operation = spec["paths"]["/v1/runs"]["get"]
        assert {p["name"] for p in operation["parameters"]} >= {
            "status",
            "client_id",
            "automation_id",
            "limit",
            "cursor",
            "min_position",
        }


async def test_claimable_runs_are_ready_active_runs_of_the_tenant_oldest_first(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    oldest = await runs.create("run_old", now=at(1))
    busy = await runs.create("run_busy", flow=linear("a"), now=at(2))
    await runs.claim(busy, now=at(3))  # its only node is in flight: nothing to claim
    paused = await runs.create("run_paused", now=at(4))
    await runs.step(paused, lambda r: r.pause(reason="hold", now=at(5)))
    await runs.create("run_new", now=at(6))
    await runs.create("run_gated", flow=workflow([gate("g"), task("a")]), now=at(7))
    await runs.create("run_other", tenant="acme", now=at(8))
    _caught_up(ledger)
    fetch = ledger.store.fetch
    # run_gated awaits approval from its creation on: nothing of it is dispatched
    assert await run_list.claimable_runs(fetch, "default", 10) == ["run_old", "run_new"]
    assert await run_list.claimable_runs(fetch, "default", 1) == ["run_old"]
    assert await run_list.claimable_runs(fetch, "acme", 10) == ["run_other"]
    await runs.claim(oldest, now=at(9))
    _caught_up(ledger)
    assert (await run_list.claimable_runs(fetch, "default", 10))[0] == "run_new"


async def test_runs_driven_by_an_executor_are_its_running_and_pausing_runs(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    running = await runs.create("run_running", now=at(1))
    await runs.claim(running, now=at(2))
    pausing = await runs.create("run_pausing", now=at(3))
    await runs.claim(pausing, now=at(4))
    await runs.step(pausing, lambda r: r.pause(reason="hold", now=at(5)))
    await runs.create("run_queued", now=at(6))
    other = await runs.create("run_other_executor", executor_id="auto-2", now=at(7))
    await runs.claim(other, now=at(8))
    _caught_up(ledger)
    assert pausing.status == "pausing"
    driven = await run_list.runs_driven_by(ledger.store.fetch, "default", "auto-1")
    assert driven == ["run_running", "run_pausing"]
    assert await run_list.runs_driven_by(ledger.store.fetch, "acme", "auto-1") == []


async def test_dispatch_rows_follow_nodes_in_flight(ledger: Ledger) -> None:
    runs = Runs(ledger)
    flow = workflow([task("a"), task("b")])
    run = await runs.create("run_1", flow=flow, now=at(1))
    await runs.claim(run, "w1", now=at(2))
    _caught_up(ledger)
    fetch = ledger.store.fetch
    assert await run_list.runs_with_worker(fetch, "default", "w1") == ["run_1"]
    assert await run_list.runs_with_worker(fetch, "default", "w2") == []
    rows = await fetch(
        "SELECT task_id, worker_id, pending_ack, ack_deadline FROM run_dispatches ORDER BY task_id",
        [],
    )
    deadline = "2026-01-01T12:00:32.000000Z"
    assert rows == [("a", "w1", 1, deadline), ("b", "w1", 1, deadline)]
    await runs.ack(run, "a", now=at(3))
    await runs.result(run, "a", now=at(4))
    _caught_up(ledger)
    rows = await fetch("SELECT task_id, pending_ack FROM run_dispatches", [])
    assert rows == [("b", 1)]
    await runs.ack(run, "b", now=at(5))
    await runs.result(run, "b", now=at(6))
    _caught_up(ledger)
    assert await fetch("SELECT * FROM run_dispatches", []) == []
    assert await run_list.runs_with_worker(fetch, "default", "w1") == []


async def test_overdue_acks_are_unacknowledged_dispatches_past_their_deadline(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    run = await runs.create("run_1", flow=workflow([task("a"), task("b")]), now=at(1))
    await runs.claim(run, now=at(2))  # deadline at(32)
    await runs.ack(run, "b", now=at(3))
    other = await runs.create("run_2", flow=linear("a"), tenant="acme", now=at(4))
    await runs.claim(other, tenant="acme", now=at(5))  # deadline at(35)
    _caught_up(ledger)
    fetch = ledger.store.fetch
    assert await run_list.overdue_acks(fetch, at(32)) == []
    assert await run_list.overdue_acks(fetch, at(33)) == [("default", "run_1", "a")]
    overdue = await run_list.overdue_acks(fetch, at(36))
    assert overdue == [("default", "run_1", "a"), ("acme", "run_2", "a")]
    assert overdue[1].tenant == "acme" and overdue[1].task_id == "a"
    await runs.step(run, lambda r: r.time_out_ack(task_id="a", now=at(33)))
    _caught_up(ledger)
    assert await run_list.overdue_acks(fetch, at(36)) == [("acme", "run_2", "a")]


async def test_stalled_launches_are_launching_workers_acknowledged_before_the_cutoff(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    run = await runs.create("run_1", flow=workflow([task("a"), task("b")]), now=at(1))
    await runs.claim(run, now=at(2))
    await runs.ack(run, "a", now=at(3), launching=True)
    await runs.ack(run, "b", now=at(3))
    _caught_up(ledger)
    fetch = ledger.store.fetch
    assert await run_list.stalled_launches(fetch, at(3)) == []
    assert await run_list.stalled_launches(fetch, at(4)) == [("default", "run_1", "a")]
    await runs.step(
        run,
        lambda r: r.record_worker_event(
            task_id="a",
            kind="launched",
            worker_id="w1",
            detail=None,
            outcome=None,
            data={},
            now=at(4),
        ),
    )
    _caught_up(ledger)
    assert await run_list.stalled_launches(fetch, at(60)) == []


async def test_stale_runs_are_running_runs_without_events_since_the_cutoff(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    quiet = await runs.create("run_quiet", now=at(1))
    await runs.claim(quiet, now=at(2))
    busy = await runs.create("run_busy", now=at(3))
    await runs.claim(busy, now=at(4))
    await runs.ack(busy, "a", now=at(20))
    await runs.create("run_queued", now=at(5))
    _caught_up(ledger)
    fetch = ledger.store.fetch
    assert await run_list.stale_runs(fetch, at(2)) == []
    assert await run_list.stale_runs(fetch, at(10)) == [("default", "run_quiet")]
    both = await run_list.stale_runs(fetch, at(21))
    assert both == [("default", "run_quiet"), ("default", "run_busy")]


async def test_stale_gates_are_awaiting_gates_requested_before_the_cutoff_and_not_marked(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    flow = workflow([gate("review"), task("a")])
    gated = await runs.create("run_gated", flow=flow, now=at(1))
    await runs.create("run_plain", now=at(2))
    _caught_up(ledger)
    assert gated.status == "awaiting_approval"
    fetch = ledger.store.fetch
    assert await run_list.stale_gates(fetch, at(1)) == []
    assert await run_list.stale_gates(fetch, at(2)) == [("default", "run_gated", "review")]
    await runs.step(
        gated,
        lambda r: r.mark_gate_stale(task_id="review", stale_after=timedelta(0), now=at(3)),
    )
    _caught_up(ledger)
    assert await run_list.stale_gates(fetch, at(100)) == []


async def test_resumable_runs_are_runs_stale_reaped_since_the_cutoff(ledger: Ledger) -> None:
    runs = Runs(ledger)
    reaped = await runs.create("run_reaped", max_attempts=2, now=at(1))
    await runs.claim(reaped, now=at(2))
    await runs.step(reaped, lambda r: r.stale_reap(detail="quiet", now=at(10)))
    paused = await runs.create("run_paused", now=at(3))
    await runs.step(paused, lambda r: r.pause(reason="hold", now=at(11)))
    _caught_up(ledger)
    fetch = ledger.store.fetch
    assert await run_list.resumable_runs(fetch, at(10)) == [("default", "run_reaped")]
    assert await run_list.resumable_runs(fetch, at(11)) == []
    assert await run_list.resumable_runs(fetch, at(0), stop_kinds=()) == []


async def test_rebuilding_run_summaries_from_zero_gives_the_same_rows(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Runs(ledger)
    await _mixed_history(runs)
    gated = await runs.create("run_gated", flow=workflow([gate("g"), task("a")]), now=at(11))
    inflight = await runs.create("run_inflight", flow=workflow([task("a"), task("b")]), now=at(12))
    await runs.step(  # the two runs' events interleave from here on
        gated, lambda r: r.mark_gate_stale(task_id="g", stale_after=timedelta(0), now=at(13))
    )
    await runs.claim(inflight, now=at(14))
    await runs.step(gated, lambda r: r.attach_session(session_id="s1", now=at(15)))
    await runs.ack(inflight, "a", now=at(15), launching=True)
    runner = _caught_up(ledger)
    summaries, dispatches = _rows(ledger, "run_summaries"), _rows(ledger, "run_dispatches")
    assert len(summaries) == 7 and len(dispatches) == 3
    report = ProjectionRunner(ledger.backend, runner.projection).rebuild()
    assert report.equal and report.switched, report.describe()
    assert _rows(ledger, "run_summaries") == summaries
    assert _rows(ledger, "run_dispatches") == dispatches
    # a one-run cache refolds from the events table whenever the two runs take turns
    refolds: list[str] = []
    original = run_fold.refold

    def counting(session: Session, tenant: str, run_id: str, upto_seq: int) -> Run | None:
        refolds.append(run_id)
        return original(session, tenant, run_id, upto_seq)

    monkeypatch.setattr(run_fold, "refold", counting)
    cold = ProjectionRunner(ledger.backend, RunSummaries(RunFolder(capacity=1)), batch=3)
    cold.reset()
    assert refolds.count("run_gated") == 2 and refolds.count("run_inflight") == 2
    assert _rows(ledger, "run_summaries") == summaries
    assert _rows(ledger, "run_dispatches") == dispatches


def _status_file(workspace: Path, run_id: str) -> dict[str, Any]:
    value = orjson.loads(status_path(str(workspace), run_id).read_bytes())
    assert isinstance(value, dict)
    return value


def _leftovers(workspace: Path, run_id: str) -> list[str]:
    return sorted(
        p.name
        for p in status_path(str(workspace), run_id).parent.iterdir()
        if p.name != "status.json"
    )


async def test_status_json_is_written_into_the_runs_workspace_with_seed_002_fields(
    ledger: Ledger, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    runs = Runs(ledger)
    flow = workflow([task("a"), task("b"), task("c")], [*linear("a", "c")["edges"]])
    run = await runs.create("run_1", flow=flow, workspace=str(workspace), max_attempts=2, now=at(1))
    await runs.create("run_nowhere", now=at(1))
    await runs.claim(run, now=at(2))
    await runs.ack(run, "a", now=at(3))
    await runs.ack(run, "b", now=at(3))
    await runs.result(run, "a", now=at(4))
    await runs.result(run, "b", "failed", now=at(5), error={"code": "x", "message": "flaky"})
    projection = RunStatusFiles(status_document)
    _caught_up(ledger, projection)
    document = _status_file(workspace, "run_1")
    assert document == orjson.loads(render(status_document(run)))
    assert document["run_id"] == "run_1"
    assert document["status"] == "running"
    assert document["automation_id"] == "auto_1"
    assert document["completed_nodes"] == ["a"]
    assert document["pending_nodes"] == ["b", "c"]
    assert document["blocked_nodes"] == []
    assert document["node_attempts"] == {"a": 1, "b": 1}
    assert document["last_failure"] is None  # b is retried, not finally failed
    assert document["learning_summary"] is None
    assert document["updated_at_ms"] == int(at(5).timestamp() * 1000)
    assert document["seq"] == run.version
    assert document["finished_at_ms"] is None
    assert _leftovers(workspace, "run_1") == []
    assert not (tmp_path / ".ledger").exists()
    await runs.claim(run, now=at(6))
    await runs.ack(run, "b", now=at(6))
    await runs.result(run, "b", "failed", now=at(7), error={"code": "x", "message": "flaky"})
    _caught_up(ledger, projection)
    document = _status_file(workspace, "run_1")
    assert document["status"] == "failed"
    assert document["node_attempts"] == {"a": 1, "b": 2, "c": 1}  # c was cancelled in flight
    assert document["last_failure"] == {
        "node_id": "b",
        "reason": "flaky",
        "failed_at_ms": int(at(7).timestamp() * 1000),
    }
    assert document["finished_at_ms"] == int(at(7).timestamp() * 1000)
    assert document["pending_nodes"] == []
    assert _leftovers(workspace, "run_1") == []


async def test_status_json_shows_the_awaiting_gate_and_the_nodes_it_blocks(
    ledger: Ledger, tmp_path: Path
) -> None:
    flow = workflow([task("a"), gate("review"), task("b"), task("c")])
    flow["edges"] = linear("a", "review", "b", "c")["edges"]
    runs = Runs(ledger)
    run = await runs.create("run_1", flow=flow, workspace=str(tmp_path), now=at(1))
    await runs.complete(run, "a", now=at(2))
    projection = RunStatusFiles(status_document)
    _caught_up(ledger, projection)
    document = _status_file(tmp_path, "run_1")
    assert document["status"] == "awaiting_approval"
    assert document["awaiting_gate"]["node_id"] == "review"
    assert document["blocked_nodes"] == ["b", "c"]
    await runs.step(
        run,
        lambda r: r.decide_gate(
            task_id="review", decision="deny", reason="no", actor="p", now=at(3)
        ),
    )
    _caught_up(ledger, projection)
    document = _status_file(tmp_path, "run_1")
    assert (document["status"], document["awaiting_gate"]) == ("blocked", None)
    assert document["blocked_nodes"] == ["review", "b", "c"]


async def test_status_json_is_replaced_whole_and_never_rolled_back_by_a_replay(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Runs(ledger)
    run = await runs.create("run_1", workspace=str(tmp_path), now=at(1))
    await runs.complete(run, "a", now=at(2))
    projection = RunStatusFiles(status_document)
    runner = _caught_up(ledger, projection)
    path = status_path(str(tmp_path), "run_1")
    first_inode = path.stat().st_ino
    await runs.complete(run, "b", now=at(3))
    runner.catch_up()
    assert path.stat().st_ino != first_inode  # a new file renamed over the old one
    final = path.read_bytes()
    assert orjson.loads(final)["status"] == "succeeded"
    # replaying the log from zero (a rebuild) passes older seqs: the file is never older
    seen: list[int] = []
    original = write_atomically

    def watching(target: Path, content: bytes) -> None:
        seen.append(orjson.loads(content)["seq"])
        original(target, content)

    monkeypatch.setattr(run_status_files, "write_atomically", watching)
    report = ProjectionRunner(ledger.backend, projection).rebuild()
    monkeypatch.undo()
    assert report.switched
    assert seen == [run.version]  # only the document at the file's own seq was rewritten
    assert path.read_bytes() == final
    path.unlink()
    runner.reset()
    assert path.read_bytes() == final  # a rebuild writes missing files again
    assert _leftovers(tmp_path, "run_1") == []


def test_an_atomic_write_is_never_seen_half_written(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "run_1" / "status.json"
    documents = [render({"seq": n, "pad": "x" * 200_000}) for n in range(2)]
    write_atomically(path, documents[0])
    stop = threading.Event()
    torn: list[int] = []

    def read() -> None:
        while not stop.is_set():
            content = path.read_bytes()
            if content not in documents:
                torn.append(len(content))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(60):
            write_atomically(path, documents[n % 2])
    finally:
        stop.set()
        reader.join()
    assert torn == []
    assert os.listdir(path.parent) == ["status.json"]
    assert path.stat().st_mode & 0o777 == 0o644
