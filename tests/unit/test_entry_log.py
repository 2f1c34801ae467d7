"""The entry log: stored entries stay JSON until read; appends and JSON output never decode."""

from __future__ import annotations

import orjson
import pytest

from domain.entry_log import EntryLog

STORED = [{"event": "a", "n": 1}, {"event": "b", "text": "line\nbreak \u2603"}]


def _stored() -> EntryLog[dict[str, object]]:
    return EntryLog.from_json(orjson.dumps(STORED))


def test_appending_to_a_stored_log_keeps_the_stored_part_as_json() -> None:
    log = _stored()
    log.append({"event": "c"})
    assert log._stored is not None  # nothing was decoded
    assert orjson.loads(log.json()) == [*STORED, {"event": "c"}]


def test_reading_an_entry_decodes_the_stored_part_once_in_order() -> None:
    log = _stored()
    log.append({"event": "c"})
    assert log[0] == STORED[0] and len(log) == 3 and log._stored is None
    assert [e["event"] for e in log] == ["a", "b", "c"]
    assert orjson.loads(log.json()) == [*STORED, {"event": "c"}]


@pytest.mark.parametrize(
    ("stored", "appended", "expected"),
    [
        (b"[]", [], []),
        (b"[]", [{"x": 1}], [{"x": 1}]),
        (orjson.dumps(STORED), [], STORED),
    ],
)
def test_the_json_of_a_log_is_always_one_array(
    stored: bytes, appended: list[dict[str, object]], expected: list[dict[str, object]]
) -> None:
    log: EntryLog[dict[str, object]] = EntryLog.from_json(stored)
    for entry in appended:
        log.append(entry)
    assert orjson.loads(log.json()) == expected


def test_a_stored_log_equals_the_same_entries_built_in_memory() -> None:
    assert _stored() == EntryLog(STORED) == STORED
    assert _stored() != EntryLog(STORED[:1])


def test_a_log_changes_like_a_list() -> None:
    log = _stored()
    log.insert(0, {"event": "z"})
    log[1] = {"event": "y"}
    del log[2]
    assert list(log) == [{"event": "z"}, {"event": "y"}]
