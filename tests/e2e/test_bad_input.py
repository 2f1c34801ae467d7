"""Bad requests get one clear 4xx with the JSON error shape, never a 500, and append nothing.

Each case works on its own thread (with an active turn ``t1`` holding a queued item ``i1``)
on a server per backend started with LEDGER_MAX_BODY_BYTES=1024. "Nothing appended" is
checked twice: the thread's events and view are unchanged, and the next accepted command
lands at the global position right after the last one acknowledged before the bad request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LIMITED_BODY_BYTES, LedgerServer
from tests.e2e.helpers import assert_error, events_page, ok, thread_view


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # {thread} is the case's thread, which has an active turn t1 with item i1
    status: int
    code: str | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None


BIG = {"payload": {"blob": "x" * (4 * 1024)}}
THREAD = "/v1/threads/{thread}"
T1 = THREAD + "/turns/t1"

CASES = {
    # malformed JSON → 400
    "malformed_json_starting_a_thread": Case(
        "POST", "/v1/threads", 400, "malformed_json", content=b'{"title": '
    ),
    "malformed_json_adding_an_item": Case(
        "POST", T1 + "/items", 400, "malformed_json", content=b"{tool_name: exec_shell}"
    ),
    "malformed_json_completing_a_turn": Case(
        "POST", T1 + "/complete", 400, "malformed_json", content=b"\xff\xfe"
    ),
    # unknown ids → 404
    "unknown_thread_starting_a_turn": Case(
        "POST", "/v1/threads/thr_missing/turns", 404, json={"turn_id": "t1"}
    ),
    "unknown_thread_adding_an_item": Case(
        "POST", "/v1/threads/thr_missing/turns/t1/items", 404, json={"tool_name": "exec_shell"}
    ),
    "unknown_thread_read": Case("GET", "/v1/threads/thr_missing", 404),
    "unknown_thread_events": Case("GET", "/v1/threads/thr_missing/events", 404),
    "unknown_turn_adding_an_item": Case(
        "POST", THREAD + "/turns/t_missing/items", 404, json={"tool_name": "exec_shell"}
    ),
    "unknown_turn_completing": Case(
        "POST", THREAD + "/turns/t_missing/complete", 404, json={"status": "completed"}
    ),
    "unknown_item_status_change": Case(
        "POST", T1 + "/items/i_missing/status", 404, json={"status": "completed"}
    ),
    # lifecycle conflicts → 409
    "a_second_active_turn": Case("POST", THREAD + "/turns", 409, json={"turn_id": "t2"}),
    "a_thread_id_already_taken": Case("POST", "/v1/threads", 409, json={"thread_id": "{thread}"}),
    "an_item_id_already_taken": Case(
        "POST", T1 + "/items", 409, json={"item_id": "i1", "tool_name": "exec_shell"}
    ),
    # well-formed bodies that break a rule → 422
    "an_unknown_item_status": Case(
        "POST", T1 + "/items/i1/status", 422, "invalid_body", json={"status": "done"}
    ),
    "an_item_set_back_to_queued": Case(
        "POST", T1 + "/items/i1/status", 422, json={"status": "queued"}
    ),
    "an_item_status_missing": Case("POST", T1 + "/items/i1/status", 422, json={}),
    "an_unknown_turn_end_status": Case(
        "POST", T1 + "/complete", 422, "invalid_body", json={"status": "done"}
    ),
    "an_unknown_body_field_starting_a_thread": Case(
        "POST", "/v1/threads", 422, "invalid_body", json={"title": "x", "colour": "red"}
    ),
    "an_unknown_body_field_adding_an_item": Case(
        "POST", T1 + "/items", 422, "invalid_body", json={"tool_name": "x", "extra": 1}
    ),
    "a_body_that_is_not_an_object": Case("POST", "/v1/threads", 422, json=["thread_id"]),
    "a_wrongly_typed_field": Case("POST", THREAD + "/turns", 422, json={"input": 42}),
    # JSON types are taken as the schema states them: no 0 for false, no "4" for 4
    "a_number_for_a_boolean": Case("POST", THREAD + "/turns", 422, json={"trust_mode": 0}),
    "a_string_for_a_boolean": Case(
        "POST", T1 + "/items", 422, json={"tool_name": "exec_shell", "after_the_fact": "true"}
    ),
    "a_string_for_a_number": Case(
        "POST", "/v1/dispatch/claim", 422, json={"worker_id": "w1", "limit": "4"}
    ),
    "an_item_without_tool_or_kind": Case("POST", T1 + "/items", 422, json={}),
    "an_invalid_thread_id": Case("POST", "/v1/threads", 422, json={"thread_id": "bad id!"}),
    "a_workspace_outside_the_root": Case(
        "POST", "/v1/threads", 422, json={"workspace": "../../.."}
    ),
    "a_workspace_that_does_not_exist": Case(
        "POST", "/v1/threads", 422, json={"workspace": "proj/missing"}
    ),
    # size limit → 413
    "a_body_over_the_limit": Case("POST", T1 + "/items", 413, "body_too_large", json=BIG),
    "a_thread_body_over_the_limit": Case(
        "POST", "/v1/threads", 413, "body_too_large", json={"title": "x", "metadata": BIG}
    ),
    # bad headers and query strings → 400
    "an_idempotency_key_too_long": Case(
        "POST",
        "/v1/threads",
        400,
        json={},
        headers={"Idempotency-Key": "k" * 256},
    ),
    "limit_zero": Case("GET", THREAD + "/events", 400, "invalid_query", params={"limit": "0"}),
    # a page size over its limit → 422 naming it
    "limit_too_large": Case(
        "GET", THREAD + "/events", 422, "page_size_exceeded", params={"limit": "1001"}
    ),
    "limit_not_a_number": Case(
        "GET", THREAD + "/events", 400, "invalid_query", params={"limit": "abc"}
    ),
    "since_seq_negative": Case(
        "GET", THREAD + "/events", 400, "invalid_query", params={"since_seq": "-1"}
    ),
    "since_seq_not_a_number": Case(
        "GET", THREAD + "/events", 400, "invalid_query", params={"since_seq": "1e3"}
    ),
    "time_travel_to_a_seq_that_is_not_a_number": Case("GET", THREAD + "/at/abc", 400),
    # routes → 404 / 405
    "an_unknown_route": Case("GET", "/v1/nope", 404, "not_found"),
    "an_unknown_command_route": Case("POST", THREAD + "/explode", 404, "not_found", json={}),
    "a_method_the_route_does_not_have": Case("DELETE", THREAD, 405),
}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/threads", {"GET", "HEAD", "POST"}),
        ("DELETE", "/v1/runs", {"GET", "HEAD", "POST"}),
        ("PUT", "/v1/dispatch/claim", {"POST"}),
    ],
)
def test_a_method_a_path_lacks_answers_405_naming_every_method_it_has(
    client: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == allowed
    if "GET" in allowed:  # and the path still answers each of them
        assert client.get(path).status_code == 200
        assert client.head(path).status_code == 200


@dataclass
class Scene:
    client: httpx.Client
    thread_id: str
    last_position: int


@pytest.fixture
def scene(limited_server: LedgerServer) -> Iterator[Scene]:
    """A fresh thread with an active turn t1 and a queued item i1."""
    thread_id = f"thr_{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=limited_server.base_url, timeout=30.0) as client:
        ok(client.post("/v1/threads", json={"thread_id": thread_id}), 201)
        ok(client.post(f"/v1/threads/{thread_id}/turns", json={"turn_id": "t1"}), 201)
        item = ok(
            client.post(
                f"/v1/threads/{thread_id}/turns/t1/items",
                json={"item_id": "i1", "tool_name": "exec_shell"},
            ),
            201,
        )
        yield Scene(client, thread_id, item["position"])


def _fill(value: Any, thread_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{thread}", thread_id)
    if isinstance(value, dict):
        return {k: _fill(v, thread_id) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_request_is_refused_with_a_json_error_and_appends_nothing(
    scene: Scene, case: Case
) -> None:
    client, thread_id = scene.client, scene.thread_id
    before_events = events_page(client, thread_id)
    before_view = thread_view(client, thread_id)

    response = client.request(
        case.method,
        case.path.replace("{thread}", thread_id),
        json=_fill(case.json, thread_id),
        content=case.content,
        headers=case.headers,
        params=case.params,
    )
    assert_error(response, case.status, case.code)

    assert events_page(client, thread_id) == before_events
    assert thread_view(client, thread_id) == before_view
    assert_error(client.get("/v1/threads/thr_missing"), 404)  # no stream was created
    probe = ok(client.post("/v1/threads", json={}), 201)
    assert probe["position"] == scene.last_position + 1, "a rejected command appended an event"


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(scene: Scene) -> None:
    client, thread_id = scene.client, scene.thread_id
    before = events_page(client, thread_id)

    def chunks() -> Iterator[bytes]:
        yield b'{"tool_name": "exec_shell", "payload": {"blob": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}}'

    response = client.post(f"/v1/threads/{thread_id}/turns/t1/items", content=chunks())
    assert "content-length" not in response.request.headers
    error = assert_error(response, 413, "body_too_large")
    assert error["details"]["limit"] == LIMITED_BODY_BYTES
    assert events_page(client, thread_id) == before
    assert ok(client.post("/v1/threads", json={}), 201)["position"] == scene.last_position + 1


def test_a_body_just_under_the_limit_is_accepted(scene: Scene) -> None:
    client, thread_id = scene.client, scene.thread_id
    prefix = b'{"tool_name": "t", "payload": {"blob": "'
    suffix = b'"}}'
    body = prefix + b"x" * (LIMITED_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMITED_BODY_BYTES
    answer = ok(
        client.post(
            f"/v1/threads/{thread_id}/turns/t1/items",
            content=body,
            headers={"content-type": "application/json"},
        ),
        201,
    )
    assert answer["position"] == scene.last_position + 1


def test_commands_on_a_final_item_or_an_ended_turn_are_conflicts_that_append_nothing(
    scene: Scene,
) -> None:
    client, thread = scene.client, f"/v1/threads/{scene.thread_id}"
    ok(client.post(f"{thread}/turns/t1/items/i1/status", json={"status": "completed"}), 200)
    ok(client.post(f"{thread}/turns/t1/items", json={"item_id": "i2", "kind": "message"}), 201)
    last = ok(client.post(f"{thread}/turns/t1/complete", json={"status": "completed"}), 200)
    before = events_page(client, scene.thread_id)

    refused = [
        client.post(f"{thread}/turns/t1/items/i1/status", json={"status": "failed"}),
        client.post(f"{thread}/turns/t1/items/i2/status", json={"status": "completed"}),
        client.post(f"{thread}/turns/t1/items", json={"tool_name": "exec_shell"}),
        client.post(f"{thread}/turns/t1/complete", json={"status": "failed"}),
        client.post(f"{thread}/turns", json={"turn_id": "t1"}),
    ]
    for response in refused:
        assert_error(response, 409)
    assert events_page(client, scene.thread_id) == before
    assert ok(client.post("/v1/threads", json={}), 201)["position"] == last["position"] + 1
