"""The run view as the HTTP layer writes it (orjson)."""

from __future__ import annotations

import orjson

from queries.run_view import run_diff, run_view
from tests.unit.run_builders import drive_to_end, linear, new_run


def test_lifecycle_history_is_written_as_one_object_per_entry() -> None:
    run = new_run(linear("a", "b"))
    drive_to_end(run)
    written = orjson.loads(orjson.dumps(run_view(run)))["lifecycle_history"]
    assert written == run.lifecycle
    assert written and set(written[0]) == {
        "event",
        "recorded_at_ms",
        "detail",
        "stop_kind",
        "metadata",
    }


def test_a_diff_adds_the_new_lifecycle_entries_as_objects() -> None:
    run = new_run(linear("a", "b"))
    before = new_run(linear("a", "b"))
    drive_to_end(run)
    diff = orjson.loads(orjson.dumps(run_diff(before, run, [], 1, run.version)))
    added = [c for c in diff["changes"] if c["path"].startswith("/lifecycle_history/")]
    assert [c["op"] for c in added] == ["add"] * (len(run.lifecycle) - len(before.lifecycle))
    assert added[0]["value"] == run.lifecycle[len(before.lifecycle)]
