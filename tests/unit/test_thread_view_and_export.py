"""The thread view (approvals, per-turn usage, totals) and the export of its conversation."""

from __future__ import annotations

import pytest

from domain.thread import Thread, Usage
from infra.http.schemas import ThreadExport, ThreadViewResponse
from queries.thread_export import thread_export
from queries.thread_view import thread_view
from tests.e2e.helpers import exactly
from tests.unit.builders import add_item, at, new_thread


def start(thread: Thread, turn_id: str, *, input: str | None = None, auto: bool = False) -> None:
    thread.start_turn(
        turn_id=turn_id,
        input=input,
        executor_id=None,
        auto_approve=auto,
        trust_mode=False,
        now=at(1),
    )


def ask(
    thread: Thread,
    approval_id: str,
    turn_id: str = "t1",
    *,
    item_id: str | None = None,
    approval_key: str | None = None,
    requires_full_access: bool = False,
) -> None:
    thread.request_approval(
        approval_id=approval_id,
        turn_id=turn_id,
        item_id=item_id,
        approval_key=approval_key,
        requires_full_access=requires_full_access,
        now=at(3),
    )


def end(thread: Thread, turn_id: str) -> None:
    thread.end_turn(turn_id=turn_id, status="completed", error=None, now=at(9))


@pytest.fixture
def thread() -> Thread:
    """t1: a tool item, a pending and a decided approval, usage; t2 (auto-approve): no usage."""
    thread = new_thread()
    start(thread, "t1", input="fix the bug")
    add_item(thread, "i1", tool_name="exec_shell", payload={"output": "ok\n"})
    ask(thread, "a1", item_id="i1", approval_key="shell:ls", requires_full_access=True)
    ask(thread, "a2")
    thread.decide_approval(
        approval_id="a2",
        turn_id="t1",
        decision="deny",
        remember_for_session=True,
        actor="alice",
        now=at(4),
    )
    usage = Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2, reasoning_replay_tokens=1)
    thread.record_usage(turn_id="t1", usage=Usage(input_tokens=99), now=at(5))
    thread.record_usage(turn_id="t1", usage=usage, now=at(6))
    end(thread, "t1")
    start(thread, "t2", auto=True)
    ask(thread, "a3", turn_id="t2")
    return thread


def test_the_view_declares_exactly_the_fields_of_the_response_model(thread: Thread) -> None:
    exactly(ThreadViewResponse, thread_view(thread))
    exactly(ThreadViewResponse, thread_view(new_thread()))


def test_pending_approvals_show_only_those_still_waiting(thread: Thread) -> None:
    assert thread_view(thread)["pending_approvals"] == [
        {
            "approval_id": "a1",
            "turn_id": "t1",
            "item_id": "i1",
            "approval_key": "shell:ls",
            "requires_full_access": True,
            "requested_at": "2026-01-01T12:00:03Z",
        }
    ]


def test_every_approval_shows_with_its_decision_in_request_order(thread: Thread) -> None:
    approvals = thread_view(thread)["approvals"]

    assert [(a["approval_id"], a["status"], a["actor"]) for a in approvals] == [
        ("a1", "pending", None),
        ("a2", "deny", "alice"),
        ("a3", "approve", "policy"),
    ]
    assert approvals[1]["remember_for_session"] is True
    assert approvals[1]["decided_at"] == "2026-01-01T12:00:04Z"
    assert approvals[0]["decided_at"] is None
    assert approvals[2]["decided_at"] == approvals[2]["requested_at"]


def test_each_turn_shows_its_latest_usage_or_none(thread: Thread) -> None:
    turns = thread_view(thread)["turns"]

    assert turns[0]["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "reasoning_tokens": 2,
        "reasoning_replay_tokens": 1,
        "total_tokens": 18,
        "cost_usd": 0.0,
        "model": None,
    }
    assert turns[1]["usage"] is None


def test_thread_usage_totals_count_every_kind_of_token(thread: Thread) -> None:
    assert thread_view(thread)["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "reasoning_tokens": 2,
        "reasoning_replay_tokens": 1,
        "total_tokens": 18,
        "cost_usd": 0.0,
    }


# export ------------------------------------------------------------------------------------


def test_export_lists_inputs_messages_and_tools_in_order() -> None:
    thread = new_thread()
    start(thread, "t1", input="fix the bug")
    add_item(thread, "i1", tool_name="exec_shell", payload={"cmd": "ls", "output": "a\nb"})
    add_item(thread, "i2", tool_name=None, kind="reasoning", payload={"text": "hmm"})
    add_item(thread, "i3", tool_name=None, kind="message", payload={"text": "done"})
    thread.set_item_status(turn_id="t1", item_id="i1", status="completed", now=at(3))
    thread.record_usage(turn_id="t1", usage=Usage(input_tokens=7, output_tokens=3), now=at(4))
    end(thread, "t1")
    start(thread, "t2")  # no input: no user message
    add_item(thread, "i4", turn_id="t2", tool_name="apply_patch", payload={})
    add_item(thread, "i5", turn_id="t2", tool_name="web_search", status="failed")
    add_item(thread, "i6", turn_id="t2", tool_name=None, kind="message", payload={"content": "c"})

    exported = thread_export(thread)

    exactly(ThreadExport, exported)
    assert exported == {
        "thread_id": "thr_1",
        "messages": [
            {"role": "user", "turn_id": "t1", "item_id": None, "content": "fix the bug"},
            {
                "role": "tool",
                "turn_id": "t1",
                "item_id": "i1",
                "content": "a\nb",
                "status": "completed",
                "tool_name": "exec_shell",
            },
            {"role": "assistant", "turn_id": "t1", "item_id": "i3", "content": "done"},
            {
                "role": "tool",
                "turn_id": "t2",
                "item_id": "i4",
                "content": "",
                "status": "queued",
                "tool_name": "apply_patch",
            },
            {
                "role": "tool",
                "turn_id": "t2",
                "item_id": "i5",
                "content": "",
                "status": "failed",
                "tool_name": "web_search",
            },
            {"role": "assistant", "turn_id": "t2", "item_id": "i6", "content": "c"},
        ],
        "total_tokens": 10,
    }


@pytest.mark.parametrize(
    ("payload", "content"),
    [
        ({"text": "hello", "content": "ignored"}, "hello"),
        ({"content": "from content"}, "from content"),
        ({"text": ["not", "a string"], "content": "fallback"}, "fallback"),
        ({"parts": [{"b": 1, "a": "é"}]}, '{"parts":[{"a":"é","b":1}]}'),
        ({}, "{}"),
    ],
)
def test_message_content_is_its_text_else_its_content_else_its_payload_as_json(
    payload: dict[str, object], content: str
) -> None:
    thread = new_thread()
    start(thread, "t1")
    add_item(thread, "i1", tool_name=None, kind="message", payload=payload)

    assert thread_export(thread)["messages"][0]["content"] == content


def test_a_tool_output_that_is_not_text_is_exported_as_json() -> None:
    thread = new_thread()
    start(thread, "t1")
    add_item(thread, "i1", tool_name="run_tests", payload={"output": {"passed": 3}})

    assert thread_export(thread)["messages"][0]["content"] == '{"passed":3}'


def test_an_empty_thread_exports_no_messages_and_no_tokens() -> None:
    assert thread_export(new_thread()) == {"thread_id": "thr_1", "messages": [], "total_tokens": 0}
