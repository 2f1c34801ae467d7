"""When a stream is due a snapshot: every N events, at a point offset per stream."""

from __future__ import annotations

import itertools

import pytest

from infra.snapshot_store import snapshot_due

EVERY = 100


def _due_versions(stream_id: str, upto: int, every: int = EVERY) -> list[int]:
    return [v for v in range(1, upto + 1) if snapshot_due(every, stream_id, v, v - 1)]


@pytest.mark.parametrize("stream_id", ["thr_1", "thr_2", "run_x", "thr_☃", ""])
def test_a_stream_is_due_once_every_n_events_after_its_first_n(stream_id: str) -> None:
    versions = _due_versions(stream_id, 1000)

    assert versions[0] >= EVERY
    assert versions[0] < 2 * EVERY
    assert all(b - a == EVERY for a, b in itertools.pairwise(versions))
    assert len(versions) in (9, 10)


def test_an_append_of_several_events_is_due_when_it_passes_a_due_point() -> None:
    first = _due_versions("thr_1", 1000)[0]

    assert snapshot_due(EVERY, "thr_1", first + 5, first - 5)
    assert not snapshot_due(EVERY, "thr_1", first - 1, first - 30)
    assert not snapshot_due(EVERY, "thr_1", first + 30, first)  # from the due point on


def test_streams_in_step_are_due_at_different_versions() -> None:
    firsts = {_due_versions(f"thr_load_{i}", 300)[0] for i in range(64)}

    assert len(firsts) > 32  # spread over the window, not one burst


def test_no_snapshots_when_every_is_zero_or_before_the_first_n_events() -> None:
    assert not any(snapshot_due(0, "thr_1", v, v - 1) for v in range(1, 500))
    assert not any(snapshot_due(EVERY, "thr_1", v, 0) for v in range(1, EVERY))
