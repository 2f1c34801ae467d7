"""Response shapes, declared once: they document ``/openapi.json`` and tests validate
real responses against them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class ApprovalResponse(Accepted):
    """An approval after a request or a decision: ``status`` is its decision, or pending."""

    thread_id: str
    approval_id: str
    turn_id: str
    item_id: str | None
    approval_key: str | None
    status: Literal["pending", "approve", "deny", "retry_with_full_access"]
    decision: Literal["approve", "deny", "retry_with_full_access"] | None
    actor: str | None
    remember_for_session: bool


class UsageRecordedResponse(Accepted):
    thread_id: str
    turn_id: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    reasoning_replay_tokens: int
    total_tokens: int
    cost_usd: float
    model: str | None


class WorkspaceChangedResponse(Accepted):
    thread_id: str
    workspace: str
    previous_workspace: str | None


class ThreadArchivedResponse(Accepted):
    thread_id: str
    status: Literal["archived"]


class ItemView(Response):
    item_id: str
    kind: str
    tool_name: str | None
    status: str
    payload: dict[str, Any]


class Usage(Response):
    """total_tokens = input + output + reasoning + reasoning_replay."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    reasoning_replay_tokens: int
    total_tokens: int
    cost_usd: float


class TurnUsage(Usage):
    model: str | None


class TurnView(Response):
    turn_id: str
    status: str
    input: str | None
    executor_id: str | None
    auto_approve: bool
    trust_mode: bool
    started_at: str
    ended_at: str | None
    error: str | None
    duration_ms: int | None
    usage: TurnUsage | None
    items: list[ItemView]


class PendingApproval(Response):
    approval_id: str
    turn_id: str
    item_id: str | None
    approval_key: str | None
    requires_full_access: bool
    requested_at: str


class ApprovalView(PendingApproval):
    status: Literal["pending", "approve", "deny", "retry_with_full_access"]
    decision: Literal["approve", "deny", "retry_with_full_access"] | None
    actor: str | None
    remember_for_session: bool
    decided_at: str | None


class ThreadViewResponse(Response):
    thread_id: str
    status: Literal["active", "idle", "archived"]
    seq: int
    title: str | None
    workspace: str | None
    metadata: dict[str, Any]
    active_turn_id: str | None
    created_at: str
    updated_at: str
    turns: list[TurnView]
    pending_approvals: list[PendingApproval]
    approvals: list[ApprovalView]
    usage: Usage


class UserMessage(Response):
    role: Literal["user"]
    turn_id: str
    item_id: None
    content: str


class AssistantMessage(Response):
    role: Literal["assistant"]
    turn_id: str
    item_id: str
    content: str


class ToolMessage(Response):
    role: Literal["tool"]
    turn_id: str
    item_id: str
    content: str
    status: str
    tool_name: str | None


class ThreadExport(Response):
    """The conversation: per turn its input, then its message and tool items in order."""

    thread_id: str
    messages: list[
        Annotated[UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]
    ]
    total_tokens: int


class StreamVerifyResponse(Response):
    """The hash chain check of one stream, as ``ledger verify`` makes it."""

    stream_id: str
    stream_type: str
    ok: bool
    events: int
    problems: list[str]


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


class FeedPage(Response):
    events: list[EventView]
    next_after: int
