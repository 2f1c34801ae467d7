"""Pages rendered in the wire format by the database equal the wire format built in Python,
on PostgreSQL and SQLite, for every kind of slice and both separators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from infra.http.wire import event_wire
from infra.store.eventstore import EventStore
from infra.store.hashing import canonical_json
from infra.store.json_pages import JsonPage, LogSlice, StreamSlice
from infra.store.records import NewEvent, RecordedEvent
from tests.integration.store_helpers import export_record, opened_store

AWKWARD_DATA: list[dict[str, Any]] = [
    {"text": 'quote " backslash \\ newline \n tab \t', "n": -1.5e-7},
    {"unicode": "naïve ☃ 日本 \U0001f600", "nested": {"list": [1, None, True, {"a": []}]}},
    {"control": "\x01\x1f", "big": 2**62, "empty": {}},
]
STREAMS = [
    ("default", "thread", "thr_1"),
    ("default", "run", 'run "odd" \\ ☃'),
    ("acme", "thread", "thr_é"),
]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    opened = await opened_store(database_url)
    try:
        moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
        for round_ in range(3):
            for index, (tenant, stream_type, stream_id) in enumerate(STREAMS):
                events = [
                    NewEvent(
                        type=f"Kind{(round_ + index + k) % 3}",
                        data=canonical_json(AWKWARD_DATA[(round_ + k) % 3] | {"k": k}),
                        metadata=canonical_json({"actor": "tëster", "round": round_}),
                        recorded_at=moment + timedelta(microseconds=round_ * 7 + index),
                    )
                    for k in range(2)
                ]
                await opened.append(tenant, stream_type, stream_id, round_ * 2, events)
        yield opened
    finally:
        await opened.close()


def _python_wire(events: list[RecordedEvent], with_tenant: bool) -> list[Any]:
    build = export_record if with_tenant else event_wire
    return [orjson.loads(orjson.dumps(build(event))) for event in events]


def _decoded(page: JsonPage, separator: str) -> list[Any]:
    if separator == ",":
        return list(orjson.loads(page.as_array()))
    return [orjson.loads(line) for line in page.body.split("\n")] if page.body else []


SLICES = [
    LogSlice(),
    LogSlice(after_position=5, limit=4),
    LogSlice(after_position=2, upto_position=9),
    LogSlice(types=("Kind0", "Kind2")),
    LogSlice(stream_type="run"),
    LogSlice(tenant="acme", limit=3),
]


@pytest.mark.parametrize("where", SLICES, ids=range(len(SLICES)))
@pytest.mark.parametrize("separator", [",", "\n"], ids=["array", "lines"])
@pytest.mark.parametrize("with_tenant", [False, True], ids=["wire", "export"])
async def test_a_page_rendered_by_the_database_equals_the_wire_format(
    store: EventStore, where: LogSlice, separator: Any, with_tenant: bool
) -> None:
    expected = store.backend.read_all(
        after_position=where.after_position,
        upto_position=where.upto_position,
        limit=where.limit,
        types=where.types,
        stream_type=where.stream_type,
        tenant=where.tenant,
    )
    assert expected  # every slice holds events

    for page in (
        store.backend.read_json(where, with_tenant=with_tenant, separator=separator),
        await store.read_json(where, with_tenant=with_tenant, separator=separator),
    ):
        assert page.count == len(expected)
        assert page.last == expected[-1].position
        assert _decoded(page, separator) == _python_wire(expected, with_tenant)
        assert page.body.count("\n") == (len(expected) - 1 if separator == "\n" else 0)


@pytest.mark.parametrize("after_seq", [0, 3, 6])
async def test_a_stream_page_rendered_by_the_database_equals_the_wire_format(
    store: EventStore, after_seq: int
) -> None:
    for tenant, _, stream_id in STREAMS:
        expected = store.backend.read_stream(tenant, stream_id, after_seq=after_seq, limit=2)
        where = StreamSlice(tenant, stream_id, after_seq=after_seq, limit=2)
        for page in (store.backend.read_json(where), await store.read_json(where)):
            assert page.count == len(expected)
            assert page.last == (expected[-1].seq if expected else 0)
            assert _decoded(page, ",") == _python_wire(expected, with_tenant=False)
    assert (await store.read_json(StreamSlice("acme", "thr_1"))).count == 0  # other tenant


async def test_an_empty_page_has_no_events_and_an_empty_body(store: EventStore) -> None:
    head = store.backend.max_position()
    page = await store.read_json(LogSlice(after_position=head))
    assert (page.count, page.last, page.body, page.as_array()) == (0, 0, "", "[]")
    assert store.backend.read_json(LogSlice(tenant="nobody")).count == 0


def test_only_comma_and_newline_separate_a_page() -> None:
    from infra.store.json_pages import json_page_query

    with pytest.raises(ValueError, match="separator"):
        json_page_query("postgres", LogSlice(), with_tenant=False, separator=";")  # type: ignore[arg-type]
