"""Liveness, readiness and the OpenAPI document of a running server."""

from __future__ import annotations

import socket
import time

import httpx

from infra.http.schemas import Status
from tests.e2e.conftest import LedgerServer, ServerLauncher
from tests.e2e.helpers import ok

API = {
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/v1/threads": {"post"},
    "/v1/threads/{thread_id}": {"get"},
    "/v1/threads/{thread_id}/turns": {"post"},
    "/v1/threads/{thread_id}/turns/{turn_id}/items": {"post"},
    "/v1/threads/{thread_id}/turns/{turn_id}/items/{item_id}/status": {"post"},
    "/v1/threads/{thread_id}/turns/{turn_id}/complete": {"post"},
    "/v1/threads/{thread_id}/events": {"get"},
    "/v1/threads/{thread_id}/at/{seq}": {"get"},
}


def test_health_and_readiness_answer_200(sqlite_server: LedgerServer) -> None:
    with httpx.Client(base_url=sqlite_server.base_url, timeout=10.0) as client:
        for path in ("/healthz", "/readyz"):
            response = client.get(path)
            assert response.headers["content-type"].startswith("application/json")
            Status.model_validate(ok(response, 200))


def test_openapi_is_valid_json_listing_every_endpoint(sqlite_server: LedgerServer) -> None:
    with httpx.Client(base_url=sqlite_server.base_url, timeout=10.0) as client:
        response = client.get("/openapi.json")
    document = ok(response, 200)
    assert response.headers["content-type"].startswith("application/json")
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Ledger"
    paths = document["paths"]
    for path, methods in API.items():
        assert path in paths, f"{path} is not in /openapi.json"
        assert methods <= set(paths[path]), (path, set(paths[path]))
    events = paths["/v1/threads/{thread_id}/events"]["get"]
    assert {p["name"] for p in events["parameters"]} >= {"thread_id", "since_seq", "limit"}
    add_item = paths["/v1/threads/{thread_id}/turns/{turn_id}/items"]["post"]
    assert "requestBody" in add_item
    assert {"201", "404", "409", "422"} <= set(add_item["responses"])
    # every $ref points at a schema the document defines
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _get_on(connection: socket.socket, path: str) -> bytes:
    """One keep-alive GET on an open connection; the response's bytes (b"" if it was closed)."""
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: ledger\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or not received.endswith(b"}"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def idle_connection_answers(server: LedgerServer, idle_s: float) -> bool:
    """Whether a connection idle for ``idle_s`` after one answer still answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10.0) as connection:
        assert _get_on(connection, "/healthz").startswith(b"HTTP/1.1 200")
        time.sleep(idle_s)
        try:
            return _get_on(connection, "/healthz").startswith(b"HTTP/1.1 200")
        except ConnectionResetError:
            return False


def test_an_idle_connection_outlives_a_client_s_own_keep_alive(
    sqlite_server: LedgerServer,
) -> None:
    # httpx drops an idle connection after 5 s: the server must not close it first, or a
    # request sent as it closes is reset
    assert idle_connection_answers(sqlite_server, 6.0)


def test_ledger_keep_alive_ms_closes_idle_connections(
    launcher: ServerLauncher, sqlite_url: str
) -> None:
    server = launcher.start(sqlite_url, {"LEDGER_KEEP_ALIVE_MS": "300"})
    assert idle_connection_answers(server, 0.05)
    assert not idle_connection_answers(server, 1.5)
