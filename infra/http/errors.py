"""The error model: one JSON shape, one status per cause, mapped in one table.

``{"error": {"code", "message", "details"}}``: 400 malformed JSON or query,
404 unknown id, 409 lifecycle or concurrency conflict, 413 size limit, 422 a
well-formed request that breaks a rule, 503 database unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from commands.ports import IdempotencyMismatch
from domain.errors import DomainError, InvalidCommand, LifecycleConflict, NotFound
from infra.store.errors import StoreError, StoreUnavailable
from queries.pagination import BadCursor

RETRY_AFTER_SECONDS = "1"


class ApiError(Exception):
    """An error the HTTP layer answers directly (bad JSON, bad query, size limits)."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The JSON error; ``headers`` are kept (a 405 must name its ``Allow``ed methods)."""
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    sent = dict(headers or {})
    if status == 503:
        sent["Retry-After"] = RETRY_AFTER_SECONDS
    return Response(
        orjson.dumps(body, default=str), status, headers=sent, media_type="application/json"
    )


DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    LifecycleConflict: 409,
    InvalidCommand: 422,
}


def validation_details(error: ValidationError) -> dict[str, Any]:
    return {
        "errors": [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
    }


def describe_validation(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    status = next((s for cls, s in DOMAIN_STATUS.items() if isinstance(exc, cls)), 422)
    return error_response(status, exc.code, exc.message, exc.details)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return error_response(422, "invalid_body", describe_validation(exc), validation_details(exc))


async def handle_idempotency_mismatch(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotencyMismatch)
    return error_response(422, "idempotency_key_reused", str(exc), {"key": exc.key})


async def handle_bad_cursor(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadCursor)
    return error_response(400, "invalid_cursor", str(exc))


async def handle_store_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreUnavailable):
        return error_response(503, "unavailable", str(exc))
    return error_response(409, "store_conflict", str(exc))


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    DomainError: handle_domain_error,
    ValidationError: handle_validation_error,
    IdempotencyMismatch: handle_idempotency_mismatch,
    StoreError: handle_store_error,
    BadCursor: handle_bad_cursor,
}
