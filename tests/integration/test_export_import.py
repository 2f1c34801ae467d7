"""Export → import round trips on PostgreSQL and SQLite: same events, same hashes, same read models;
a tampered export is refused with nothing imported."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from infra.bootstrap import Ledger, all_projections
from infra.config import Settings
from infra.export_cli import add_export_parsers, run_export_command
from infra.http.errors import EXCEPTION_HANDLERS
from infra.http.export_routes import ENDPOINTS
from infra.http.wire import event_wire
from infra.log_export import event_pages, export_log
from infra.log_import import ImportRefused, import_export
from infra.projection_runner import ProjectionRunner
from infra.projection_store import projection_transaction
from infra.store.backend import Backend
from infra.store.hashing import format_timestamp
from infra.store.records import RecordedEvent
from infra.store.verify import verify_store
from projections.usage import UsageProjection
from tests import pg
from tests.integration.store_helpers import export_line, migrated
from tests.integration.usage_history import ManualClock, continue_thread, record_mixed_history

PAGE = 7


@pytest.fixture
async def source(database_url: str) -> AsyncIterator[Ledger]:
    service = Ledger(Settings(database_url=database_url))
    await service.start()
    service.projections.stop()  # the tests rebuild the read models themselves
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def target_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new database of the same kind, with no schema yet."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'target.db'}"
        return
    name = pg.create_empty_database()
    try:
        yield pg.url_for(name)
    finally:
        pg.drop_database(name)


@pytest.fixture
def target(target_url: str) -> Iterator[Backend]:
    backend = migrated(target_url)
    try:
        yield backend
    finally:
        backend.close()


def _all_events(backend: Backend) -> list[RecordedEvent]:
    return [event for page in event_pages(backend, page_size=1000) for event in page]


def _read_models(backend: Backend) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection of bootstrap (and usage) built from the whole log, as sorted rows.

    Neither store has run its projections (the source's service is stopped before the history
    is recorded), so catching up from position 0 is a rebuild from zero.
    """
    rows: dict[str, list[tuple[Any, ...]]] = {}
    names = {projection.name for projection in all_projections()}
    usage = [] if UsageProjection.name in names else [UsageProjection()]
    for projection in [*all_projections(), *usage]:
        runner = ProjectionRunner(backend, projection)
        runner.ensure_tables()
        runner.catch_up()
        assert runner.position() == backend.max_position()
        with projection_transaction(backend) as session:
            for table in projection.tables:
                rows[table.name] = sorted(session.fetchall(f"SELECT * FROM {table.name}"), key=repr)
    return rows


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ledger")
    add_export_parsers(parser.add_subparsers(dest="command", required=True))
    return run_export_command(parser.parse_args(argv))


async def test_an_export_imported_into_an_empty_store_gives_the_same_events_and_read_models(
    source: Ledger, target: Backend, tmp_path: Path
) -> None:
    last = await record_mixed_history(source, ManualClock())
    out = tmp_path / "log.jsonl"
    summary = export_log(source.backend, out, page_size=PAGE)
    assert (summary.events, summary.last_position) == (last, last)
    assert summary.pages == -(-last // PAGE)

    imported = import_export(target, out, batch=5)
    assert (imported.events, imported.first_position, imported.last_position) == (last, 1, last)

    exported = _all_events(source.backend)
    assert _all_events(target) == exported  # every field: tenant, position, data, hashes, …
    assert _lines(out) == [orjson.loads(export_line(e)) for e in exported]
    report = verify_store(target)
    assert report.ok, report.problems
    assert report.events == last
    models = _read_models(source.backend)
    assert all(models.values()), [name for name, rows in models.items() if not rows]
    assert _read_models(target) == models


async def test_export_lines_are_the_wire_format_plus_tenant(source: Ledger, tmp_path: Path) -> None:
    await record_mixed_history(source, ManualClock(), threads=1)
    out = tmp_path / "log.jsonl"
    assert _cli("export", "--out", str(out), "--database-url", source.settings.database_url) == 0
    lines = _lines(out)
    events = _all_events(source.backend)
    assert lines == [
        orjson.loads(orjson.dumps(event_wire(e))) | {"tenant": "default"} for e in events
    ]
    assert list(lines[0]) == [
        "stream_id",
        "stream_type",
        "seq",
        "position",
        "type",
        "class_version",
        "recorded_at",
        "data",
        "metadata",
        "prev_hash",
        "hash",
        "tenant",
    ]


async def test_a_parquet_export_has_the_same_rows_one_row_group_per_page(
    source: Ledger, tmp_path: Path
) -> None:
    last = await record_mixed_history(source, ManualClock(), threads=2)
    jsonl, parquet = tmp_path / "log.jsonl", tmp_path / "log.parquet"
    export_log(source.backend, jsonl, page_size=PAGE)
    summary = export_log(source.backend, parquet, fmt="parquet", page_size=PAGE)
    assert summary.events == last
    file = pq.ParquetFile(parquet)
    assert file.metadata.num_row_groups == summary.pages == -(-last // PAGE)
    rows = file.read().to_pylist()
    for row in rows:
        row["recorded_at"] = format_timestamp(row["recorded_at"])
        row["data"] = orjson.loads(row["data"])
        row["metadata"] = orjson.loads(row["metadata"])
    assert rows == _lines(jsonl)
    assert not (tmp_path / "log.parquet.partial").exists()


async def test_exports_resume_by_position_and_import_in_parts(
    source: Ledger, target: Backend, target_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    first_last = await record_mixed_history(source, clock, threads=2)
    url = source.settings.database_url
    part1, part2, whole = (tmp_path / f"{name}.jsonl" for name in ("part1", "part2", "whole"))
    assert _cli("export", "--out", str(part1), "--page-size", "4", "--database-url", url) == 0
    assert _lines(part1)[-1]["position"] == first_last

    await continue_thread(source, clock, "thr_0", "t3")  # streams of part 1 go on in part 2
    await record_mixed_history(source, clock, threads=1, start=2)
    after = str(first_last)
    assert _cli("export", "--after", after, "--out", str(part2), "--database-url", url) == 0
    assert _cli("export", "--out", str(whole), "--database-url", url) == 0
    assert _lines(part1) + _lines(part2) == _lines(whole)
    assert _lines(part2)[0]["position"] == first_last + 1

    assert _cli("import", "--in", str(part1), "--database-url", target_url) == 0
    assert _cli("import", "--in", str(part2), "--database-url", target_url) == 0
    assert _all_events(target) == _all_events(source.backend)
    assert verify_store(target).ok


def _tamper_data(lines: list[dict[str, Any]], index: int) -> None:
    lines[index]["data"]["input_tokens"] = 1_000_000


def _drop(lines: list[dict[str, Any]], index: int) -> None:
    del lines[index]


def _move_in_time(lines: list[dict[str, Any]], index: int) -> None:
    lines[index]["recorded_at"] = "2030-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_data, "hash does not match the event's content"),
        (_drop, "an event is missing"),
        (_move_in_time, "hash does not match the event's content"),
    ],
)
async def test_a_tampered_export_is_refused_and_nothing_is_imported(
    source: Ledger,
    target: Backend,
    target_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Any,
    reason: str,
) -> None:
    await record_mixed_history(source, ManualClock(), threads=2)
    out = tmp_path / "log.jsonl"
    export_log(source.backend, out)
    lines = _lines(out)
    index = next(i for i, line in enumerate(lines) if line["type"] == "UsageRecorded")
    tamper(lines, index)
    out.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))

    with pytest.raises(ImportRefused) as refused:
        import_export(target, out, batch=3)
    assert refused.value.line == index + 1
    assert reason in str(refused.value) and "nothing was imported" in str(refused.value)
    assert target.max_position() == 0

    capsys.readouterr()
    assert _cli("import", "--in", str(out), "--database-url", target_url) == 1
    message = capsys.readouterr().err
    assert f"import refused at line {index + 1}" in message and reason in message
    assert target.max_position() == 0


async def test_an_import_that_overlaps_the_target_is_refused(
    source: Ledger, target: Backend, tmp_path: Path
) -> None:
    await record_mixed_history(source, ManualClock(), threads=1)
    out = tmp_path / "log.jsonl"
    export_log(source.backend, out)
    import_export(target, out)
    with pytest.raises(ImportRefused, match="line 1: stream thr_0 seq 1: expected seq"):
        import_export(target, out)
    assert target.max_position() == len(_lines(out))


async def test_the_export_endpoint_streams_json_lines_after_a_position(
    source: Ledger, tmp_path: Path
) -> None:
    await record_mixed_history(source, ManualClock(), threads=2)
    expected = [orjson.loads(export_line(e)) for e in _all_events(source.backend)]
    routes = [Route(e.path, e.handler, methods=[e.method]) for e in ENDPOINTS]
    app = Starlette(routes=routes, exception_handlers=dict(EXCEPTION_HANDLERS))
    app.state.ledger = source
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        whole = await client.get("/v1/export")
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "application/x-ndjson"
        assert [orjson.loads(line) for line in whole.text.splitlines()] == expected
        part = await client.get("/v1/export", params={"after": 3, "limit": 5})
        assert [orjson.loads(line) for line in part.text.splitlines()] == expected[3:8]
        past = await client.get("/v1/export", params={"after": len(expected)})
        assert (past.status_code, past.text) == (200, "")
        bad = await client.get("/v1/export", params={"after": "-1"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_query"
