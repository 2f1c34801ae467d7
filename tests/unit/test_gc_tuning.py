"""The service's garbage collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from infra.gc_tuning import THRESHOLDS, tune_for_service


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_service_freezes_start_up_objects_and_collects_less_often(restored: None) -> None:
    tune_for_service()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_cycles_are_still_collected(restored: None) -> None:
    tune_for_service()
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
