"""``/openapi.json`` built from the same endpoint declarations and pydantic models the app uses."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from infra.http.endpoint import Endpoint
from infra.http.schemas import ErrorResponse

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, query parameters or headers",
    404: "Unknown id",
    409: "Lifecycle or concurrency conflict",
    413: "A size limit was exceeded",
    422: "A well-formed request that breaks a rule of shape or value",
    503: "Database unavailable (see Retry-After)",
}
REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def build_openapi(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error_ref = _schema(ErrorResponse, components, "serialization")
    for endpoint in endpoints:
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "tags": list(endpoint.tags),
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", endpoint.path)
        ]
        if endpoint.query is not None:
            parameters += _query_parameters(endpoint.query)
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": _schema(endpoint.body, components, "validation")}
                },
            }
        ok: dict[str, Any] = {"description": "OK"}
        if endpoint.response is not None:
            ok["content"] = {
                "application/json": {
                    "schema": _schema(endpoint.response, components, "serialization")
                }
            }
        responses: dict[str, Any] = {str(endpoint.status): ok}
        for status in endpoint.errors:
            responses[str(status)] = {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": error_ref}},
            }
        operation["responses"] = responses
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
