"""Small HTTP helpers shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from infra.http.schemas import ErrorResponse, StreamEventsPage, ThreadViewResponse

Model = TypeVar("Model", bound=BaseModel)

GENESIS_HASH = "0" * 64


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the JSON error shape with ``status`` (and ``code``); returns its error."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} answered "
        f"{response.status_code} {response.text[:500]}, expected {status}"
    )
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code and error.message
    if code is not None:
        assert error.code == code, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def exactly(model: type[Model], data: Any) -> Model:
    """``data`` parsed as ``model``, with no field the model does not declare, at any depth
    (response models allow extra fields, so plain validation would not notice them)."""
    parsed = model.model_validate(data)
    _assert_declared(parsed, model.__name__)
    return parsed


def _assert_declared(value: Any, where: str) -> None:
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{where} has undeclared fields {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            _assert_declared(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, element in enumerate(value):
            _assert_declared(element, f"{where}[{index}]")


def ok(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} answered "
        f"{response.status_code} {response.text[:500]}, expected {status}"
    )
    return response.json()  # type: ignore[no-any-return]


def events_page(
    client: httpx.Client, thread_id: str, since_seq: int = 0, limit: int = 1000
) -> dict[str, Any]:
    response = client.get(
        f"/v1/threads/{thread_id}/events", params={"since_seq": since_seq, "limit": limit}
    )
    page = ok(response, 200)
    StreamEventsPage.model_validate(page)
    return page


def all_events(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    """Every event of a thread, read in pages of 1000."""
    events: list[dict[str, Any]] = []
    since = 0
    while True:
        page = events_page(client, thread_id, since)
        if not page["events"]:
            return events
        events.extend(page["events"])
        since = page["next_seq"]


@contextmanager
def appends_nothing(client: httpx.Client, thread_id: str) -> Iterator[None]:
    """The block leaves the thread's events (and so its seq) exactly as they were."""
    before = all_events(client, thread_id)
    yield
    after = all_events(client, thread_id)
    assert after == before, f"{len(after) - len(before)} events appended to {thread_id}"


def thread_view(client: httpx.Client, thread_id: str) -> dict[str, Any]:
    view = ok(client.get(f"/v1/threads/{thread_id}"), 200)
    exactly(ThreadViewResponse, view)
    return view


def assert_chain(events: list[dict[str, Any]], stream_id: str) -> None:
    """Seqs are 1..N, positions strictly increase, and each prev_hash is the previous hash."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["stream_id"] == stream_id for e in events)
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions)), positions
    previous = GENESIS_HASH
    for event in events:
        assert event["prev_hash"] == previous, event
        assert len(event["hash"]) == 64
        previous = event["hash"]


@dataclass(frozen=True)
class Step:
    """One command of a scripted thread: what it answered and the thread view right after."""

    method: str
    path: str
    status: int
    body: dict[str, Any]
    view_after: dict[str, Any]


def scripted_thread(client: httpx.Client, thread_id: str) -> list[Step]:
    """A thread with three turns and several items of every kind, as an agent runtime would
    record it; each command's response and the thread view captured right after it."""
    thread = f"/v1/threads/{thread_id}"
    t1, t2, t3 = (f"{thread}/turns/{t}" for t in ("t1", "t2", "t3"))
    script: list[tuple[str, dict[str, Any], dict[str, str], int]] = [
        (
            "/v1/threads",
            {
                "thread_id": thread_id,
                "title": "fix the flaky test",
                "workspace": "proj/a",
                "metadata": {"repo": "ledger", "n": 1},
            },
            {},
            201,
        ),
        (
            f"{thread}/turns",
            {"turn_id": "t1", "input": "fix the bug", "executor_id": "rt-1"},
            {},
            201,
        ),
        (
            f"{t1}/items",
            {"item_id": "i1", "tool_name": "exec_shell", "payload": {"cmd": "ls"}},
            {},
            201,
        ),
        (f"{t1}/items/i1/status", {"status": "in_progress"}, {}, 200),
        (f"{t1}/items/i1/status", {"status": "completed"}, {}, 200),
        (
            f"{t1}/items",
            {"item_id": "i2", "tool_name": "apply_patch", "payload": {"diff": "+x"}},
            {},
            201,
        ),
        (f"{t1}/items/i2/status", {"status": "completed"}, {}, 200),
        (
            f"{t1}/items",
            {"item_id": "i3", "tool_name": "web_search", "status": "in_progress"},
            {},
            201,
        ),
        (f"{t1}/items/i3/status", {"status": "failed"}, {}, 200),
        (f"{t1}/items", {"item_id": "i4", "kind": "message", "payload": {"text": "done"}}, {}, 201),
        (f"{t1}/complete", {"status": "completed"}, {}, 200),
        (
            f"{thread}/turns",
            {"turn_id": "t2", "input": "now the docs"},
            {"X-Ledger-Executor": "rt-2"},
            201,
        ),
        (f"{t2}/items", {"item_id": "i5", "tool_name": "EXEC_SHELL_WAIT"}, {}, 201),
        (f"{t2}/items", {"item_id": "i6", "tool_name": "write_file"}, {}, 201),
        (f"{t2}/items/i6/status", {"status": "declined"}, {}, 200),
        (f"{t2}/items", {"item_id": "i7", "kind": "reasoning"}, {}, 201),
        (f"{t2}/complete", {"status": "failed", "error": "tool crashed"}, {}, 200),
        (f"{thread}/turns", {"turn_id": "t3"}, {}, 201),
        (f"{t3}/items", {"item_id": "i8", "tool_name": "exec_shell"}, {}, 201),
        (
            f"{t3}/items",
            {"item_id": "i9", "tool_name": "read_file", "status": "completed"},
            {},
            201,
        ),
        (f"{t3}/complete", {"status": "interrupted", "error": "user pressed stop"}, {}, 200),
    ]
    steps = []
    for path, body, headers, status in script:
        answer = ok(client.post(path, json=body, headers=headers), status)
        steps.append(Step("POST", path, status, answer, thread_view(client, thread_id)))
    return steps
