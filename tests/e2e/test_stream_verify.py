"""``GET /v1/streams/{id}/verify`` checks one stream's hash chain as ``ledger verify`` does;
the OpenAPI document lists the thread endpoints added with it."""

from __future__ import annotations

import sqlite3

import httpx

from infra.http.schemas import StreamVerifyResponse
from infra.store.eventstore import open_backend
from infra.store.records import DEFAULT_TENANT
from infra.store.verify import verify_store
from tests.e2e.conftest import LedgerServer
from tests.e2e.helpers import assert_error, exactly, ok, scripted_thread

NEW_ENDPOINTS = {
    "/v1/threads/{thread_id}/approvals": ("post", "201", "RequestApproval", "ApprovalResponse"),
    "/v1/threads/{thread_id}/approvals/{approval_id}/decision": (
        "post",
        "200",
        "DecideApproval",
        "ApprovalResponse",
    ),
    "/v1/threads/{thread_id}/turns/{turn_id}/usage": (
        "post",
        "200",
        "RecordUsage",
        "UsageRecordedResponse",
    ),
    "/v1/threads/{thread_id}/workspace": (
        "post",
        "200",
        "ChangeWorkspace",
        "WorkspaceChangedResponse",
    ),
    "/v1/threads/{thread_id}/archive": ("post", "200", "ArchiveThread", "ThreadArchivedResponse"),
    "/v1/threads/{thread_id}/export": ("get", "200", None, "ThreadExport"),
    "/v1/streams/{stream_id}/verify": ("get", "200", None, "StreamVerifyResponse"),
}


def verify_like_the_cli(database_url: str, stream_id: str) -> tuple[int, list[str]]:
    """What ``ledger verify``'s check of the store says about one stream."""
    backend = open_backend(database_url)
    try:
        backend.migrate()
        report = verify_store(backend, tenant=DEFAULT_TENANT, stream_id=stream_id)
    finally:
        backend.close()
    return report.events, report.problems


def test_a_fresh_thread_verifies(ledger_server: LedgerServer, client: httpx.Client) -> None:
    steps = scripted_thread(client, "thr_v")

    answer = ok(client.get("/v1/streams/thr_v/verify"), 200)

    exactly(StreamVerifyResponse, answer)
    assert answer == {
        "stream_id": "thr_v",
        "stream_type": "thread",
        "ok": True,
        "events": len(steps),
        "problems": [],
    }
    assert verify_like_the_cli(ledger_server.database_url, "thr_v") == (len(steps), [])


def test_an_unknown_stream_is_not_found(client: httpx.Client) -> None:
    assert_error(client.get("/v1/streams/thr_missing/verify"), 404)


def test_a_tampered_event_is_reported_as_the_cli_reports_it(
    sqlite_server: LedgerServer,
) -> None:
    with httpx.Client(base_url=sqlite_server.base_url, timeout=30.0) as client:
        scripted_thread(client, "thr_t")
        ok(client.post("/v1/threads", json={"thread_id": "thr_other"}), 201)
        # an attacker with the file drops the guard and rewrites one event's data
        conn = sqlite3.connect(sqlite_server.database_url.removeprefix("sqlite:///"))
        with conn:
            conn.execute("DROP TRIGGER events_refuse_update")
            conn.execute(
                "UPDATE events SET data = CAST(? AS BLOB) WHERE stream_id = 'thr_t' AND seq = 3",
                (b'{"item_id":"i1","kind":"tool_call","payload":{},"turn_id":"t1"}',),
            )
        conn.close()

        answer = ok(client.get("/v1/streams/thr_t/verify"), 200)
        untouched = ok(client.get("/v1/streams/thr_other/verify"), 200)

    exactly(StreamVerifyResponse, answer)
    assert answer["ok"] is False
    assert answer["problems"] == ["stream thr_t seq 3: hash does not match the event's content"]
    events, problems = verify_like_the_cli(sqlite_server.database_url, "thr_t")
    assert (answer["events"], answer["problems"]) == (events, problems)
    assert untouched["ok"] is True


def test_openapi_lists_the_new_thread_endpoints_with_bodies_responses_and_errors(
    sqlite_server: LedgerServer,
) -> None:
    with httpx.Client(base_url=sqlite_server.base_url, timeout=10.0) as client:
        document = ok(client.get("/openapi.json"), 200)
    paths, schemas = document["paths"], document["components"]["schemas"]

    for path, (method, status, body, response) in NEW_ENDPOINTS.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not in /openapi.json"
        operation = paths[path][method]
        assert operation["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{response}"
        }
        assert response in schemas
        assert "404" in operation["responses"]
        if body is None:
            assert "requestBody" not in operation
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{body}"}
        assert {"400", "409", "413", "422"} <= set(operation["responses"])
    usage = schemas["RecordUsage"]
    assert set(usage["required"]) == {"input_tokens", "output_tokens"}
    assert usage["additionalProperties"] is False
