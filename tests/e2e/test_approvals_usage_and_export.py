"""Approvals, usage and the export over HTTP, on both backends."""

from __future__ import annotations

from typing import Any

import httpx

from infra.http.schemas import ApprovalResponse, ThreadExport, UsageRecordedResponse
from tests.e2e.helpers import (
    all_events,
    appends_nothing,
    assert_error,
    exactly,
    ok,
    thread_view,
)

THREAD = "/v1/threads/thr_ap"


def post(client: httpx.Client, path: str, body: dict[str, Any], status: int, **kw: Any) -> Any:
    return ok(client.post(THREAD + path, json=body, **kw), status)


def approve(client: httpx.Client, approval_id: str, body: dict[str, Any], **kw: Any) -> Any:
    return client.post(f"{THREAD}/approvals/{approval_id}/decision", json=body, **kw)


def test_a_thread_with_approvals_usage_and_an_export_reads_back_as_recorded(
    client: httpx.Client,
) -> None:
    ok(client.post("/v1/threads", json={"thread_id": "thr_ap"}), 201)
    post(client, "/turns", {"turn_id": "t1", "input": "fix the bug"}, 201)
    post(
        client,
        "/turns/t1/items",
        {"item_id": "i1", "tool_name": "exec_shell", "payload": {"cmd": "ls", "output": "a\nb"}},
        201,
    )

    # a person is asked ---------------------------------------------------------------
    asked = post(
        client,
        "/approvals",
        {"approval_id": "a1", "turn_id": "t1", "item_id": "i1", "approval_key": "shell:ls"},
        201,
    )
    exactly(ApprovalResponse, asked)
    assert (asked["seq"], asked["status"], asked["decision"], asked["actor"]) == (
        4,
        "pending",
        None,
        None,
    )
    pending = thread_view(client, "thr_ap")["pending_approvals"]
    assert [(p["approval_id"], p["turn_id"], p["item_id"]) for p in pending] == [("a1", "t1", "i1")]
    assert pending[0]["approval_key"] == "shell:ls"
    assert pending[0]["requires_full_access"] is False

    # a decision naming another turn is refused and the approval stays pending -----------
    with appends_nothing(client, "thr_ap"):
        mismatch = assert_error(
            approve(client, "a1", {"turn_id": "t2", "decision": "approve"}), 409
        )
        missing = assert_error(approve(client, "a9", {"turn_id": "t1", "decision": "deny"}), 404)
        bad = approve(client, "a1", {"turn_id": "t1", "decision": "retry_with_full_access"})
        assert_error(bad, 422, "invalid_body")
    assert mismatch["message"] == (
        "pending approval scope mismatch for a1: expected thread thr_ap turn t1,"
        " URL had thread thr_ap turn t2"
    )
    assert missing["message"] == "no pending approval for a9"
    assert [p["approval_id"] for p in thread_view(client, "thr_ap")["pending_approvals"]] == ["a1"]

    # decided once, by the actor of the request ---------------------------------------------
    decided = ok(
        approve(
            client,
            "a1",
            {"turn_id": "t1", "decision": "approve", "remember_for_session": True},
            headers={"X-Ledger-Actor": "alice"},
        ),
        200,
    )
    exactly(ApprovalResponse, decided)
    assert (decided["seq"], decided["status"], decided["actor"]) == (5, "approve", "alice")
    with appends_nothing(client, "thr_ap"):
        again = assert_error(approve(client, "a1", {"turn_id": "t1", "decision": "deny"}), 404)
    assert again["message"] == "no pending approval for a1"

    # the session remembers the key -----------------------------------------------------------
    remembered = post(
        client,
        "/approvals",
        {"approval_id": "a2", "turn_id": "t1", "approval_key": "shell:ls"},
        201,
    )
    assert (remembered["status"], remembered["actor"]) == ("approve", "session")

    # usage twice on one turn: the second replaces the first -----------------------------------
    first = {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 2, "cost_usd": 0.5}
    exactly(UsageRecordedResponse, post(client, "/turns/t1/usage", {**first, "model": "m1"}, 200))
    second = {
        "input_tokens": 20,
        "output_tokens": 8,
        "reasoning_tokens": 4,
        "reasoning_replay_tokens": 2,
        "cost_usd": 0.75,
        "model": "m2",
    }
    recorded = post(client, "/turns/t1/usage", second, 200)
    assert recorded["total_tokens"] == 34
    with appends_nothing(client, "thr_ap"):
        for bad_usage in (
            {"input_tokens": -1, "output_tokens": 0},
            {"input_tokens": 1, "output_tokens": 0, "cost_usd": -0.5},
            {"input_tokens": 1.5, "output_tokens": 0},
            {"input_tokens": "1", "output_tokens": 0},
            {"output_tokens": 0},
        ):
            assert_error(client.post(f"{THREAD}/turns/t1/usage", json=bad_usage), 422)
        assert_error(client.post(f"{THREAD}/turns/t9/usage", json=first), 404)
    turn_usage = thread_view(client, "thr_ap")["turns"][0]["usage"]
    assert turn_usage == {**second, "total_tokens": 34}

    post(
        client,
        "/turns/t1/items",
        {"item_id": "i2", "kind": "message", "payload": {"text": "done"}},
        201,
    )
    post(client, "/turns/t1/items/i1/status", {"status": "completed"}, 200)
    post(client, "/turns/t1/complete", {}, 200)
    with appends_nothing(client, "thr_ap"):
        assert_error(client.post(f"{THREAD}/approvals", json={"turn_id": "t1"}), 409)
        assert_error(client.post(f"{THREAD}/turns/t1/usage", json=first), 409)

    # auto-approve turns: the policy decides in the request's one event ------------------------
    post(client, "/turns", {"turn_id": "t2", "auto_approve": True, "trust_mode": True}, 201)
    retry = post(
        client,
        "/approvals",
        {"approval_id": "a3", "turn_id": "t2", "requires_full_access": True},
        201,
    )
    assert (retry["status"], retry["actor"]) == ("retry_with_full_access", "policy")
    post(
        client,
        "/turns/t2/items",
        {"item_id": "i3", "tool_name": "apply_patch", "payload": {"diff": "+x"}},
        201,
    )
    post(client, "/turns/t2/usage", {"input_tokens": 3, "output_tokens": 1}, 200)
    post(client, "/turns/t2/complete", {"status": "failed", "error": "patch rejected"}, 200)
    post(client, "/turns", {"turn_id": "t3", "input": "try again", "auto_approve": True}, 201)
    denied = post(
        client,
        "/approvals",
        {"approval_id": "a4", "turn_id": "t3", "requires_full_access": True},
        201,
    )
    approved = post(client, "/approvals", {"approval_id": "a5", "turn_id": "t3"}, 201)
    assert (denied["status"], approved["status"]) == ("deny", "approve")
    assert denied["actor"] == approved["actor"] == "policy"
    post(
        client,
        "/turns/t3/items",
        {"item_id": "i4", "kind": "message", "payload": {"content": {"k": 1}}},
        201,
    )
    post(client, "/turns/t3/complete", {}, 200)
    # recorded late, on an ended turn, when asked explicitly
    post(
        client,
        "/turns/t3/items",
        {"item_id": "i5", "tool_name": "web_search", "status": "completed", "after_the_fact": True},
        201,
    )
    post(
        client,
        "/turns/t3/usage",
        {"input_tokens": 7, "output_tokens": 2, "after_the_fact": True},
        200,
    )

    view = thread_view(client, "thr_ap")
    assert view["pending_approvals"] == []
    assert [(a["approval_id"], a["decision"], a["actor"]) for a in view["approvals"]] == [
        ("a1", "approve", "alice"),
        ("a2", "approve", "session"),
        ("a3", "retry_with_full_access", "policy"),
        ("a4", "deny", "policy"),
        ("a5", "approve", "policy"),
    ]
    assert view["usage"] == {
        "input_tokens": 30,
        "output_tokens": 11,
        "reasoning_tokens": 4,
        "reasoning_replay_tokens": 2,
        "total_tokens": 47,
        "cost_usd": 0.75,
    }

    exported = ok(client.get(f"{THREAD}/export"), 200)
    exactly(ThreadExport, exported)
    assert exported == {
        "thread_id": "thr_ap",
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
            {"role": "assistant", "turn_id": "t1", "item_id": "i2", "content": "done"},
            {
                "role": "tool",
                "turn_id": "t2",
                "item_id": "i3",
                "content": "",
                "status": "queued",
                "tool_name": "apply_patch",
            },
            {"role": "user", "turn_id": "t3", "item_id": None, "content": "try again"},
            {
                "role": "assistant",
                "turn_id": "t3",
                "item_id": "i4",
                "content": '{"content":{"k":1}}',
            },
            {
                "role": "tool",
                "turn_id": "t3",
                "item_id": "i5",
                "content": "",
                "status": "completed",
                "tool_name": "web_search",
            },
        ],
        "total_tokens": 47,
    }

    events = all_events(client, "thr_ap")
    assert view["seq"] == len(events)
    approvals = [e for e in events if e["type"].startswith("Approval")]
    assert [(e["type"], e["data"]["approval_id"]) for e in approvals] == [
        ("ApprovalRequested", "a1"),
        ("ApprovalDecided", "a1"),
        ("ApprovalRequested", "a2"),
        ("ApprovalRequested", "a3"),
        ("ApprovalRequested", "a4"),
        ("ApprovalRequested", "a5"),
    ]
    assert approvals[1]["data"]["actor"] == approvals[1]["metadata"]["actor"] == "alice"
    assert approvals[1]["data"]["remember_for_session"] is True
    assert [e["data"]["decision"] for e in approvals[2:]] == [
        "approve",
        "retry_with_full_access",
        "deny",
        "approve",
    ]
    assert [e["type"] for e in events].count("UsageRecorded") == 4


def test_the_export_of_an_unknown_thread_is_not_found(client: httpx.Client) -> None:
    assert_error(client.get("/v1/threads/thr_missing/export"), 404)
