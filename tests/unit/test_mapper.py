"""The mapper: domain events to stored events (canonical JSON) and back, with upcasting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest

from domain.base import LedgerAggregate
from domain.thread import Thread
from infra.mapper import EventMapper, UnknownEventType
from infra.store.records import NewEvent, RecordedEvent
from tests.unit.builders import T0, add_item, at, new_thread, start_turn

ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def recorded(
    new: NewEvent,
    *,
    stream_id: str,
    seq: int,
    stream_type: str = "thread",
    recorded_at: datetime | None = None,
) -> RecordedEvent:
    """The row a store would hold for ``new`` (built by hand: no store involved)."""
    return RecordedEvent(
        tenant="default",
        stream_type=stream_type,
        stream_id=stream_id,
        seq=seq,
        position=100 + seq,
        type=new.type,
        class_version=new.class_version,
        data=new.data,
        metadata=new.metadata,
        recorded_at=recorded_at or new.recorded_at or T0,
        prev_hash="0" * 64,
        hash="f" * 64,
    )


def every_thread_event() -> list[LedgerAggregate.Event]:
    """At least one event of every Thread event type, with nested and unsorted payloads."""
    thread = Thread(
        id="thr_1",
        workspace="/ws/proj",
        title="demo",
        metadata={"zeta": 1, "alpha": {"y": 2, "x": [3, None]}},
        timestamp=T0,
    )
    start_turn(thread, "t1", now=at(1))
    add_item(thread, "i1", tool_name="exec_shell", payload={"b": 1, "a": {"d": 2, "c": 3}})
    add_item(thread, "i2", tool_name=None, kind="message", status="in_progress", now=at(2))
    thread.set_item_status(turn_id="t1", item_id="i1", status="in_progress", now=at(3))
    thread.end_turn(turn_id="t1", status="interrupted", error="stop", now=at(4, ms=250))
    start_turn(thread, "t2", now=at(5))
    thread.end_turn(turn_id="t2", status="failed", error="boom", now=at(6))
    start_turn(thread, "t3", now=at(7))
    thread.end_turn(turn_id="t3", status="completed", error=None, now=at(8))
    return thread.collect_events()


@pytest.fixture
def mapper() -> EventMapper:
    return EventMapper([Thread])


def test_the_thread_events_cover_every_thread_event_type() -> None:
    names = {type(e).__name__ for e in every_thread_event()}

    assert names == {
        "ThreadStarted",
        "TurnStarted",
        "ItemAdded",
        "ItemStatusChanged",
        "TurnCompleted",
        "TurnFailed",
        "TurnInterrupted",
    }


def test_every_thread_event_round_trips_to_an_equal_event(mapper: EventMapper) -> None:
    for original in every_thread_event():
        new = mapper.to_new_event(original, {"actor": "test"})
        loaded = mapper.to_domain_event(
            recorded(new, stream_id=original.originator_id, seq=original.originator_version)
        )

        assert type(loaded) is type(original)
        assert loaded == original


def test_round_tripped_events_fold_to_the_same_thread(mapper: EventMapper) -> None:
    originals = every_thread_event()
    loaded = [
        mapper.to_domain_event(
            recorded(
                mapper.to_new_event(e, {}), stream_id=e.originator_id, seq=e.originator_version
            )
        )
        for e in originals
    ]

    thread: Any = None
    for domain_event in loaded:
        thread = domain_event.mutate(thread)

    assert isinstance(thread, Thread)
    assert thread.version == len(originals)
    assert thread.items["i1"].payload == {"b": 1, "a": {"d": 2, "c": 3}}
    assert thread.turns["t1"].duration_ms == 3250


def test_the_new_event_names_its_type_version_and_time(mapper: EventMapper) -> None:
    started = every_thread_event()[1]

    new = mapper.to_new_event(started, {})

    assert new.type == "TurnStarted"
    assert new.class_version == 1
    assert new.recorded_at == at(1)


def test_data_and_metadata_are_canonical_json(mapper: EventMapper) -> None:
    for original in every_thread_event():
        new = mapper.to_new_event(original, {"zz": 1, "aa": {"k2": 1, "k1": 2}})

        assert new.data == orjson.dumps(orjson.loads(new.data), option=orjson.OPT_SORT_KEYS)
        assert new.metadata == b'{"aa":{"k1":2,"k2":1},"zz":1}'


def test_nested_keys_in_data_are_sorted(mapper: EventMapper) -> None:
    item_added = every_thread_event()[2]

    new = mapper.to_new_event(item_added, {})

    assert new.data == (
        b'{"item_id":"i1","kind":"command_execution","payload":{"a":{"c":3,"d":2},"b":1},'
        b'"status":"queued","tool_name":"exec_shell","turn_id":"t1"}'
    )


def test_data_leaves_out_the_envelope_fields(mapper: EventMapper) -> None:
    for original in every_thread_event():
        data = orjson.loads(mapper.to_new_event(original, {}).data)

        assert ENVELOPE.isdisjoint(data)


def test_thread_started_data_holds_only_its_own_fields(mapper: EventMapper) -> None:
    started = every_thread_event()[0]

    data = orjson.loads(mapper.to_new_event(started, {}).data)

    assert data == {
        "workspace": "/ws/proj",
        "title": "demo",
        "metadata": {"zeta": 1, "alpha": {"y": 2, "x": [3, None]}},
    }


def test_the_envelope_comes_from_the_record_not_the_data(mapper: EventMapper) -> None:
    thread = new_thread("thr_9")
    new = mapper.to_new_event(thread.collect_events()[0], {})
    moment = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

    loaded = mapper.to_domain_event(recorded(new, stream_id="thr_9", seq=1, recorded_at=moment))

    assert loaded.originator_id == "thr_9"
    assert loaded.originator_version == 1
    assert loaded.timestamp == moment
    assert loaded.originator_topic == "domain.thread:Thread"  # type: ignore[attr-defined]


def test_an_unknown_stored_type_is_refused(mapper: EventMapper) -> None:
    new = NewEvent(type="ThreadTeleported", data=b"{}", recorded_at=T0)

    with pytest.raises(UnknownEventType, match="ThreadTeleported"):
        mapper.to_domain_event(recorded(new, stream_id="thr_1", seq=1))


# upcasting ----------------------------------------------------------------------------


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 called the field ``name``; version 2 calls it ``label`` and adds ``colour``."""
    return {"label": data["name"], "colour": "unknown"}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "label": data["label"].upper()}


class Widget(LedgerAggregate):
    """A tiny aggregate that exists only to show how old stored shapes are read."""

    stream_type: ClassVar[str] = "widget"

    class WidgetLabelled(LedgerAggregate.Event):
        class_version = 2
        upcasters = {1: _v1_to_v2}

        label: str
        colour: str

    class WidgetShouted(LedgerAggregate.Event):
        class_version = 3
        upcasters = {1: _v1_to_v2, 2: _v2_to_v3}

        label: str
        colour: str


@pytest.fixture
def widget_mapper() -> EventMapper:
    return EventMapper([Widget])


def stored_widget(type_: str, class_version: int, data: bytes) -> RecordedEvent:
    return recorded(
        NewEvent(type=type_, data=data, recorded_at=T0, class_version=class_version),
        stream_id="wid_1",
        seq=2,
        stream_type="widget",
    )


def test_a_stored_version_1_event_is_read_in_its_current_shape(
    widget_mapper: EventMapper,
) -> None:
    old = stored_widget("WidgetLabelled", 1, b'{"name":"blue box"}')

    loaded = widget_mapper.to_domain_event(old)

    assert isinstance(loaded, Widget.WidgetLabelled)
    assert loaded.label == "blue box"
    assert loaded.colour == "unknown"
    assert (loaded.originator_id, loaded.originator_version, loaded.timestamp) == ("wid_1", 2, T0)


def test_a_stored_current_version_event_is_read_unchanged(widget_mapper: EventMapper) -> None:
    current = stored_widget("WidgetLabelled", 2, b'{"colour":"red","label":"blue box"}')

    loaded = widget_mapper.to_domain_event(current)

    assert isinstance(loaded, Widget.WidgetLabelled)
    assert (loaded.label, loaded.colour) == ("blue box", "red")


def test_upcasters_run_in_order_from_the_stored_version_to_the_current_one(
    widget_mapper: EventMapper,
) -> None:
    from_v1 = widget_mapper.to_domain_event(stored_widget("WidgetShouted", 1, b'{"name":"hi"}'))
    from_v2 = widget_mapper.to_domain_event(
        stored_widget("WidgetShouted", 2, b'{"colour":"red","label":"hi"}')
    )

    assert isinstance(from_v1, Widget.WidgetShouted)
    assert isinstance(from_v2, Widget.WidgetShouted)
    assert (from_v1.label, from_v1.colour) == ("HI", "unknown")
    assert (from_v2.label, from_v2.colour) == ("HI", "red")


def test_a_new_event_is_written_at_its_class_version(widget_mapper: EventMapper) -> None:
    labelled = Widget.WidgetLabelled(
        originator_id="wid_1", originator_version=2, timestamp=T0, label="x", colour="red"
    )

    new = widget_mapper.to_new_event(labelled, {})

    assert new.class_version == 2
    assert new.data == b'{"colour":"red","label":"x"}'
    again = widget_mapper.to_domain_event(recorded(new, stream_id="wid_1", seq=2))
    assert again == labelled


def test_one_mapper_serves_the_events_of_several_aggregates() -> None:
    """The design has several aggregates (threads and runs) sharing one mapper."""
    mapper = EventMapper([Thread, Widget])

    thread_event = every_thread_event()[1]
    new = mapper.to_new_event(thread_event, {})
    assert mapper.to_domain_event(recorded(new, stream_id="thr_1", seq=2)) == thread_event
    widget_event = mapper.to_domain_event(stored_widget("WidgetLabelled", 1, b'{"name":"n"}'))
    assert isinstance(widget_event, Widget.WidgetLabelled)
