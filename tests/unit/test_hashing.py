"""The hash chain: sha256(prev_hash || canonical JSON of the envelope), with a fixed vector."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from infra.store.hashing import (
    canonical_json,
    chain_hash,
    envelope_bytes,
    format_timestamp,
    parse_timestamp,
)
from infra.store.records import GENESIS_HASH

PREV = "0" * 64
VECTOR_ARGS: dict[str, Any] = {
    "stream_id": "thr_1",
    "seq": 1,
    "type": "ThreadStarted",
    "data": b'{"title":"demo"}',
    "metadata": b"{}",
    "recorded_at": datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
}
VECTOR_ENVELOPE = {
    "stream_id": "thr_1",
    "seq": 1,
    "type": "ThreadStarted",
    "data": {"title": "demo"},
    "metadata": {},
    "recorded_at": "2026-01-01T00:00:00.000000Z",
}
VECTOR_HASH = "4f32fea09c0f67d0a3b13840d5740af0a0d55012146635401a15b9969b87e11e"


def test_genesis_hash_is_64_zeros() -> None:
    assert GENESIS_HASH == PREV


def test_chain_hash_matches_an_independent_computation() -> None:
    expected = hashlib.sha256(
        PREV.encode() + orjson.dumps(VECTOR_ENVELOPE, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()

    assert chain_hash(PREV, **VECTOR_ARGS) == expected


def test_chain_hash_matches_the_fixed_vector() -> None:
    assert chain_hash(PREV, **VECTOR_ARGS) == VECTOR_HASH


def test_envelope_bytes_equal_the_sorted_json_of_the_parsed_envelope() -> None:
    assert envelope_bytes(**VECTOR_ARGS) == (
        b'{"data":{"title":"demo"},"metadata":{},"recorded_at":"2026-01-01T00:00:00.000000Z",'
        b'"seq":1,"stream_id":"thr_1","type":"ThreadStarted"}'
    )
    assert envelope_bytes(**VECTOR_ARGS) == orjson.dumps(
        VECTOR_ENVELOPE, option=orjson.OPT_SORT_KEYS
    )


def test_envelope_with_nested_data_and_escapes_equals_sorted_json() -> None:
    data = {"z": [1, {"b": None, "a": 'é"\n'}], "a": 1.5}
    metadata = {"correlation_id": "c-1", "actor": "ünï"}
    args: dict[str, Any] = {
        "stream_id": 'thr_"quoted"',
        "seq": 12345,
        "type": "ItemAdded",
        "data": canonical_json(data),
        "metadata": canonical_json(metadata),
        "recorded_at": datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
    }
    parsed = {
        "stream_id": 'thr_"quoted"',
        "seq": 12345,
        "type": "ItemAdded",
        "data": data,
        "metadata": metadata,
        "recorded_at": "2026-03-04T05:06:07.890123Z",
    }

    assert envelope_bytes(**args) == orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream_id", "thr_2"),
        ("seq", 2),
        ("type", "TurnStarted"),
        ("data", b'{"title":"demo!"}'),
        ("metadata", b'{"actor":"x"}'),
        ("recorded_at", datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_changing_any_field_changes_the_hash(field: str, value: object) -> None:
    changed = {**VECTOR_ARGS, field: value}

    assert chain_hash(PREV, **changed) != VECTOR_HASH


def test_changing_the_previous_hash_changes_the_hash() -> None:
    assert chain_hash("1" + "0" * 63, **VECTOR_ARGS) != VECTOR_HASH


def test_each_hash_chains_on_the_previous_one() -> None:
    first = chain_hash(PREV, **VECTOR_ARGS)
    second_args = {**VECTOR_ARGS, "seq": 2, "type": "TurnStarted", "data": b'{"turn_id":"t1"}'}

    second = chain_hash(first, **second_args)

    assert second == hashlib.sha256(first.encode() + envelope_bytes(**second_args)).hexdigest()
    assert second != chain_hash(PREV, **second_args)


def test_format_timestamp_gives_microseconds_and_z() -> None:
    assert format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    assert (
        format_timestamp(datetime(2026, 12, 31, 23, 59, 59, 123456, tzinfo=UTC))
        == "2026-12-31T23:59:59.123456Z"
    )


def test_format_timestamp_converts_other_offsets_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert (
        format_timestamp(datetime(2026, 1, 1, 1, 30, 0, 5, tzinfo=plus_two))
        == "2025-12-31T23:30:00.000005Z"
    )


def test_parse_timestamp_reads_what_format_timestamp_writes() -> None:
    moment = datetime(2026, 7, 8, 9, 10, 11, 12, tzinfo=UTC)

    assert parse_timestamp(format_timestamp(moment)) == moment


def test_canonical_json_sorts_keys_without_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": None}}) == (
        b'{"a":{"c":null,"d":[1,2]},"b":1}'
    )
