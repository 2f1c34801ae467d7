"""Run commands (imperative), as the bodies clients send. Path ids come separately.

The workflow itself is checked by :func:`domain.workflow.compile_workflow` (422 naming
what is wrong); here only its outer shape is typed.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from commands.thread_commands import (
    MAX_COST_USD,
    MAX_ERROR_CHARS,
    MAX_TITLE_CHARS,
    MAX_WORKSPACE_CHARS,
    NO_NUL,
    ExternalId,
    ModelName,
    TokenCount,
)

Reason = Annotated[str, Field(max_length=MAX_ERROR_CHARS, pattern=NO_NUL)]
Text = Annotated[str, Field(max_length=MAX_ERROR_CHARS)]
DispatchId = Annotated[str, Field(min_length=1, max_length=128)]
MAX_CLAIM = 100


class Command(BaseModel):
    # strict: each field takes the JSON type the schema states (0 is not false, "5" not 5)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StartRun(Command):
    run_id: ExternalId | None = None
    client_id: ExternalId
    executor_id: ExternalId | None = None
    workspace: Annotated[str, Field(max_length=MAX_WORKSPACE_CHARS, pattern=NO_NUL)] | None = None
    automation_id: ExternalId | None = None
    trigger: Any = None
    max_attempts: int = Field(1, ge=1, le=100)
    workflow: dict[str, Any]


class ClaimNodes(Command):
    worker_id: ExternalId
    limit: int = Field(1, ge=1, le=MAX_CLAIM)


class AcknowledgeDispatch(Command):
    dispatch_id: DispatchId
    worker_id: ExternalId | None = None
    launching: bool = False
    """The worker will report its launch (seed 003): the launch timeout starts now."""


class UsageReport(Command):
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    cost_usd: float = Field(0.0, ge=0, le=MAX_COST_USD, allow_inf_nan=False)
    model: ModelName | None = None


class Chunk(Command):
    channel: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    text: Text | None = None
    data_base64: Annotated[str, Field(max_length=1_000_000)] | None = None
    mime_type: Annotated[str, Field(max_length=255)] | None = None
    metadata: dict[str, Any] = {}
    sequence: int | None = Field(None, ge=0)
    """Ignored: the server numbers chunks per node."""


class RecordFeedback(Command):
    dispatch_id: DispatchId
    feedback_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    stage: Annotated[str, Field(max_length=255)] | None = None
    progress: Annotated[float, Field(strict=True)] | None = None
    """A number (clamped to 0..1); strings and booleans are refused."""
    message: Text | None = None
    metadata: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    chunks: list[Chunk] = Field(default_factory=list, max_length=1000)
    usage: UsageReport | None = None

    @field_validator("progress")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("progress must be a finite number")
        return value


class NodeError(Command):
    model_config = ConfigDict(extra="allow", frozen=True)
    code: Annotated[str, Field(max_length=255)] = "node_failed"
    message: Text = ""
    details: Any = None


class RecordResult(Command):
    dispatch_id: DispatchId
    status: Annotated[str, Field(min_length=1, max_length=32)]
    result: Any = None
    error: NodeError | None = None
    metadata: dict[str, Any] = {}
    artifacts: list[Any] = Field(default_factory=list, max_length=1000)
    duration_ms: int | None = Field(None, ge=0, le=10**15)
    usage: UsageReport | None = None


class RecordCommandError(Command):
    dispatch_id: DispatchId | None = None
    message: Text
    code: Annotated[str, Field(max_length=255)] | None = None


class ChangeRun(Command):
    """Pause, resume, cancel, block, stale-reap, guardrail stop."""

    reason: Reason | None = None


class RequestGate(Command):
    node_id: Annotated[str, Field(min_length=1, max_length=1000)]
    title: Annotated[str, Field(max_length=MAX_TITLE_CHARS)] | None = None
    instructions: Text | None = None


class DecideGate(Command):
    decision: Literal["approve", "deny", "rework"]
    reason: Reason | None = None


class ApproveQuotaOverride(Command):
    run_id: ExternalId
    override_id: ExternalId | None = None
    agent_ids: list[ExternalId] = Field(default_factory=list, max_length=100)
    reason: Reason | None = None


class ChangeSession(Command):
    session_id: ExternalId
    action: Literal["attach", "detach"] = "attach"


class ChangeInstance(Command):
    instance_id: ExternalId
    action: Literal["attach", "detach"] = "attach"


class RecordWorkerEvent(Command):
    event: Literal["launched", "launch_failed", "update", "finished", "aborted"]
    worker_id: ExternalId | None = None
    detail: Text | None = None
    outcome: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    data: dict[str, Any] = {}


class LinkThread(Command):
    thread_id: ExternalId
