"""Executor endpoints: heartbeats, and restart/shutdown announcements (recovered first)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from commands.executor_commands import (
    AnnounceRestart,
    AnnounceShutdown,
    ExecutorCommand,
    RecordHeartbeat,
)
from commands.ports import CommandContext, ReadModelBehind
from domain.executor import RecoveryKind
from infra.http.endpoint import Endpoint
from infra.http.errors import ApiError
from infra.http.executor_schemas import HeartbeatResponse, RecoveryResponse
from infra.http.requests import command_context, read_command, valid_executor_id
from infra.http.service import command_answer, ledger_of

if TYPE_CHECKING:
    from infra.bootstrap import Ledger


async def _read(
    request: Request, model: type[ExecutorCommand]
) -> tuple[Ledger, str, CommandContext]:
    ledger = ledger_of(request)
    executor_id = valid_executor_id(request.path_params["executor_id"])
    _, canonical = await read_command(request, model, ledger.settings.max_body_bytes)
    return ledger, executor_id, command_context(request, canonical)


async def heartbeat(request: Request) -> Response:
    ledger, executor_id, context = await _read(request, RecordHeartbeat)
    # The path names the executor the heartbeat renews, whatever a header says.
    saved = await ledger.executors.heartbeat(executor_id, replace(context, executor_id=executor_id))
    return command_answer(saved)


async def _recover(request: Request, model: type[ExecutorCommand], kind: RecoveryKind) -> Response:
    ledger, executor_id, context = await _read(request, model)
    try:
        saved = await ledger.executors.recover(executor_id, kind, context)
    except ReadModelBehind as error:
        raise ApiError(503, "read_model_behind", str(error)) from error
    return command_answer(saved)


async def restarted(request: Request) -> Response:
    return await _recover(request, AnnounceRestart, "restarted")


async def shutdown(request: Request) -> Response:
    return await _recover(request, AnnounceShutdown, "shut_down")


EXECUTOR = "/v1/executors/{executor_id}"
ERRORS = (400, 404, 409, 413, 422, 503)  # 404: a path that names no executor endpoint

ENDPOINTS = [
    Endpoint(
        "POST",
        EXECUTOR + "/heartbeat",
        heartbeat,
        "Renew the executor's lease",
        200,
        RecordHeartbeat,
        response=HeartbeatResponse,
        errors=ERRORS,
        tags=("executors",),
    ),
    Endpoint(
        "POST",
        EXECUTOR + "/restarted",
        restarted,
        "The executor restarted: interrupt the turns it ran (before answering)",
        200,
        AnnounceRestart,
        response=RecoveryResponse,
        errors=ERRORS,
        tags=("executors",),
    ),
    Endpoint(
        "POST",
        EXECUTOR + "/shutdown",
        shutdown,
        "The executor is stopping: interrupt the turns it ran (before answering)",
        200,
        AnnounceShutdown,
        response=RecoveryResponse,
        errors=ERRORS,
        tags=("executors",),
    ),
]
