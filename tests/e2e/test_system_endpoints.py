"""Liveness, readiness and the OpenAPI document of a running server."""

from __future__ import annotations

import httpx

from infra.http.schemas import Status
from tests.e2e.conftest import LedgerServer
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
