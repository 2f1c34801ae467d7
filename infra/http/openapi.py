"""``/openapi.json`` built from the same endpoint declarations and pydantic models the app uses."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from infra.auth import required_scope
from infra.http.endpoint import Endpoint
from infra.http.paths import path_parameter_schema
from infra.http.schemas import ErrorResponse

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, query parameters or headers",
    401: "No API token, or an invalid or revoked one (see WWW-Authenticate)",
    403: "The API token's scope does not allow this request",
    404: "Unknown id",
    409: "Lifecycle or concurrency conflict",
    413: "A size limit was exceeded",
    422: "A well-formed request that breaks a rule of shape or value",
    503: "Database unavailable (see Retry-After)",
}
REF = "#/components/schemas/{model}"
RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
BEARER = "bearerAuth"


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
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent or has a value; a query string has no null, so
    ``anyOf: [X, {type: null}]`` is declared as X (with the default and description kept)."""
    alternatives = [a for a in prop.get("anyOf", ()) if a != {"type": "null"}]
    if "anyOf" not in prop or len(alternatives) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    if rest.get("default", 0) is None:
        del rest["default"]
    return {**alternatives[0], **rest}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": path_parameter_schema(name)}
        for name in re.findall(r"{(\w+)}", path)
    ]


TEXT_ENDPOINTS = {"/metrics": "text/plain"}
"""Endpoints declared in app.py whose body is not JSON (the Prometheus exposition format).
TODO: declare ``media_type="text/plain"`` on the Endpoint in app.py and drop this table."""


def _success(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    media_type = TEXT_ENDPOINTS.get(endpoint.path, endpoint.media_type)
    if endpoint.response is not None:
        schema = _schema(endpoint.response, components, "serialization")
        ok["content"] = {"application/json": {"schema": schema}}
    elif media_type != "application/json":
        ok["content"] = {media_type: {}}
    return ok


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
        parameters = _path_parameters(endpoint.path)
        if endpoint.query is not None:
            parameters += _query_parameters(endpoint.query)
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            # An empty body reads as {}: it may be left out only when no field is required.
            operation["requestBody"] = {
                "required": bool(endpoint.body.model_json_schema().get("required")),
                "content": {
                    "application/json": {"schema": _schema(endpoint.body, components, "validation")}
                },
            }
        responses: dict[str, Any] = {str(endpoint.status): _success(endpoint, components)}
        errors = endpoint.errors
        scope = required_scope(endpoint.method, endpoint.path)
        if scope is not None:
            operation["security"] = [{BEARER: []}]
            operation["description"] = f"Needs an API token with scope {scope} (or wider)."
            errors = (*errors, 401, 403)
        for status in sorted(set(errors)):
            responses[str(status)] = {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": error_ref}},
            }
            if status == 503:
                responses[str(status)]["headers"] = {"Retry-After": RETRY_AFTER}
        operation["responses"] = responses
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer"}},
        },
    }
