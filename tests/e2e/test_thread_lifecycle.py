"""A whole thread over HTTP, on both backends: turns, items, status changes, completion."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx

from infra.http.schemas import (
    ItemAddedResponse,
    ItemStatusResponse,
    ThreadStartedResponse,
    ThreadViewResponse,
    TurnEndedResponse,
    TurnStartedResponse,
)
from tests.e2e.conftest import LedgerServer
from tests.e2e.helpers import all_events, scripted_thread, thread_view

RESPONSE_MODELS = {
    "/v1/threads": ThreadStartedResponse,
    "/turns": TurnStartedResponse,
    "/items": ItemAddedResponse,
    "/status": ItemStatusResponse,
    "/complete": TurnEndedResponse,
}

EXPECTED_ITEMS = {
    "t1": [
        ("i1", "command_execution", "exec_shell", "completed"),
        ("i2", "file_change", "apply_patch", "completed"),
        ("i3", "tool_call", "web_search", "failed"),
        ("i4", "message", None, "queued"),
    ],
    "t2": [
        ("i5", "command_execution", "EXEC_SHELL_WAIT", "queued"),
        ("i6", "file_change", "write_file", "declined"),
        ("i7", "reasoning", None, "queued"),
    ],
    "t3": [
        ("i8", "command_execution", "exec_shell", "interrupted"),
        ("i9", "tool_call", "read_file", "completed"),
    ],
}


def test_a_recorded_thread_reads_back_as_the_api_by_example_shows(
    ledger_server: LedgerServer, client: httpx.Client
) -> None:
    steps = scripted_thread(client, "thr_main")

    for number, step in enumerate(steps, start=1):
        model = next(m for suffix, m in RESPONSE_MODELS.items() if step.path.endswith(suffix))
        model.model_validate(step.body)
        assert step.body["seq"] == number
        assert step.body["position"] == number  # the only stream of a fresh store
        assert step.view_after["seq"] == number

    view = thread_view(client, "thr_main")
    parsed = ThreadViewResponse.model_validate(view)
    assert parsed.thread_id == "thr_main"
    assert parsed.status == "idle"
    assert parsed.seq == len(steps)
    assert parsed.title == "fix the flaky test"
    assert parsed.metadata == {"repo": "ledger", "n": 1}
    workspace_root = Path(ledger_server.stderr_path.parent, "workspace").resolve()
    assert parsed.workspace == str(workspace_root / "proj" / "a")
    assert parsed.pending_approvals == []
    assert parsed.usage.total_tokens == 0

    turns = {t.turn_id: t for t in parsed.turns}
    assert [t.turn_id for t in parsed.turns] == ["t1", "t2", "t3"]
    assert (turns["t1"].status, turns["t1"].error) == ("completed", None)
    assert (turns["t2"].status, turns["t2"].error) == ("failed", "tool crashed")
    assert (turns["t3"].status, turns["t3"].error) == ("interrupted", "user pressed stop")
    assert turns["t1"].executor_id == "rt-1"
    assert turns["t2"].executor_id == "rt-2"  # from the X-Ledger-Executor header
    assert turns["t3"].executor_id is None
    assert turns["t1"].input == "fix the bug"
    for turn in parsed.turns:
        assert turn.ended_at is not None
        assert datetime.fromisoformat(turn.ended_at) >= datetime.fromisoformat(turn.started_at)
        assert isinstance(turn.duration_ms, int) and turn.duration_ms >= 0
        got = [(i.item_id, i.kind, i.tool_name, i.status) for i in turn.items]
        assert got == EXPECTED_ITEMS[turn.turn_id], turn.turn_id
    assert turns["t1"].items[0].payload == {"cmd": "ls"}

    kinds_answered = {s.body["item_id"]: s.body["kind"] for s in steps if s.path.endswith("/items")}
    assert kinds_answered == {
        item_id: kind for items in EXPECTED_ITEMS.values() for item_id, kind, _, _ in items
    }
    ended = [s.body for s in steps if s.path.endswith("/complete")]
    assert [e["status"] for e in ended] == ["completed", "failed", "interrupted"]
    assert [e["duration_ms"] for e in ended] == [t.duration_ms for t in parsed.turns]


def test_an_active_turn_shows_in_the_view_until_it_completes(client: httpx.Client) -> None:
    client.post("/v1/threads", json={"thread_id": "thr_a"}).raise_for_status()
    client.post("/v1/threads/thr_a/turns", json={"turn_id": "t1"}).raise_for_status()
    active = thread_view(client, "thr_a")
    assert active["status"] == "active"
    assert active["turns"][0]["status"] == "in_progress"
    assert active["turns"][0]["ended_at"] is None
    assert active["turns"][0]["duration_ms"] is None
    done = client.post("/v1/threads/thr_a/turns/t1/complete", json={})
    assert done.status_code == 200
    assert done.json()["status"] == "completed"  # the default end status
    assert thread_view(client, "thr_a")["status"] == "idle"


def test_each_command_appends_exactly_one_event_of_the_matching_type(
    client: httpx.Client,
) -> None:
    steps = scripted_thread(client, "thr_types")
    events = all_events(client, "thr_types")
    assert len(events) == len(steps)
    expected = []
    for step in steps:
        if step.path == "/v1/threads":
            expected.append("ThreadStarted")
        elif step.path.endswith("/turns"):
            expected.append("TurnStarted")
        elif step.path.endswith("/items"):
            expected.append("ItemAdded")
        elif step.path.endswith("/status"):
            expected.append("ItemStatusChanged")
        else:
            expected.append(
                {"completed": "TurnCompleted", "failed": "TurnFailed"}.get(
                    step.body["status"], "TurnInterrupted"
                )
            )
    assert [e["type"] for e in events] == expected
    for step, event in zip(steps, events, strict=True):
        assert (event["seq"], event["position"]) == (step.body["seq"], step.body["position"])
        assert event["stream_type"] == "thread"
        assert event["recorded_at"].endswith("Z")
        for key in ("turn_id", "item_id"):
            if key in step.body and event["type"] != "ThreadStarted":
                assert event["data"][key] == step.body[key]
