"""The usage read model on PostgreSQL and SQLite: replacement per turn, grouping, the endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from domain.run_state import NodeUsage
from infra.bootstrap import Ledger
from infra.config import Settings
from infra.http.errors import EXCEPTION_HANDLERS
from infra.http.usage_routes import ENDPOINTS, UsageReport
from infra.projection_runner import ProjectionRunner
from infra.projection_store import projection_transaction
from projections.usage import UsageProjection
from queries.usage import usage_groups
from tests.integration.run_history import Runs
from tests.integration.usage_history import ManualClock, record_usage_history
from tests.unit.builders import T0


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    service = Ledger(Settings(database_url=database_url))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def _caught_up(ledger: Ledger) -> ProjectionRunner:
    runner = ProjectionRunner(ledger.backend, UsageProjection())
    runner.ensure_tables()
    runner.catch_up()
    return runner


def _group(
    key: str | None, tokens: tuple[int, int, int, int], cost: float, turns: int
) -> dict[str, Any]:
    names = ("input_tokens", "output_tokens", "reasoning_tokens", "reasoning_replay_tokens")
    return {
        "key": key,
        **dict(zip(names, tokens, strict=True)),
        "total_tokens": sum(tokens),
        "cost_usd": cost,
        "turns": turns,
    }


async def test_a_later_record_replaces_the_turns_figures_and_keeps_its_first_day(
    ledger: Ledger,
) -> None:
    await record_usage_history(ledger, ManualClock())
    await _caught_up(ledger)
    with projection_transaction(ledger.backend) as session:
        row = session.fetchone(
            "SELECT stream_type, scope_kind, model, input_tokens, output_tokens, reasoning_tokens,"
            " reasoning_replay_tokens, cost_usd, day FROM usage_records"
            " WHERE tenant = %s AND stream_id = %s AND scope_id = %s",
            ("default", "thr_a", "t1"),
        )
        count = session.fetchone("SELECT count(*) FROM usage_records")
    assert row == ("thread", "turn", "m-b", 20, 10, 4, 2, 1.0, "2024-03-01")
    assert count is not None and int(count[0]) == 4


async def test_usage_groups_by_model_day_and_thread(ledger: Ledger) -> None:
    await record_usage_history(ledger, ManualClock())
    await _caught_up(ledger)
    fetch = ledger.store.fetch

    by_model = await usage_groups(fetch, "default", group_by="model")
    assert by_model == {
        "group_by": "model",
        "items": [
            _group("m-a", (103, 50, 0, 0), 0.375, 2),
            _group("m-b", (20, 10, 4, 2), 1.0, 1),
            _group(None, (1, 1, 0, 0), 0.0, 1),
        ],
    }
    by_day = await usage_groups(fetch, "default", group_by="day")
    assert by_day["items"] == [
        _group("2024-03-01", (20, 10, 4, 2), 1.0, 1),
        _group("2024-03-02", (101, 51, 0, 0), 0.25, 2),
        _group("2024-03-03", (3, 0, 0, 0), 0.125, 1),
    ]
    by_thread = await usage_groups(fetch, "default", group_by="thread")
    assert by_thread["items"] == [
        _group("thr_a", (120, 60, 4, 2), 1.25, 2),
        _group("thr_b", (4, 1, 0, 0), 0.125, 2),
    ]
    assert (await usage_groups(fetch, "default", group_by="run"))["items"] == []
    assert (await usage_groups(fetch, "other-tenant", group_by="model"))["items"] == []


async def test_a_day_range_includes_both_ends(ledger: Ledger) -> None:
    await record_usage_history(ledger, ManualClock())
    await _caught_up(ledger)
    fetch = ledger.store.fetch
    one_day = await usage_groups(
        fetch, "default", group_by="model", day_from=date(2024, 3, 2), day_to=date(2024, 3, 2)
    )
    assert one_day["items"] == [
        _group("m-a", (100, 50, 0, 0), 0.25, 1),
        _group(None, (1, 1, 0, 0), 0.0, 1),
    ]
    from_second = await usage_groups(fetch, "default", group_by="day", day_from=date(2024, 3, 2))
    assert [g["key"] for g in from_second["items"]] == ["2024-03-02", "2024-03-03"]
    upto_second = await usage_groups(fetch, "default", group_by="thread", day_to=date(2024, 3, 2))
    assert upto_second["items"] == [
        _group("thr_a", (120, 60, 4, 2), 1.25, 2),
        _group("thr_b", (1, 1, 0, 0), 0.0, 1),
    ]


async def test_rebuilding_usage_gives_the_live_rows(ledger: Ledger) -> None:
    await record_usage_history(ledger, ManualClock())
    runner = await _caught_up(ledger)
    query = "SELECT * FROM usage_records ORDER BY stream_id, scope_id"
    with projection_transaction(ledger.backend) as session:
        live = session.fetchall(query)
    runner.rebuild()
    with projection_transaction(ledger.backend) as session:
        assert session.fetchall(query) == live


def _app(ledger: Ledger) -> httpx.AsyncClient:
    routes = [Route(e.path, e.handler, methods=[e.method]) for e in ENDPOINTS]
    app = Starlette(routes=routes, exception_handlers=dict(EXCEPTION_HANDLERS))
    app.state.ledger = ledger
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger")


async def test_the_usage_endpoint_waits_for_min_position_and_refuses_bad_input(
    ledger: Ledger,
) -> None:
    runner = ProjectionRunner(ledger.backend, UsageProjection())
    runner.ensure_tables()
    ledger.projections.runners.append(runner)  # as bootstrap will register it
    last = await record_usage_history(ledger, ManualClock())
    async with _app(ledger) as client:
        answer = await client.get(
            "/v1/usage", params={"group_by": "day", "from": "2024-03-02", "min_position": last}
        )
        assert answer.status_code == 200, answer.text
        report = UsageReport.model_validate(answer.json())
        assert report.group_by == "day"
        assert [(g.key, g.total_tokens, g.turns) for g in report.items] == [
            ("2024-03-02", 152, 2),
            ("2024-03-03", 3, 1),
        ]
        for params in (
            {"group_by": "tenant"},
            {"from": "2024-3-1"},
            {"to": "2024-02-30"},
            {"from": "yesterday"},
            {"from": "2024-03-03", "to": "2024-03-02"},
            {"min_position": "-1"},
        ):
            refused = await client.get("/v1/usage", params=params)
            assert refused.status_code == 400, (params, refused.text)
            assert refused.json()["error"]["code"] == "invalid_query"


async def test_run_nodes_usage_is_grouped_by_run_and_node_and_replaced_per_node(
    ledger: Ledger,
) -> None:
    runs = Runs(ledger)
    run = await runs.create("run_u")
    await runs.claim(run, now=T0)
    await runs.ack(run, "a", now=T0)
    await runs.step(
        run,
        lambda r: r.record_feedback(
            task_id="a",
            dispatch_id=str(r.nodes["a"].dispatch_id),
            feedback_id=None,
            stage=None,
            progress=None,
            message=None,
            metadata={},
            metrics={},
            chunks=[],
            usage=NodeUsage(1, 1, 0, 0.25, "m-run"),
            now=T0,
        ),
    )
    await runs.result(run, "a", now=T0, usage=NodeUsage(10, 5, 2, 0.5, "m-run"))  # replaces
    await runs.complete(run, "b", now=T0, usage=NodeUsage(3, 4, 0, 0.25, "m-run"))
    await _caught_up(ledger)

    by_run = await usage_groups(ledger.store.fetch, "default", group_by="run")
    assert by_run["items"] == [_group("run_u", (13, 9, 2, 0), 0.75, 2)]
    by_node = await usage_groups(ledger.store.fetch, "default", group_by="node")
    assert by_node["items"] == [
        _group("run_u/a", (10, 5, 2, 0), 0.5, 1),
        _group("run_u/b", (3, 4, 0, 0), 0.25, 1),
    ]
    by_model = await usage_groups(ledger.store.fetch, "default", group_by="model")
    assert _group("m-run", (13, 9, 2, 0), 0.75, 2) in by_model["items"]
