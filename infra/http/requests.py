"""Reading requests: bounded JSON bodies, typed query strings, command context."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from commands.executor_commands import EXECUTOR_ID
from commands.ports import CommandContext, Idempotency
from infra.http.auth import caller
from infra.http.errors import ApiError, describe_validation, validation_details
from infra.http.limits import check_json_limits, too_deep

Model = TypeVar("Model", bound=BaseModel)

MAX_IDEMPOTENCY_KEY = 255


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"request body exceeds the limit of {limit} bytes (LEDGER_MAX_BODY_BYTES={limit})",
        limit=limit,
    )


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object: malformed JSON answers 400; JSON that is not an object, or
    that breaks a limit of ``infra.http.limits`` (nesting depth, container size), 422."""
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if _nested_too_deep(error):  # orjson's own limit (1024 levels) is far past ours
            raise too_deep("body") from error
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_body", "request body must be a JSON object")
    check_json_limits(value)
    return value


def _nested_too_deep(error: orjson.JSONDecodeError) -> bool:
    message = str(error).lower()
    return "recursion" in message or "depth limit" in message


async def read_command(request: Request, model: type[Model], limit: int) -> tuple[Model, bytes]:
    """The body validated as ``model``, and its canonical bytes (for idempotency fingerprints)."""
    payload = parse_json_object(await read_body(request, limit))
    command = model.model_validate(payload)
    return command, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def read_query(request: Request, model: type[Model]) -> Model:
    """Query parameters as ``model``: malformed ones answer 400; a page size (``limit``) over
    its maximum, 422 ``page_size_exceeded`` naming the maximum."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=True, include_input=False)
        over = [p for p in problems if p["loc"] == ("limit",) and p["type"] == "less_than_equal"]
        if over and len(over) == len(problems):
            maximum = (over[0].get("ctx") or {}).get("le")
            raise ApiError(
                422,
                "page_size_exceeded",
                f"limit={request.query_params.get('limit', '')[:30]} is over this endpoint's"
                f" page size limit of {maximum}",
                limit="page_size",
                maximum=maximum,
            ) from error
        raise ApiError(
            400, "invalid_query", describe_validation(error), **validation_details(error)
        ) from error


def command_context(request: Request, canonical_body: bytes) -> CommandContext:
    headers = request.headers
    key = headers.get("idempotency-key")
    idempotency = None
    if key is not None:
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            raise ApiError(
                400,
                "invalid_idempotency_key",
                f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters",
            )
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.url.path.encode() + b"\n" + canonical_body
        ).hexdigest()
        idempotency = Idempotency(key, fingerprint)
    return CommandContext(
        tenant=caller(request).tenant,
        actor=headers.get("x-ledger-actor", "anonymous")[:256],
        correlation_id=headers.get("x-request-id", "")[:256] or str(uuid.uuid4()),
        idempotency=idempotency,
        executor_id=sending_executor(request, canonical_body),
    )


def sending_executor(request: Request, canonical_body: bytes) -> str | None:
    """The executor that sent a command: the ``X-Ledger-Executor`` header, else the body's
    ``executor_id`` (a turn's executor starts it); a malformed id is refused with 422."""
    executor_id = request.headers.get("x-ledger-executor") or None
    if executor_id is None and b'"executor_id"' in canonical_body:
        named = orjson.loads(canonical_body).get("executor_id")
        executor_id = named if isinstance(named, str) else None
    return None if executor_id is None else valid_executor_id(executor_id)


def valid_executor_id(raw: str) -> str:
    """``raw`` if it is a well-formed executor id, else 422."""
    try:
        return EXECUTOR_ID.validate_python(raw)
    except ValidationError as error:
        raise ApiError(
            422,
            "invalid_executor_id",
            "an executor id is 1-128 characters: letters, digits and . _ : - (not first)",
            executor_id=raw[:200],
        ) from error
