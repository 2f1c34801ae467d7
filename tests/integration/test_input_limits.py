"""Input limits: each exceeded limit answers 413 (body size) or 422 (the rest) with a message
that names the limit, and appends nothing; a value at the limit is accepted.

Drives the real HTTP app in-process (ASGI) on a SQLite file, with a 64 KiB body limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from commands.thread_commands import (
    MAX_APPROVAL_KEY_CHARS,
    MAX_ERROR_CHARS,
    MAX_ID_CHARS,
    MAX_INPUT_CHARS,
    MAX_MODEL_CHARS,
    MAX_TITLE_CHARS,
    MAX_TOOL_NAME_CHARS,
    MAX_WORKSPACE_CHARS,
)
from infra.config import Settings
from infra.http import list_routes
from infra.http.app import create_app
from infra.http.limits import (
    MAX_EXPORT_EVENTS,
    MAX_FEED_PAGE_SIZE,
    MAX_JSON_CONTAINER_ITEMS,
    MAX_JSON_DEPTH,
    MAX_PAGE_SIZE,
)

BODY_LIMIT = 512 * 1024
THREAD = "/v1/threads/thr_1"
TURN = THREAD + "/turns/t1"


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        workspace=tmp_path,
        max_body_bytes=BODY_LIMIT,
    )
    return create_app(settings)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, with thread thr_1 whose turn t1 is active."""
    ledger = app.state.ledger
    await ledger.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
            assert (await http.post("/v1/threads", json={"thread_id": "thr_1"})).status_code == 201
            assert (await http.post(f"{THREAD}/turns", json={"turn_id": "t1"})).status_code == 201
            yield http
    finally:
        await ledger.stop()


async def head(client: httpx.AsyncClient) -> int:
    """The log's last position, read through the feed."""
    page = (await client.get("/v1/events", params={"limit": MAX_FEED_PAGE_SIZE})).json()
    return int(page["next_after"])


async def refused(
    client: httpx.AsyncClient,
    path: str,
    status: int,
    *,
    json: Any = None,
    content: bytes | None = None,
) -> dict[str, Any]:
    """POST ``path``; it answers ``status`` with the JSON error and appends nothing."""
    before = await head(client)
    headers = {"content-type": "application/json"} if content is not None else None
    response = await client.post(path, json=json, content=content, headers=headers)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    assert await head(client) == before, "a refused command appended an event"
    return response.json()["error"]  # type: ignore[no-any-return]


def nested(depth: int) -> Any:
    """``depth`` levels of nested arrays, built without recursion."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- body size (413) ---------------------------------------------------------------------------


async def test_a_body_over_the_size_limit_is_413_naming_the_setting(
    client: httpx.AsyncClient,
) -> None:
    body = {"payload": {"blob": "x" * BODY_LIMIT}, "tool_name": "t"}
    error = await refused(client, f"{TURN}/items", 413, json=body)
    assert error["code"] == "body_too_large"
    assert f"LEDGER_MAX_BODY_BYTES={BODY_LIMIT}" in error["message"]
    assert error["details"]["limit"] == BODY_LIMIT


# --- JSON nesting depth ------------------------------------------------------------------------


async def test_json_at_the_depth_limit_is_accepted(client: httpx.AsyncClient) -> None:
    # The body object is level 1, so metadata may hold MAX_JSON_DEPTH - 1 levels.
    body = {"metadata": {"deep": nested(MAX_JSON_DEPTH - 2)}}
    response = await client.post("/v1/threads", json=body)
    assert response.status_code == 201, response.text


async def test_json_one_level_deeper_than_the_limit_is_422_naming_it(
    client: httpx.AsyncClient,
) -> None:
    body = {"metadata": {"deep": nested(MAX_JSON_DEPTH - 1)}}
    error = await refused(client, "/v1/threads", 422, json=body)
    assert error["code"] == "limit_exceeded"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]
    assert f"max_json_depth={MAX_JSON_DEPTH}" in error["message"]
    assert error["details"]["limit"] == "max_json_depth"
    assert error["details"]["at"].startswith("body.metadata.deep[0]")


@pytest.mark.parametrize("levels", [1023, 1025, 5000, 100_000])
async def test_json_nested_past_the_parsers_own_limit_is_422_not_500(
    client: httpx.AsyncClient, levels: int
) -> None:
    # orjson stops at 1024 levels by itself; that refusal names our limit too.
    content = b'{"metadata": {"deep": ' + b"[" * levels + b"]" * levels + b"}}"
    error = await refused(client, "/v1/threads", 422, content=content)
    assert error["code"] == "limit_exceeded"
    assert "max_json_depth" in error["message"]


async def test_a_deep_array_as_the_whole_body_is_422(client: httpx.AsyncClient) -> None:
    error = await refused(client, "/v1/threads", 422, content=b"[" * 5000 + b"]" * 5000)
    assert error["details"]["limit"] == "max_json_depth"


async def test_unclosed_deep_nesting_is_a_4xx_not_a_500(client: httpx.AsyncClient) -> None:
    error = await refused(client, "/v1/threads", 422, content=b"[" * 5000)
    assert error["code"] == "limit_exceeded"


# --- members / items per container -------------------------------------------------------------


async def test_containers_at_the_size_limit_are_accepted(client: httpx.AsyncClient) -> None:
    keys = {f"k{i}": 0 for i in range(MAX_JSON_CONTAINER_ITEMS)}
    assert (await client.post("/v1/threads", json={"metadata": keys})).status_code == 201
    items = {"tool_name": "t", "payload": {"lines": [0] * MAX_JSON_CONTAINER_ITEMS}}
    assert (await client.post(f"{TURN}/items", json=items)).status_code == 201


async def test_an_object_with_too_many_members_is_422_naming_the_limit(
    client: httpx.AsyncClient,
) -> None:
    keys = {f"k{i}": 0 for i in range(MAX_JSON_CONTAINER_ITEMS + 1)}
    error = await refused(client, "/v1/threads", 422, json={"metadata": keys})
    assert error["code"] == "limit_exceeded"
    assert error["details"]["limit"] == "max_json_container_items"
    assert error["details"]["at"] == "body.metadata"
    assert f"the limit is {MAX_JSON_CONTAINER_ITEMS}" in error["message"]
    assert f"{MAX_JSON_CONTAINER_ITEMS + 1} members" in error["message"]


async def test_an_array_with_too_many_items_is_422_naming_the_limit(
    client: httpx.AsyncClient,
) -> None:
    body = {"tool_name": "t", "payload": {"lines": [[0] * (MAX_JSON_CONTAINER_ITEMS + 1)]}}
    error = await refused(client, f"{TURN}/items", 422, json=body)
    assert error["details"]["limit"] == "max_json_container_items"
    assert error["details"]["at"] == "body.payload.lines[0]"
    assert "max_json_container_items" in error["message"]


# --- string lengths ----------------------------------------------------------------------------

STRINGS = {
    "thread_id": ("/v1/threads", {}, "thread_id", MAX_ID_CHARS),
    "title": ("/v1/threads", {}, "title", MAX_TITLE_CHARS),
    "workspace": ("/v1/threads", {}, "workspace", MAX_WORKSPACE_CHARS),
    "turn input": (THREAD + "/turns", {}, "input", MAX_INPUT_CHARS),
    "turn executor_id": (THREAD + "/turns", {}, "executor_id", MAX_ID_CHARS),
    "item tool_name": (TURN + "/items", {}, "tool_name", MAX_TOOL_NAME_CHARS),
    "turn error": (TURN + "/complete", {"status": "failed"}, "error", MAX_ERROR_CHARS),
    "approval key": (
        THREAD + "/approvals",
        {"turn_id": "t1"},
        "approval_key",
        MAX_APPROVAL_KEY_CHARS,
    ),
    "usage model": (
        TURN + "/usage",
        {"input_tokens": 1, "output_tokens": 1},
        "model",
        MAX_MODEL_CHARS,
    ),
}


@pytest.mark.parametrize("case", STRINGS.values(), ids=STRINGS.keys())
async def test_a_string_over_its_length_limit_is_422_naming_the_limit(
    client: httpx.AsyncClient, case: tuple[str, dict[str, Any], str, int]
) -> None:
    path, base, field, maximum = case
    error = await refused(client, path, 422, json={**base, field: "a" * (maximum + 1)})
    assert error["code"] == "invalid_body"
    assert error["message"].startswith(f"{field}: ")
    assert f"at most {maximum} characters" in error["message"], error["message"]


TEXT_AT_LIMIT = {
    "title": ("/v1/threads", {}, "title", MAX_TITLE_CHARS, 201),
    "turn input": (THREAD + "/turns", {}, "input", MAX_INPUT_CHARS, 409),  # t1 is active
    "item tool_name": (TURN + "/items", {}, "tool_name", MAX_TOOL_NAME_CHARS, 201),
    "usage model": (
        TURN + "/usage",
        {"input_tokens": 1, "output_tokens": 1},
        "model",
        MAX_MODEL_CHARS,
        200,
    ),
}


@pytest.mark.parametrize("case", TEXT_AT_LIMIT.values(), ids=TEXT_AT_LIMIT.keys())
async def test_a_string_at_its_length_limit_passes_validation(
    client: httpx.AsyncClient, case: tuple[str, dict[str, Any], str, int, int]
) -> None:
    path, base, field, maximum, status = case
    response = await client.post(path, json={**base, field: "a" * maximum})
    assert response.status_code == status, response.text[:300]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/threads", {"title": "a\x00b"}),
        (TURN + "/items", {"tool_name": "exec\x00shell"}),
        (THREAD + "/approvals", {"turn_id": "t1", "approval_key": "k\x00"}),
        (TURN + "/usage", {"input_tokens": 1, "output_tokens": 1, "model": "m\x00"}),
    ],
)
async def test_nul_in_text_a_read_model_keeps_is_422(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    # PostgreSQL text cannot hold NUL: let in, it would stop the projection at that event.
    error = await refused(client, path, 422, json=body)
    assert error["code"] == "invalid_body"


# --- page sizes --------------------------------------------------------------------------------

PAGES = {
    "thread list": ("/v1/threads", MAX_PAGE_SIZE),
    "approval list": ("/v1/approvals", MAX_PAGE_SIZE),
    "thread events": (THREAD + "/events", MAX_PAGE_SIZE),
    "global feed": ("/v1/events", MAX_FEED_PAGE_SIZE),
    "export": ("/v1/export", MAX_EXPORT_EVENTS),
}


@pytest.mark.parametrize("case", PAGES.values(), ids=PAGES.keys())
async def test_a_page_size_over_the_limit_is_422_naming_it(
    client: httpx.AsyncClient, case: tuple[str, int]
) -> None:
    path, maximum = case
    at_limit = await client.get(path, params={"limit": maximum})
    assert at_limit.status_code == 200, at_limit.text[:300]
    response = await client.get(path, params={"limit": maximum + 1})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "page_size_exceeded"
    assert f"page size limit of {maximum}" in error["message"]
    assert error["details"] == {"limit": "page_size", "maximum": maximum}


@pytest.mark.parametrize("path", [p for p, _ in PAGES.values()])
async def test_a_page_size_of_zero_or_not_a_number_is_still_400(
    client: httpx.AsyncClient, path: str
) -> None:
    for limit in ("0", "ten"):
        response = await client.get(path, params={"limit": limit})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_query"


# --- integers that no BIGINT column holds, ids that cannot exist -------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/events", {"after": str(2**63)}),
        ("/v1/export", {"after": "9" * 30}),
        (THREAD + "/events", {"since_seq": str(2**64)}),
        ("/v1/threads", {"min_position": str(2**63)}),
        ("/v1/usage", {"min_position": "9" * 25}),
        ("/v1/threads", {"cursor": "eyJwIjoxODQ0Njc0NDA3MzcwOTU1MTYxNX0"}),  # {"p": 2**64 - 1}
        ("/v1/approvals", {"cursor": "eyJwIjo5MjIzMzcyMDM2ODU0Nzc1ODA4fQ"}),  # {"p": 2**63}
    ],
)
async def test_an_integer_past_64_bits_is_400_not_500(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("invalid_query", "invalid_cursor")


async def test_min_position_past_the_head_is_400_at_once(client: httpx.AsyncClient) -> None:
    last = await head(client)
    response = await client.get("/v1/threads", params={"min_position": last + 1000})
    assert response.status_code == 400, response.text
    assert "past the log's head" in response.json()["error"]["message"]
    ok = await client.get("/v1/threads", params={"min_position": last})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/threads/a%00b",
        "/v1/threads/" + "a" * 129,
        "/v1/threads/-x/events",
        "/v1/threads/a%00/at/1",
        "/v1/threads/thr%20x/export",
        "/v1/streams/%00/verify",
    ],
)
async def test_a_path_id_that_is_not_well_formed_names_nothing(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert "not a well-formed id" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/threads", {"executor_id": "a\x00"}),
        ("/v1/approvals", {"thread_id": "thr 1"}),
        ("/v1/events", {"stream_type": "thread\x00"}),
    ],
)
async def test_a_filter_that_is_not_well_formed_is_400(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text


async def test_a_projection_behind_a_real_position_still_answers_503(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(list_routes, "MIN_POSITION_WAIT_SECONDS", 0.2)
    app.state.ledger.projections.stop()
    started = (await client.post("/v1/threads", json={})).json()
    response = await client.get("/v1/threads", params={"min_position": started["position"]})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    error = response.json()["error"]
    assert error["code"] == "read_model_behind"
    behind = error["details"]
    assert behind["projection"] == "thread_summaries"
    assert behind["position"] < started["position"]
    assert error["message"] == (
        f"read model thread_summaries is at position {behind['position']},"
        f" not yet at {started['position']}"
    )
