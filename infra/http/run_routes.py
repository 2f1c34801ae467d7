"""Run endpoints: the workflow run, the worker protocol, the lifecycle, and views of one run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from commands.run_commands import (
    AcknowledgeDispatch,
    ApproveQuotaOverride,
    ChangeInstance,
    ChangeRun,
    ChangeSession,
    ClaimNodes,
    DecideGate,
    LinkThread,
    RecordCommandError,
    RecordFeedback,
    RecordResult,
    RecordWorkerEvent,
    RequestGate,
    StartRun,
)
from domain.errors import NotFound
from domain.run import Run
from infra.http.endpoint import Endpoint, Handler
from infra.http.errors import ApiError
from infra.http.limits import MAX_INT64
from infra.http.paths import path_ids, seq_in_path
from infra.http.requests import command_context, read_command, read_query
from infra.http.run_schemas import (
    ClaimResponse,
    NodeChangedResponse,
    RunChangedResponse,
    RunDiffResponse,
    RunStartedResponse,
    RunStatusDocument,
    RunViewResponse,
)
from infra.http.schemas import StreamEventsPage
from infra.http.service import command_answer, ledger_of
from infra.http.stream_pages import EventsQuery, stream_events_page
from infra.http.wire import JSON, event_wire
from queries.run_status import status_document
from queries.run_view import run_diff, run_view

if TYPE_CHECKING:
    from infra.bootstrap import Ledger


class DiffQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    from_seq: int = Field(0, ge=0, le=MAX_INT64, alias="from")
    to_seq: int = Field(..., ge=1, le=MAX_INT64, alias="to")


async def start_run(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, StartRun, ledger.settings.max_body_bytes)
    saved = await ledger.runs.start_run(command, command_context(request, canonical))
    return command_answer(saved, 202)


async def claim(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, ClaimNodes, ledger.settings.max_body_bytes)
    return command_answer(await ledger.runs.claim(command, command_context(request, canonical)))


def _node_command(model: type[BaseModel], method: str) -> Handler:
    """A command on one node of a run: ``POST /v1/runs/{run_id}/nodes/{node_id}/…``."""

    async def handle(request: Request) -> Response:
        ledger = ledger_of(request)
        command, canonical = await read_command(request, model, ledger.settings.max_body_bytes)
        p = path_ids(request)
        handler = getattr(ledger.runs, method)
        saved = await handler(
            p["run_id"], p["node_id"], command, command_context(request, canonical)
        )
        return command_answer(saved)

    return handle


def _run_change(action: str) -> Handler:
    """``POST /v1/runs/{run_id}/{action}``: pause, resume, cancel, block, stale-reap, …"""

    async def handle(request: Request) -> Response:
        ledger = ledger_of(request)
        command, canonical = await read_command(request, ChangeRun, ledger.settings.max_body_bytes)
        saved = await ledger.runs.change_run(
            path_ids(request)["run_id"], action, command, command_context(request, canonical)
        )
        return command_answer(saved)

    return handle


def _run_command(model: type[BaseModel], method: str) -> Handler:
    async def handle(request: Request) -> Response:
        ledger = ledger_of(request)
        command, canonical = await read_command(request, model, ledger.settings.max_body_bytes)
        handler = getattr(ledger.runs, method)
        saved = await handler(
            path_ids(request)["run_id"], command, command_context(request, canonical)
        )
        return command_answer(saved)

    return handle


async def decide_gate(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, DecideGate, ledger.settings.max_body_bytes)
    p = path_ids(request)
    saved = await ledger.runs.decide_gate(
        p["run_id"], p["node_id"], command, command_context(request, canonical)
    )
    return command_answer(saved)


async def approve_quota_override(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(
        request, ApproveQuotaOverride, ledger.settings.max_body_bytes
    )
    saved = await ledger.runs.approve_quota_override(command, command_context(request, canonical))
    return command_answer(saved, 201)


async def _run_at(ledger: Ledger, request: Request, run_id: str, seq: int | None) -> Run:
    aggregate = await ledger.repository.load(ledger.tenant(request), run_id, upto_seq=seq)
    if not isinstance(aggregate, Run):
        raise NotFound(f"no run {run_id}", run_id=run_id)
    if seq is not None and aggregate.version < seq:
        raise NotFound(
            f"run {run_id} has no event {seq} (its last is {aggregate.version})",
            run_id=run_id,
            last_seq=aggregate.version,
        )
    return aggregate


def _seq(raw: str) -> int:
    seq = seq_in_path(raw)
    if seq == 0:
        raise ApiError(400, "invalid_path", f"seq must be a positive integer, got {raw!r}")
    return seq


async def get_run(request: Request) -> Response:
    ledger = ledger_of(request)
    run = await ledger.runs.load(ledger.tenant(request), path_ids(request)["run_id"])
    return JSON(run_view(run))


async def get_run_at(request: Request) -> Response:
    ledger = ledger_of(request)
    p = path_ids(request)
    return JSON(run_view(await _run_at(ledger, request, p["run_id"], _seq(p["seq"]))))


async def get_status_document(request: Request) -> Response:
    ledger = ledger_of(request)
    run = await ledger.runs.load(ledger.tenant(request), path_ids(request)["run_id"])
    return JSON(status_document(run))


async def get_run_events(request: Request) -> Response:
    return await stream_events_page(request, Run.stream_type, "run_id")


async def get_run_diff(request: Request) -> Response:
    """What changed between two seqs: the view's changes and the events in between."""
    ledger = ledger_of(request)
    run_id = path_ids(request)["run_id"]
    query = read_query(request, DiffQuery)
    if query.from_seq > query.to_seq:
        raise ApiError(400, "invalid_query", f"from={query.from_seq} is after to={query.to_seq}")
    after = await _run_at(ledger, request, run_id, query.to_seq)
    before = await _run_at(ledger, request, run_id, query.from_seq) if query.from_seq else None
    events = await ledger.store.read_stream(
        ledger.tenant(request), run_id, after_seq=query.from_seq, upto_seq=query.to_seq
    )
    return JSON(
        run_diff(before, after, [event_wire(e) for e in events], query.from_seq, query.to_seq)
    )


COMMAND_ERRORS = (400, 404, 409, 413, 422, 503)
RUN = "/v1/runs/{run_id}"
NODE = RUN + "/nodes/{node_id}"
NODE_COMMANDS: list[tuple[str, type[BaseModel], str, str]] = [
    ("ack", AcknowledgeDispatch, "acknowledge", "Acknowledge a dispatch (its id must match)"),
    ("feedback", RecordFeedback, "feedback", "Progress, result merge-patch, metrics and chunks"),
    ("result", RecordResult, "result", "The node's result (skipped counts as succeeded)"),
    ("error", RecordCommandError, "command_error", "A command error: the node fails"),
    (
        "worker",
        RecordWorkerEvent,
        "worker_event",
        "Worker launched / launch_failed / update / finished / aborted",
    ),
    ("thread", LinkThread, "link_thread", "Link the node to a thread"),
]
RUN_CHANGES = [
    ("pause", "Pause (pausing until nothing is in flight, then paused)"),
    ("resume", "Resume a paused run (back to queued)"),
    ("cancel", "Cancel the run and every node not yet final"),
    ("block", "Block the run (terminal)"),
    ("stale-reap", "Reap a stalled run: paused, stop_kind stale_reaped, running nodes need repair"),
    ("guardrail-stop", "Stop the run on a guardrail: paused, stop_kind guardrail_stopped"),
]

ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/runs",
        start_run,
        "Start a run of a workflow (seed 001's format)",
        202,
        StartRun,
        response=RunStartedResponse,
        errors=(400, 409, 413, 422, 503),
        tags=("runs",),
    ),
    Endpoint(
        "POST",
        "/v1/dispatch/claim",
        claim,
        "Claim ready nodes for a worker (oldest run first; each node to one worker)",
        200,
        ClaimNodes,
        response=ClaimResponse,
        errors=(400, 413, 422, 503),
        tags=("runs",),
    ),
    *[
        Endpoint(
            "POST",
            f"{NODE}/{name}",
            _node_command(model, method),
            summary,
            200,
            model,
            response=NodeChangedResponse,
            errors=COMMAND_ERRORS,
            tags=("runs",),
        )
        for name, model, method, summary in NODE_COMMANDS
    ],
    *[
        Endpoint(
            "POST",
            f"{RUN}/{action}",
            _run_change(action),
            summary,
            200,
            ChangeRun,
            response=RunChangedResponse,
            errors=COMMAND_ERRORS,
            tags=("runs",),
        )
        for action, summary in RUN_CHANGES
    ],
    Endpoint(
        "POST",
        RUN + "/gates",
        _run_command(RequestGate, "request_gate"),
        "Ask for approval on a node (run → awaiting_approval)",
        200,
        RequestGate,
        response=RunChangedResponse,
        errors=COMMAND_ERRORS,
        tags=("runs",),
    ),
    Endpoint(
        "POST",
        RUN + "/gates/{node_id}/decision",
        decide_gate,
        "Decide a gate: approve, rework or deny",
        200,
        DecideGate,
        response=RunChangedResponse,
        errors=COMMAND_ERRORS,
        tags=("runs",),
    ),
    Endpoint(
        "POST",
        "/v1/quota-overrides",
        approve_quota_override,
        "Approve a quota override (a guardrail-stopped run resumes)",
        201,
        ApproveQuotaOverride,
        response=RunChangedResponse,
        errors=COMMAND_ERRORS,
        tags=("runs",),
    ),
    Endpoint(
        "POST",
        RUN + "/sessions",
        _run_command(ChangeSession, "change_session"),
        "Attach or detach a session (deduplicated)",
        200,
        ChangeSession,
        response=RunChangedResponse,
        errors=COMMAND_ERRORS,
        tags=("runs",),
    ),
    Endpoint(
        "POST",
        RUN + "/instances",
        _run_command(ChangeInstance, "change_instance"),
        "Attach or detach an instance (deduplicated)",
        200,
        ChangeInstance,
        response=RunChangedResponse,
        errors=COMMAND_ERRORS,
        tags=("runs",),
    ),
    Endpoint(
        "GET",
        RUN,
        get_run,
        "The run, folded from its stream",
        response=RunViewResponse,
        errors=(404, 503),
        tags=("runs",),
    ),
    Endpoint(
        "GET",
        RUN + "/at/{seq}",
        get_run_at,
        "The run as it was after event seq",
        response=RunViewResponse,
        errors=(400, 404, 503),
        tags=("runs",),
    ),
    Endpoint(
        "GET",
        RUN + "/events",
        get_run_events,
        "Replay the run's events after a seq",
        query=EventsQuery,
        response=StreamEventsPage,
        errors=(400, 404, 422, 503),
        tags=("runs",),
    ),
    Endpoint(
        "GET",
        RUN + "/diff",
        get_run_diff,
        "What changed in the run between two seqs",
        query=DiffQuery,
        response=RunDiffResponse,
        errors=(400, 404, 422, 503),
        tags=("runs",),
    ),
    Endpoint(
        "GET",
        RUN + "/status.json",
        get_status_document,
        "The run's status.json document (seed 002's fields)",
        response=RunStatusDocument,
        errors=(404, 503),
        tags=("runs",),
    ),
]
