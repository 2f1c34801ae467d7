"""The state a run keeps per node, gate and lifecycle entry (plain dataclasses and dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

NODE_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_NODE_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
RUN_STATUSES = (
    "queued",
    "running",
    "pausing",
    "paused",
    "awaiting_approval",
    "blocked",
    "succeeded",
    "failed",
    "cancelled",
)
TERMINAL_RUN_STATUSES = frozenset({"succeeded", "failed", "cancelled", "blocked"})
ACTIVE_RUN_STATUSES = frozenset({"queued", "running"})
"""Statuses the rollup may decide between (and the only ones that dispatch)."""


@dataclass
class NodeUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.reasoning_tokens


@dataclass
class NodeState:
    """One node's progress through its attempts."""

    task_id: str
    parameters: dict[str, Any]
    status: str = "queued"
    attempts: int = 0
    dispatches: int = 0
    """How many times the node was dispatched (``attempts`` counts the tries that ended badly)."""
    pending_ack: bool = False
    needs_repair: bool = False
    dispatch_id: str | None = None
    worker_id: str | None = None
    ack_deadline: datetime | None = None
    revision: int | None = None
    dispatched_at: datetime | None = None
    acknowledged_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    result: Any = None
    reported_status: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    artifacts: list[Any] = field(default_factory=list)
    duration_ms: int | None = None
    stage: str | None = None
    progress: float | None = None
    message: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    result_sequence: int = 0
    chunk_sequence: int = 0
    feedback_ids: set[str] = field(default_factory=set)
    usage: NodeUsage | None = None
    thread_id: str | None = None
    worker_status: str | None = None
    worker_detail: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_NODE_STATUSES

    @property
    def in_flight(self) -> bool:
        return self.status == "running"


@dataclass
class Gate:
    """An approval gate on a node, awaiting a decision or decided."""

    task_id: str
    requested_at: datetime
    requested_by: str
    title: str | None = None
    instructions: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    decided_at: datetime | None = None


class LifecycleEntry(TypedDict):
    """One line of the run's ``lifecycle_history`` (seed 002's names).

    A plain dict rather than a dataclass: a run keeps one for every event it records,
    and a snapshot holds them as plain JSON, which decodes without a Python object
    being built per entry (what kept time travel on a 10,000-event run slow)."""

    event: str
    recorded_at_ms: int
    detail: str | None
    stop_kind: str | None
    metadata: dict[str, Any]
