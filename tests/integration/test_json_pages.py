"""Pages rendered in the wire format by the database equal the wire format built in Python,
on PostgreSQL and SQLite, for every kind of slice and both separators."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from infra.http.wire import event_wire
from infra.store.eventstore import EventStore
from infra.store.json_pages import JsonPage, LogSlice, StreamSlice
from infra.store.records import RecordedEvent
from tests.integration.store_helpers import (
    AWKWARD_SLICES,
    AWKWARD_STREAMS,
    export_record,
    read_slice,
)


@pytest.fixture
def store(awkward_store: EventStore) -> EventStore:
    return awkward_store


def _python_wire(events: list[RecordedEvent], with_tenant: bool) -> list[Any]:
    build = export_record if with_tenant else event_wire
    return [orjson.loads(orjson.dumps(build(event))) for event in events]


def _decoded(page: JsonPage, separator: str) -> list[Any]:
    if separator == ",":
        return list(orjson.loads(page.as_array()))
    return [orjson.loads(line) for line in page.body.split("\n")] if page.body else []


SLICES = AWKWARD_SLICES


@pytest.mark.parametrize("where", SLICES, ids=range(len(SLICES)))
@pytest.mark.parametrize("separator", [",", "\n"], ids=["array", "lines"])
@pytest.mark.parametrize("with_tenant", [False, True], ids=["wire", "export"])
async def test_a_page_rendered_by_the_database_equals_the_wire_format(
    store: EventStore, where: LogSlice, separator: Any, with_tenant: bool
) -> None:
    expected = read_slice(store.backend, where)
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
    for tenant, _, stream_id in AWKWARD_STREAMS:
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
