"""SSE live tails on both backends: where a tail starts, how it resumes, heartbeats, errors.

One server per backend serves the whole module (``LEDGER_SSE_HEARTBEAT_MS=300``); each
test works on threads of its own. Stream tails use seq as the SSE id, the global tail
uses the position.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import pg
from tests.e2e.conftest import LedgerServer, ServerLauncher
from tests.e2e.helpers import all_events, assert_error, ok
from tests.e2e.sse import Frame, frames

pytestmark = pytest.mark.timeout(60)

HEARTBEAT_MS = 300
READ_TIMEOUT = httpx.Timeout(10.0, read=5.0)
WAIT_S = 10.0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def tail_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LedgerServer]:
    workdir = tmp_path_factory.mktemp(f"tails-{request.param}")
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'ledger.db'}"
    else:
        database = pg.create_database()
        url = pg.url_for(database)
    servers = ServerLauncher(workdir)
    try:
        yield servers.start(url, {"LEDGER_SSE_HEARTBEAT_MS": str(HEARTBEAT_MS)})
    finally:
        troubled = servers.stop_all()
        if database is not None:
            pg.drop_database(database)
    if troubled:
        pytest.fail("a ledger server logged an unexpected error:\n" + "\n".join(troubled))


@pytest.fixture
def client(tail_server: LedgerServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tail_server.base_url, timeout=READ_TIMEOUT) as http:
        yield http


def new_thread(client: httpx.Client, thread_id: str, items: int = 3) -> list[dict[str, Any]]:
    """A thread with a turn and ``items`` message items (2 + items events); its events."""
    ok(client.post("/v1/threads", json={"thread_id": thread_id}), 201)
    ok(client.post(f"/v1/threads/{thread_id}/turns", json={"turn_id": "t1"}), 201)
    for n in range(items):
        add_item(client, thread_id, f"i{n}")
    return all_events(client, thread_id)


def add_item(client: httpx.Client, thread_id: str, item_id: str) -> dict[str, Any]:
    body = {"item_id": item_id, "kind": "message"}
    return ok(client.post(f"/v1/threads/{thread_id}/turns/t1/items", json=body), 201)


def ensure_thread(client: httpx.Client, thread_id: str) -> None:
    if client.get(f"/v1/threads/{thread_id}").status_code == 404:
        ok(client.post("/v1/threads", json={"thread_id": thread_id}), 201)


def head(client: httpx.Client) -> int:
    """The current max position, read from the global feed."""
    position = 0
    while True:
        page = ok(client.get("/v1/events", params={"after": position, "limit": 1000}), 200)
        if not page["events"]:
            return position
        position = page["next_after"]


class Tail:
    """An open SSE response read frame by frame, each read bounded in time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._frames = frames(response)
        self.comments: list[str] = []

    def next_frame(self) -> Frame:
        return next(self._frames)

    def connected(self) -> Tail:
        """Wait for the server's first comment: from then on the starting point is fixed."""
        frame = self.next_frame()
        assert frame.comment == "connected", frame
        return self

    def events(self, count: int) -> list[Frame]:
        """The next ``count`` events (comments are kept aside)."""
        deadline = time.monotonic() + WAIT_S
        got: list[Frame] = []
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} events arrived"
            frame = self.next_frame()
            if frame.is_comment:
                self.comments.append(frame.comment or "")
            else:
                got.append(frame)
        return got


@contextlib.contextmanager
def tail(
    client: httpx.Client,
    path: str,
    *,
    last_event_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> Iterator[Tail]:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    with client.stream("GET", path, headers=headers, params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Tail(response).connected()


def ids(events: list[Frame]) -> list[int]:
    return [e.position for e in events]


def test_thread_tail_without_last_event_id_starts_at_seq_1_then_goes_live(
    client: httpx.Client,
) -> None:
    stored = new_thread(client, "thr_from_start")
    with tail(client, "/v1/threads/thr_from_start/stream") as stream:
        backlog = stream.events(len(stored))
        assert ids(backlog) == list(range(1, len(stored) + 1))
        assert [e.json() for e in backlog] == stored
        assert all(e.event == "message" for e in backlog)
        live = add_item(client, "thr_from_start", "live")
        (event,) = stream.events(1)
    assert event.position == live["seq"] == len(stored) + 1
    assert event.json()["position"] == live["position"]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_thread_tail_resumes_exactly_after_last_event_id(client: httpx.Client, k: int) -> None:
    thread_id = f"thr_resume_header_{k}"
    stored = new_thread(client, thread_id)  # seqs 1..5
    with tail(client, f"/v1/threads/{thread_id}/stream", last_event_id=str(k)) as stream:
        backlog = stream.events(len(stored) - k)
        live = add_item(client, thread_id, "live")
        (next_event,) = stream.events(1)
    assert ids(backlog) == list(range(k + 1, len(stored) + 1))
    assert [e.json() for e in backlog] == stored[k:]
    assert next_event.position == live["seq"] == len(stored) + 1  # no duplicate, no gap


@pytest.mark.parametrize("k", [0, 2, 5])
def test_thread_tail_after_parameter_resumes_exactly_after_k(client: httpx.Client, k: int) -> None:
    thread_id = f"thr_resume_after_{k}"
    stored = new_thread(client, thread_id)
    with tail(client, f"/v1/threads/{thread_id}/stream", params={"after": k}) as stream:
        backlog = stream.events(len(stored) - k)
        live = add_item(client, thread_id, "live")
        (next_event,) = stream.events(1)
    assert ids(backlog) == list(range(k + 1, len(stored) + 1))
    assert [e.json() for e in backlog] == stored[k:]
    assert next_event.position == live["seq"]


def test_last_event_id_wins_over_the_after_parameter(client: httpx.Client) -> None:
    """An EventSource reconnects to the same URL (``?after=0`` included) with Last-Event-ID."""
    stored = new_thread(client, "thr_header_wins")
    path = "/v1/threads/thr_header_wins/stream"
    with tail(client, path, last_event_id="3", params={"after": 0}) as stream:
        backlog = stream.events(len(stored) - 3)
    assert ids(backlog) == list(range(4, len(stored) + 1))


def test_global_tail_resumes_exactly_after_a_position(client: httpx.Client) -> None:
    new_thread(client, "thr_global_resume")
    everything = ok(client.get("/v1/events", params={"after": 0, "limit": 10_000}), 200)["events"]
    top = everything[-1]["position"]
    assert [e["position"] for e in everything] == list(range(1, top + 1))
    k = top - 4
    with tail(client, "/v1/events/stream", last_event_id=str(k)) as by_header:
        from_header = by_header.events(4)
    with tail(client, "/v1/events/stream", params={"after": k}) as by_param:
        from_param = by_param.events(4)
        live = add_item(client, "thr_global_resume", "live")
        (next_event,) = by_param.events(1)
    for got in (from_header, from_param):
        assert ids(got) == list(range(k + 1, top + 1))
        assert [e.json() for e in got] == everything[k:]
    assert next_event.position == live["position"] == top + 1


def test_global_tail_without_after_starts_at_the_current_head(client: httpx.Client) -> None:
    new_thread(client, "thr_global_head")
    before = head(client)
    assert before >= 5
    with tail(client, "/v1/events/stream") as stream:
        first = add_item(client, "thr_global_head", "new1")
        second = add_item(client, "thr_global_head", "new2")
        got = stream.events(2)
    assert ids(got) == [first["position"], second["position"]] == [before + 1, before + 2]
    assert [e.json()["data"]["item_id"] for e in got] == ["new1", "new2"]


@pytest.mark.parametrize("path", ["/v1/threads/thr_idle/stream", "/v1/events/stream"])
def test_an_idle_tail_gets_heartbeat_comments(client: httpx.Client, path: str) -> None:
    ensure_thread(client, "thr_idle")
    seq = len(all_events(client, "thr_idle"))
    last = str(seq) if "threads" in path else None
    with tail(client, path, last_event_id=last) as stream:
        started = time.monotonic()
        seen: list[Frame] = []
        while time.monotonic() - started < 4 * HEARTBEAT_MS / 1000:
            seen.append(stream.next_frame())
    assert all(f.is_comment for f in seen), [f for f in seen if not f.is_comment]
    heartbeats = [f for f in seen if f.comment == "heartbeat"]
    assert len(heartbeats) >= 2, seen


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "12e3", "9" * 19])
@pytest.mark.parametrize("path", ["/v1/events/stream", "/v1/threads/thr_bad_id/stream"])
def test_an_invalid_last_event_id_is_a_400_json_error(
    client: httpx.Client, path: str, value: str
) -> None:
    ensure_thread(client, "thr_bad_id")
    response = client.get(path, headers={"Last-Event-ID": value})
    error = assert_error(response, 400, "invalid_last_event_id")
    assert value in error["message"]


@pytest.mark.parametrize("after", ["-1", "abc", "1.5"])
def test_an_invalid_after_parameter_is_a_400_json_error(client: httpx.Client, after: str) -> None:
    assert_error(client.get("/v1/events/stream", params={"after": after}), 400)


def test_a_tail_of_an_unknown_thread_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/v1/threads/thr_nobody/stream"), 404)
    assert_error(client.get("/v1/threads/thr_nobody/stream", headers={"Last-Event-ID": "3"}), 404)
    ok(client.post("/v1/threads", json={"thread_id": "thr_not_a_run"}), 201)
    assert_error(client.get("/v1/runs/thr_not_a_run/stream"), 404)


def test_global_tail_types_filter_sends_only_those_types(client: httpx.Client) -> None:
    wanted = "TurnStarted,TurnCompleted"
    with tail(client, "/v1/events/stream", params={"types": wanted}) as stream:
        thread = "/v1/threads/thr_types"
        ok(client.post("/v1/threads", json={"thread_id": "thr_types"}), 201)
        ok(client.post(f"{thread}/turns", json={"turn_id": "t1"}), 201)
        ok(client.post(f"{thread}/turns/t1/items", json={"kind": "message"}), 201)
        ok(client.post(f"{thread}/turns/t1/complete", json={"status": "completed"}), 200)
        ok(client.post(f"{thread}/turns", json={"turn_id": "t2"}), 201)
        ok(client.post(f"{thread}/turns/t2/items", json={"kind": "reasoning"}), 201)
        ok(client.post(f"{thread}/turns/t2/complete", json={"status": "failed"}), 200)
        sentinel = ok(client.post(f"{thread}/turns", json={"turn_id": "t3"}), 201)
        got = stream.events(4)
    # TurnFailed, ThreadStarted and ItemAdded never arrive: the 4th event is t3's start
    assert [e.json()["type"] for e in got] == [
        "TurnStarted",
        "TurnCompleted",
        "TurnStarted",
        "TurnStarted",
    ]
    assert [e.json()["data"]["turn_id"] for e in got] == ["t1", "t1", "t2", "t3"]
    assert got[-1].position == sentinel["position"]
    positions = ids(got)
    assert positions == sorted(positions)
    feed = ok(client.get("/v1/events", params={"after": positions[0] - 1, "types": wanted}), 200)[
        "events"
    ]
    assert [e["position"] for e in feed] == positions


def _run_events(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    page = ok(client.get(f"/v1/runs/{run_id}/events", params={"limit": 1000}), 200)
    return list(page["events"])


def test_run_tail_sends_the_backlog_then_each_node_transition_live(client: httpx.Client) -> None:
    workflow = {"id": "wf", "nodes": [{"id": "a", "type": "task"}, {"id": "b", "type": "task"}]}
    ok(
        client.post(
            "/v1/runs", json={"run_id": "run_tail", "client_id": "c1", "workflow": workflow}
        ),
        202,
    )
    stored = _run_events(client, "run_tail")
    with tail(client, "/v1/runs/run_tail/stream") as stream:
        backlog = stream.events(len(stored))
        assert [e.json() for e in backlog] == stored
        claimed = ok(
            client.post("/v1/dispatch/claim", json={"worker_id": "w-tail", "limit": 1}), 200
        )
        [dispatch] = [d for d in claimed["dispatches"] if d["run_id"] == "run_tail"]
        (live,) = stream.events(1)
    assert live.json()["type"] == "NodeDispatched"
    assert live.json()["data"]["dispatch_id"] == dispatch["dispatch_id"]
    assert live.position == len(stored) + 1  # id = seq: no gap, no duplicate
    with tail(client, "/v1/runs/run_tail/stream", last_event_id=str(len(stored))) as resumed:
        (again,) = resumed.events(1)
    assert again.json() == live.json()
