"""Response shapes, declared once: they document ``/openapi.json`` and tests validate
real responses against them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(Response):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(Response):
    error: ErrorDetail


class Accepted(Response):
    """Every command answers with where its (last) event landed."""

    seq: int
    position: int


class ThreadStartedResponse(Accepted):
    thread_id: str


class TurnStartedResponse(Accepted):
    thread_id: str
    turn_id: str


class ItemAddedResponse(Accepted):
    thread_id: str
    turn_id: str
    item_id: str
    kind: str


class ItemStatusResponse(Accepted):
    item_id: str
    status: str


class TurnEndedResponse(Accepted):
    turn_id: str
    status: str
    duration_ms: int | None


class ItemView(Response):
    item_id: str
    kind: str
    tool_name: str | None
    status: str
    payload: dict[str, Any]


class TurnView(Response):
    turn_id: str
    status: str
    input: str | None
    executor_id: str | None
    started_at: str
    ended_at: str | None
    error: str | None
    duration_ms: int | None
    items: list[ItemView]


class PendingApproval(Response):
    approval_id: str
    turn_id: str


class Usage(Response):
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    reasoning_replay_tokens: int
    total_tokens: int
    cost_usd: float


class ThreadViewResponse(Response):
    thread_id: str
    status: str
    seq: int
    title: str | None
    workspace: str | None
    metadata: dict[str, Any]
    turns: list[TurnView]
    pending_approvals: list[PendingApproval]
    usage: Usage


class EventView(Response):
    stream_id: str
    stream_type: str
    seq: int
    position: int
    type: str
    class_version: int
    recorded_at: str
    data: Any
    metadata: dict[str, Any]
    prev_hash: str
    hash: str


class StreamEventsPage(Response):
    events: list[EventView]
    next_seq: int


class Status(Response):
    status: str


class ThreadSummary(Response):
    thread_id: str
    status: str
    title: str | None
    workspace: str | None
    executor_id: str | None
    active_turn_id: str | None
    turns: int
    items: int
    pending_approvals: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    reasoning_replay_tokens: int
    total_tokens: int
    cost_usd: float
    created_at: str
    updated_at: str
    last_seq: int
    last_position: int


class ThreadPage(Response):
    items: list[ThreadSummary]
    next_cursor: str | None


class PendingApprovalRow(Response):
    thread_id: str
    approval_id: str
    turn_id: str
    item_id: str | None
    approval_key: str | None
    requires_full_access: bool
    requested_at: str
    position: int


class ApprovalPage(Response):
    items: list[PendingApprovalRow]
    next_cursor: str | None


class ProjectionStatusView(Response):
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    last_error: str | None
    error_position: int | None


class ProjectionsResponse(Response):
    projections: list[ProjectionStatusView]
