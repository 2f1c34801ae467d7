"""The snapshot codec: any aggregate state decodes to exactly what was encoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import pytest

from domain.run_state import LifecycleEntry, NodeUsage
from domain.thread import Thread
from infra.bootstrap import AGGREGATES, SNAPSHOT_DATACLASSES
from infra.snapshots import StateCodec
from tests.unit.builders import T0
from tests.unit.run_builders import drive_to_end, feedback, linear, new_run, start

CODEC = StateCodec(AGGREGATES, SNAPSHOT_DATACLASSES)


def _thread(**state: Any) -> Thread:
    thread = Thread(id="thr_1", workspace=None, title="t", metadata={}, timestamp=T0)
    thread.collect_events()
    for key, value in state.items():
        setattr(thread, key, value)
    return thread


def _round_trip(thread: Thread) -> Thread:
    decoded = CODEC.decode(CODEC.encode(thread))
    assert isinstance(decoded, Thread)
    return decoded


@pytest.mark.parametrize(
    "value",
    [
        {"$dt": "not a datetime", "$map": 1, "plain": [1, {"$set": 2}]},
        {"nested": {"deep": [{"$dcs": "x"}]}},
        [T0, None, {"at": T0 + timedelta(seconds=1)}],
        {"a", "b"},
        {"usage": NodeUsage(input_tokens=1, model="m"), "none": None},
        [NodeUsage(), None, NodeUsage(cost_usd=0.5)],
        [NodeUsage(model="m"), NodeUsage(input_tokens=3)],
        {"$key": NodeUsage(), "other": NodeUsage(output_tokens=2)},
        [
            LifecycleEntry(event="e", recorded_at_ms=1, detail=None, stop_kind=None, metadata={}),
            LifecycleEntry(event="f", recorded_at_ms=2, detail="d", stop_kind=None, metadata={}),
        ],
        [{"event": "e", "metadata": {"at": T0}}],
        [],
        {},
    ],
)
def test_values_that_look_like_tags_or_need_tags_round_trip(value: Any) -> None:
    assert _round_trip(_thread(metadata=value)).metadata == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1: "a"}, {"1": "a"}),  # JSON keys are strings
        ([[1, 2], (3, 4)], [[1, 2], [3, 4]]),  # and JSON has no tuples
    ],
)
def test_what_json_cannot_hold_comes_back_as_json(value: Any, expected: Any) -> None:
    assert _round_trip(_thread(metadata=value)).metadata == expected


def test_a_run_with_feedback_usage_and_lifecycle_entries_round_trips() -> None:
    run = new_run(linear("a", "b", "c"))
    start(run, "a")
    feedback(
        run,
        "a",
        feedback_id="f1",
        progress=0.5,
        metadata={"results": {"x": 1}, "note": "n"},
        chunks=[{"text": "hi"}],
        usage=NodeUsage(input_tokens=5, model="m"),
    )
    drive_to_end(run)
    run.collect_events()
    decoded = CODEC.decode(CODEC.encode(run))
    assert vars(decoded) == vars(run)
    assert run.lifecycle and all(type(e) is dict for e in run.lifecycle)


def test_a_runs_lifecycle_is_stored_as_its_own_json_and_restored_undecoded() -> None:
    run = new_run(linear("a", "b"))
    drive_to_end(run)
    run.collect_events()
    head, log = CODEC.encode(run).split(b"\n")
    assert orjson.loads(head)["state"]["lifecycle"] == {"$log": 0}
    assert orjson.loads(log) == list(run.lifecycle)

    decoded = CODEC.decode(CODEC.encode(run))
    assert decoded.lifecycle.json() == log  # written out again as stored, not re-encoded
    assert vars(decoded) == vars(run)


def test_plain_json_is_stored_untagged() -> None:
    payload = {"command": "pytest", "exit_code": 0, "lines": ["a", {"b": None}]}
    raw = CODEC.encode(_thread(metadata=payload))
    assert orjson.loads(raw)["state"]["metadata"] == payload


@dataclass
class _Shape:
    a: int
    b: list[int] = field(default_factory=list)


def test_a_snapshot_written_with_other_fields_is_refused() -> None:
    codec = StateCodec(AGGREGATES, (*SNAPSHOT_DATACLASSES, _Shape))
    document = orjson.loads(codec.encode(_thread(metadata={"x": _Shape(1)})))
    document["fields"]["_Shape"] = ["b", "a"]
    with pytest.raises(ValueError, match="_Shape"):
        codec.decode(orjson.dumps(document))


def test_an_unregistered_dataclass_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="not registered"):
        CODEC.encode(_thread(metadata={"x": _Shape(1)}))


@dataclass
class _Derived:
    a: int
    total: int = field(init=False, default=0)


def test_fields_outside_init_are_restored_as_they_were() -> None:
    value = _Derived(1)
    value.total = 7
    codec = StateCodec(AGGREGATES, (*SNAPSHOT_DATACLASSES, _Derived))
    decoded = codec.decode(codec.encode(_thread(metadata={"x": value, "rows": [value]})))
    assert decoded.metadata == {"x": value, "rows": [value]}  # type: ignore[attr-defined]
    assert decoded.metadata["x"].total == 7  # type: ignore[attr-defined]
