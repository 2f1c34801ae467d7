"""Thread endpoints: commands (``POST``), views of one stream (``GET``), its chain check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from commands.thread_commands import (
    AddItem,
    ArchiveThread,
    ChangeWorkspace,
    CompleteTurn,
    DecideApproval,
    RecordUsage,
    RequestApproval,
    SetItemStatus,
    StartThread,
    StartTurn,
)
from domain.errors import NotFound
from domain.thread import Thread
from infra.http.endpoint import Endpoint
from infra.http.paths import path_ids, seq_in_path
from infra.http.requests import command_context, read_command
from infra.http.schemas import (
    ApprovalResponse,
    ItemAddedResponse,
    ItemStatusResponse,
    StreamEventsPage,
    StreamVerifyResponse,
    ThreadArchivedResponse,
    ThreadExport,
    ThreadStartedResponse,
    ThreadViewResponse,
    TurnEndedResponse,
    TurnStartedResponse,
    UsageRecordedResponse,
    WorkspaceChangedResponse,
)
from infra.http.service import command_answer, ledger_of
from infra.http.stream_pages import EventsQuery, stream_events_page
from infra.http.wire import JSON
from infra.store.verify import verify_stream_events
from queries.thread_export import thread_export
from queries.thread_view import thread_view

if TYPE_CHECKING:
    pass


async def start_thread(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, StartThread, ledger.settings.max_body_bytes)
    saved = await ledger.threads.start_thread(command, command_context(request, canonical))
    return command_answer(saved, 201)


async def start_turn(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, StartTurn, ledger.settings.max_body_bytes)
    executor = request.headers.get("x-ledger-executor")
    if command.executor_id is None and executor:
        command = StartTurn.model_validate({**command.model_dump(), "executor_id": executor})
    saved = await ledger.threads.start_turn(
        path_ids(request)["thread_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 201)


async def add_item(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, AddItem, ledger.settings.max_body_bytes)
    p = path_ids(request)
    saved = await ledger.threads.add_item(
        p["thread_id"], p["turn_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 201)


async def set_item_status(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, SetItemStatus, ledger.settings.max_body_bytes)
    p = path_ids(request)
    saved = await ledger.threads.set_item_status(
        p["thread_id"], p["turn_id"], p["item_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 200)


async def complete_turn(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, CompleteTurn, ledger.settings.max_body_bytes)
    p = path_ids(request)
    saved = await ledger.threads.complete_turn(
        p["thread_id"], p["turn_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 200)


async def request_approval(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(
        request, RequestApproval, ledger.settings.max_body_bytes
    )
    saved = await ledger.threads.request_approval(
        path_ids(request)["thread_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 201)


async def decide_approval(request: Request) -> Response:
    """Decided by the X-Ledger-Actor of the request."""
    ledger = ledger_of(request)
    command, canonical = await read_command(request, DecideApproval, ledger.settings.max_body_bytes)
    p = path_ids(request)
    saved = await ledger.threads.decide_approval(
        p["thread_id"], p["approval_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 200)


async def record_usage(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, RecordUsage, ledger.settings.max_body_bytes)
    p = path_ids(request)
    saved = await ledger.threads.record_usage(
        p["thread_id"], p["turn_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 200)


async def change_workspace(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(
        request, ChangeWorkspace, ledger.settings.max_body_bytes
    )
    saved = await ledger.threads.change_workspace(
        path_ids(request)["thread_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 200)


async def archive_thread(request: Request) -> Response:
    ledger = ledger_of(request)
    command, canonical = await read_command(request, ArchiveThread, ledger.settings.max_body_bytes)
    saved = await ledger.threads.archive(
        path_ids(request)["thread_id"], command, command_context(request, canonical)
    )
    return command_answer(saved, 200)


async def get_thread(request: Request) -> Response:
    ledger = ledger_of(request)
    thread = await ledger.threads.load(ledger.tenant(request), path_ids(request)["thread_id"])
    return JSON(thread_view(thread))


async def get_thread_at(request: Request) -> Response:
    ledger = ledger_of(request)
    thread_id = path_ids(request)["thread_id"]
    seq = seq_in_path(path_ids(request)["seq"])
    aggregate = await ledger.repository.load(ledger.tenant(request), thread_id, upto_seq=seq)
    if not isinstance(aggregate, Thread):
        raise NotFound(f"no thread {thread_id}", thread_id=thread_id)
    if seq == 0 or aggregate.version < seq:
        raise NotFound(
            f"thread {thread_id} has no event {seq} (its last is {aggregate.version})",
            thread_id=thread_id,
            last_seq=aggregate.version,
        )
    return JSON(thread_view(aggregate))


async def get_thread_events(request: Request) -> Response:
    return await stream_events_page(request, Thread.stream_type, "thread_id")


async def get_thread_export(request: Request) -> Response:
    ledger = ledger_of(request)
    thread = await ledger.threads.load(ledger.tenant(request), path_ids(request)["thread_id"])
    return JSON(thread_export(thread))


async def verify_stream(request: Request) -> Response:
    """One stream's hash chain, checked over all its events as ``ledger verify`` checks it."""
    ledger = ledger_of(request)
    stream_id = path_ids(request)["stream_id"]
    events = await ledger.store.read_stream(ledger.tenant(request), stream_id)
    if not events:
        raise NotFound(f"no stream {stream_id}", stream_id=stream_id)
    acknowledged = await ledger.store.fetch(
        "SELECT max(seq) FROM idempotency_keys WHERE tenant = %s AND stream_id = %s",
        [ledger.tenant(request), stream_id],
    )
    report = verify_stream_events(events, acknowledged[0][0] if acknowledged else None)
    return JSON(
        {
            "stream_id": stream_id,
            "stream_type": events[-1].stream_type,
            "ok": report.ok,
            "events": report.events,
            "problems": report.problems,
        }
    )


COMMAND_ERRORS = (400, 404, 409, 413, 422, 503)
THREAD = "/v1/threads/{thread_id}"
TURN = THREAD + "/turns/{turn_id}"

ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/threads",
        start_thread,
        "Start a thread",
        201,
        StartThread,
        response=ThreadStartedResponse,
        errors=(400, 409, 413, 422, 503),
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        THREAD + "/turns",
        start_turn,
        "Start a turn (one active turn per thread)",
        201,
        StartTurn,
        response=TurnStartedResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        TURN + "/items",
        add_item,
        "Add an item to the active turn",
        201,
        AddItem,
        response=ItemAddedResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        TURN + "/items/{item_id}/status",
        set_item_status,
        "Change an item's status",
        200,
        SetItemStatus,
        response=ItemStatusResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        TURN + "/complete",
        complete_turn,
        "End the active turn",
        200,
        CompleteTurn,
        response=TurnEndedResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        THREAD + "/approvals",
        request_approval,
        "Ask for approval on the active turn (an auto-approve turn decides at once)",
        201,
        RequestApproval,
        response=ApprovalResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        THREAD + "/approvals/{approval_id}/decision",
        decide_approval,
        "Decide a pending approval of the turn named (once)",
        200,
        DecideApproval,
        response=ApprovalResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        TURN + "/usage",
        record_usage,
        "Record the turn's usage so far (replaces its earlier figures)",
        200,
        RecordUsage,
        response=UsageRecordedResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        THREAD + "/workspace",
        change_workspace,
        "Bind the thread to another workspace directory (not during a turn)",
        200,
        ChangeWorkspace,
        response=WorkspaceChangedResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "POST",
        THREAD + "/archive",
        archive_thread,
        "Archive an idle thread (it takes no new turns)",
        200,
        ArchiveThread,
        response=ThreadArchivedResponse,
        errors=COMMAND_ERRORS,
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        THREAD,
        get_thread,
        "The thread, folded from its stream",
        response=ThreadViewResponse,
        errors=(404, 503),
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        THREAD + "/events",
        get_thread_events,
        "Replay the thread's events after a seq",
        query=EventsQuery,
        response=StreamEventsPage,
        errors=(400, 404, 422, 503),
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        THREAD + "/at/{seq}",
        get_thread_at,
        "The thread as it was after event seq",
        response=ThreadViewResponse,
        errors=(400, 404, 503),
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        THREAD + "/export",
        get_thread_export,
        "The thread's conversation as messages, with its total tokens",
        response=ThreadExport,
        errors=(404, 503),
        tags=("threads",),
    ),
    Endpoint(
        "GET",
        "/v1/streams/{stream_id}/verify",
        verify_stream,
        "Check one stream's hash chain",
        response=StreamVerifyResponse,
        errors=(404, 503),
        tags=("streams",),
    ),
]
