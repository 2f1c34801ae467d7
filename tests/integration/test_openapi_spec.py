"""``/openapi.json`` describes what the service does, so a fuzzer can hold it to it: limits are
in the schemas, every status an operation can answer is declared, non-JSON bodies say so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import Settings
from infra.http.app import create_app

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
PYDANTIC_ONLY_KEYS = {"ge", "gt", "le", "lt", "max_length", "min_length", "strict"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("spec") / "ledger.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}", workspace=Path(path.parent)))
    return app.state.openapi  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def walk(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object under ``node``, with where it sits."""
    stack = [(node, where)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, dict):
            yield at, value
            stack.extend((child, f"{at}/{key}") for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, f"{at}[{i}]") for i, child in enumerate(value))


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]  # type: ignore[no-any-return]


def body_models(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for method, path, operation in operations(spec):
        body = operation.get("requestBody")
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            yield f"{method} {path}", resolve(spec, schema)


def test_every_string_in_a_command_body_has_a_maximum_length(spec: dict[str, Any]) -> None:
    unbounded = [
        f"{label}{at}"
        for label, model in body_models(spec)
        for at, schema in walk(model)
        if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema
    ]
    assert not unbounded, unbounded


def test_no_constraint_is_left_in_pydantic_spelling(spec: dict[str, Any]) -> None:
    leftovers = [at for at, schema in walk(spec) if PYDANTIC_ONLY_KEYS & set(schema)]
    assert not leftovers, leftovers  # a "le" JSON Schema does not know bounds nothing


def test_every_page_size_and_integer_query_parameter_has_a_maximum(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            integer = parameter["in"] == "query" and schema.get("type") == "integer"
            if integer and "maximum" not in schema:
                missing.append(f"{method} {path} ?{parameter['name']}")
    assert not missing, missing
    limits = [
        f"{method} {path}"
        for method, path, operation in operations(spec)
        if any(p["name"] == "limit" for p in operation.get("parameters", []))
    ]
    assert {"GET /v1/threads", "GET /v1/approvals", "GET /v1/events", "GET /v1/export"} <= set(
        limits
    )


def test_optional_query_parameters_are_not_declared_nullable(spec: dict[str, Any]) -> None:
    nullable = [
        f"{method} {path} ?{parameter['name']}"
        for method, path, operation in operations(spec)
        for parameter in operation.get("parameters", [])
        if "anyOf" in parameter["schema"] or parameter["schema"].get("default", 0) is None
    ]
    assert not nullable, nullable


def test_path_ids_are_declared_with_their_pattern(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                schema = parameter["schema"]
                if parameter["name"] == "seq":
                    assert schema["type"] == "integer", (method, path)
                elif parameter["name"] == "node_id":  # a task id: frame_id::node_id
                    assert schema["maxLength"] == 512 and "pattern" in schema, (method, path)
                else:
                    assert schema["maxLength"] == 128 and "pattern" in schema, (method, path)


def test_every_operation_declares_the_statuses_it_can_answer(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        declared = set(operation["responses"])
        parameters = operation.get("parameters", [])
        where = f"{method} {path}"
        if "{" in path:
            assert "404" in declared, where
        if "requestBody" in operation:
            assert {"400", "413", "422", "503"} <= declared, where
            assert len({"200", "201", "202"} & declared) == 1, where
        if any(p["in"] == "query" for p in parameters):
            assert "400" in declared, where
        if any(p["name"] == "limit" for p in parameters):
            assert "422" in declared, where
        if "503" in declared:
            assert "Retry-After" in operation["responses"]["503"]["headers"], where


@pytest.mark.parametrize(
    ("path", "status", "media_type"),
    [
        ("/v1/threads", "201", "application/json"),
        ("/v1/threads/{thread_id}/turns", "201", "application/json"),
        ("/v1/threads/{thread_id}/turns/{turn_id}/items", "201", "application/json"),
        ("/v1/threads/{thread_id}/approvals", "201", "application/json"),
        ("/v1/threads/{thread_id}/turns/{turn_id}/complete", "200", "application/json"),
    ],
)
def test_commands_declare_their_success_status(
    spec: dict[str, Any], path: str, status: str, media_type: str
) -> None:
    responses = spec["paths"][path]["post"]["responses"]
    assert "schema" in responses[status]["content"][media_type]


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/v1/events/stream", "text/event-stream"),
        ("/v1/threads/{thread_id}/stream", "text/event-stream"),
        ("/v1/runs/{run_id}/stream", "text/event-stream"),
        ("/v1/export", "application/x-ndjson"),
        ("/metrics", "text/plain"),
    ],
)
def test_bodies_that_are_not_json_are_declared_without_a_json_schema(
    spec: dict[str, Any], path: str, media_type: str
) -> None:
    assert spec["paths"][path]["get"]["responses"]["200"]["content"] == {media_type: {}}


def test_a_request_body_is_required_exactly_when_it_has_required_fields(
    spec: dict[str, Any],
) -> None:
    for method, path, operation in operations(spec):
        body = operation.get("requestBody")
        if body is not None:
            schema = resolve(spec, body["content"]["application/json"]["schema"])
            assert body["required"] == bool(schema.get("required")), f"{method} {path}"
