"""The log as plain-dict records equals the stored events, on PostgreSQL and SQLite, for
every kind of slice, with and without the time; ``record_pages`` scans it page by page."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from infra.log_export import record_pages
from infra.store.eventstore import EventStore
from infra.store.json_pages import LogSlice
from infra.store.records import RecordedEvent
from tests.integration.store_helpers import (
    AWKWARD_SLICES,
    read_slice,
)

SLICES = AWKWARD_SLICES


@pytest.fixture
def store(awkward_store: EventStore) -> EventStore:
    return awkward_store


def _expected(events: list[RecordedEvent], with_time: bool) -> list[dict[str, Any]]:
    records = [
        {
            "position": e.position,
            "tenant": e.tenant,
            "stream_type": e.stream_type,
            "stream_id": e.stream_id,
            "seq": e.seq,
            "type": e.type,
            "data": orjson.loads(e.data),
        }
        for e in events
    ]
    if with_time:
        for record, event in zip(records, events, strict=True):
            record["recorded_at"] = event.recorded_at
    return records


@pytest.mark.parametrize("where", SLICES, ids=range(len(SLICES)))
@pytest.mark.parametrize("with_time", [False, True], ids=["plain", "timed"])
def test_records_equal_the_stored_events(
    store: EventStore, where: LogSlice, with_time: bool
) -> None:
    events = read_slice(store.backend, where)
    assert events  # every slice holds events

    rows = store.backend.read_record_rows(where, with_time=with_time)
    records = rows.decode()

    assert records == _expected(events, with_time)
    assert rows.last == events[-1].position
    if with_time:
        moments = [record["recorded_at"] for record in records]
        assert all(moment.utcoffset() == timedelta(0) for moment in moments)


def test_an_empty_page_has_no_records(store: EventStore) -> None:
    rows = store.backend.read_record_rows(LogSlice(after_position=store.backend.max_position()))
    assert (rows.decode(), rows.last) == ([], 0)


@pytest.mark.parametrize("page_size", [1, 4, 1000])
def test_record_pages_scan_the_whole_log_in_order(store: EventStore, page_size: int) -> None:
    events = store.backend.read_all(limit=1000)
    pages = list(record_pages(store.backend, page_size=page_size))

    assert [len(page) for page in pages[:-1]] == [page_size] * (len(pages) - 1)
    assert [record for page in pages for record in page] == _expected(events, with_time=False)


def test_record_pages_stop_at_the_head_they_found_and_continue_after(
    store: EventStore,
) -> None:
    pages = record_pages(store.backend, after=3, upto=10, page_size=4, with_time=True)
    records = [record for page in pages for record in page]

    assert [record["position"] for record in records] == list(range(4, 11))
    assert all(isinstance(record["recorded_at"], datetime) for record in records)
    with pytest.raises(ValueError, match="page size"):
        next(record_pages(store.backend, page_size=0))


def test_closing_a_scan_early_stops_its_reading(store: EventStore) -> None:
    pages = record_pages(store.backend, page_size=2)
    first = next(pages)
    pages.close()

    assert [record["position"] for record in first] == [1, 2]
    assert not [t for t in threading.enumerate() if t.name == "ledger-read-ahead"]
