"""Cross-stream read models over HTTP: the thread list, the pending-approvals index and
projection status, read after a command with ``?min_position`` (read-your-writes)."""

from __future__ import annotations

import threading
import time

import httpx

from infra.http.schemas import ApprovalPage, ProjectionsResponse, ThreadPage
from tests.e2e.helpers import assert_error, exactly, ok


def _start(client: httpx.Client, thread_id: str, executor: str | None = None) -> int:
    position = ok(client.post("/v1/threads", json={"thread_id": thread_id}), 201)["position"]
    if executor is not None:
        body = {"turn_id": "t1", "executor_id": executor}
        position = ok(client.post(f"/v1/threads/{thread_id}/turns", json=body), 201)["position"]
    return int(position)


def test_threads_are_listed_newest_first_with_filters(client: httpx.Client) -> None:
    _start(client, "thr_a")
    _start(client, "thr_b", executor="rt-1")
    last = _start(client, "thr_c", executor="rt-2")
    page = exactly(ThreadPage, ok(client.get(f"/v1/threads?min_position={last}"), 200))
    assert [t.thread_id for t in page.items] == ["thr_c", "thr_b", "thr_a"]
    assert page.next_cursor is None
    active = ok(client.get("/v1/threads?status=active"), 200)["items"]
    assert [t["thread_id"] for t in active] == ["thr_c", "thr_b"]
    on_rt1 = ok(client.get("/v1/threads?executor_id=rt-1"), 200)["items"]
    assert [(t["thread_id"], t["active_turn_id"]) for t in on_rt1] == [("thr_b", "t1")]
    idle = ok(client.get("/v1/threads?status=idle"), 200)["items"]
    assert [t["thread_id"] for t in idle] == ["thr_a"]


def test_paging_is_stable_while_threads_are_created(client: httpx.Client) -> None:
    for n in range(12):
        last = _start(client, f"thr_{n:02d}")
    first = ok(client.get(f"/v1/threads?limit=5&min_position={last}"), 200)
    stop = threading.Event()

    def create_more() -> None:
        with httpx.Client(base_url=str(client.base_url)) as writer:
            n = 0
            while not stop.is_set() and n < 40:
                ok(writer.post("/v1/threads", json={"thread_id": f"thr_new_{n}"}), 201)
                n += 1

    writer = threading.Thread(target=create_more)
    writer.start()
    try:
        seen = [t["thread_id"] for t in first["items"]]
        cursor = first["next_cursor"]
        while cursor is not None:
            page = ok(client.get("/v1/threads", params={"limit": 5, "cursor": cursor}), 200)
            seen += [t["thread_id"] for t in page["items"]]
            cursor = page["next_cursor"]
    finally:
        stop.set()
        writer.join()
    assert seen == [f"thr_{n:02d}" for n in reversed(range(12))]


def test_bad_cursor_and_bad_filters_answer_400(client: httpx.Client) -> None:
    assert_error(client.get("/v1/threads?cursor=not-a-cursor"), 400, "invalid_cursor")
    assert_error(client.get("/v1/threads?status=sleeping"), 400, "invalid_query")
    assert_error(client.get("/v1/threads?limit=0"), 400, "invalid_query")
    assert_error(client.get("/v1/threads?min_position=-1"), 400, "invalid_query")


def test_a_position_past_the_head_answers_400_at_once(client: httpx.Client) -> None:
    # No command was acknowledged there, so there is nothing to wait for (a projection that
    # lags behind a real position still answers 503 with Retry-After after a bounded wait).
    position = _start(client, "thr_1")
    started = time.monotonic()
    response = client.get(f"/v1/threads?min_position={position + 1000}")
    error = assert_error(response, 400, "invalid_query")
    assert time.monotonic() - started < 2.0
    assert error["details"]["head"] >= position
    assert "past the log's head" in error["message"]


def test_pending_approvals_index_follows_requests_and_decisions(client: httpx.Client) -> None:
    _start(client, "thr_1", executor="rt-1")
    body = {"approval_id": "a1", "turn_id": "t1", "approval_key": "shell"}
    asked = ok(client.post("/v1/threads/thr_1/approvals", json=body), 201)
    page = exactly(
        ApprovalPage,
        ok(client.get(f"/v1/approvals?min_position={asked['position']}"), 200),
    )
    assert [(a.thread_id, a.approval_id, a.turn_id) for a in page.items] == [("thr_1", "a1", "t1")]
    listed = ok(client.get("/v1/threads?status=active"), 200)["items"]
    assert listed[0]["pending_approvals"] == 1
    decision = {"turn_id": "t1", "decision": "approve"}
    decided = ok(client.post("/v1/threads/thr_1/approvals/a1/decision", json=decision), 200)
    after = ok(client.get(f"/v1/approvals?min_position={decided['position']}"), 200)
    assert after["items"] == []


def test_projection_status_reports_position_and_lag(client: httpx.Client) -> None:
    position = _start(client, "thr_1")
    ok(client.get(f"/v1/threads?min_position={position}"), 200)
    status = exactly(ProjectionsResponse, ok(client.get("/v1/projections"), 200))
    names = {p.name: p for p in status.projections}
    assert {"thread_summaries", "pending_approvals"} <= set(names)
    summaries = names["thread_summaries"]
    assert summaries.position >= position
    assert summaries.last_error is None
