"""Events of the Run aggregate (past tense). Node events name the node by its task id.

Each event carries what its command decided (new attempts, the status the run
rolls up to, values copied by bindings), so replaying a run only assigns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.base import LedgerAggregate


class RunCreated(LedgerAggregate.Created):
    client_id: str
    executor_id: str | None = None
    workspace: str | None = None
    automation_id: str | None = None
    trigger: Any = None
    max_attempts: int = 1
    workflow: dict[str, Any]
    definition_hash: str


class NodeEvent(LedgerAggregate.Event):
    task_id: str


class NodeDispatched(NodeEvent):
    dispatch_id: str
    worker_id: str
    attempt: int
    ack_deadline: datetime
    revision: int
    parameters: dict[str, Any] = {}


class NodeAcknowledged(NodeEvent):
    dispatch_id: str
    worker_id: str | None = None
    launching: bool = False


class NodeAckTimedOut(NodeEvent):
    dispatch_id: str
    attempts: int
    run_status: str


class NodeFeedbackRecorded(NodeEvent):
    feedback_id: str | None = None
    stage: str | None = None
    progress: float | None = None
    message: str | None = None
    metadata: dict[str, Any] = {}
    """Merged into the node's metadata: ``null`` removes a key."""
    metrics: dict[str, Any] = {}


class NodeResultDelta(NodeEvent):
    path: str
    operation: str
    value: Any = None
    sequence: int


class NodeChunkAppended(NodeEvent):
    channel: str
    sequence: int
    text: str | None = None
    data_base64: str | None = None
    mime_type: str | None = None
    metadata: dict[str, Any] = {}
    terminal: bool = False


class NodeUsageRecorded(NodeEvent):
    """The node's token use and cost so far (replacing earlier figures)."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None


class NodeFinished(NodeEvent):
    """Common shape of a node's result."""

    reported_status: str | None = None
    result: Any = None
    keep_result: bool = True
    metadata: dict[str, Any] = {}
    artifacts: list[Any] = []
    duration_ms: int | None = None
    error: dict[str, Any] | None = None


class NodeSucceeded(NodeFinished):
    bindings: list[dict[str, Any]] = []
    """Values copied into other nodes' parameters: ``{"task_id", "path", "value"}``."""


class NodeFailed(NodeFinished):
    attempts: int
    retry: bool = False
    """True when the node is requeued for another attempt instead of failing for good."""


class NodeCancelled(NodeEvent):
    reason: str


class FrameOpened(LedgerAggregate.Event):
    frame_id: str
    container_task_id: str


class FrameClosed(LedgerAggregate.Event):
    frame_id: str
    container_task_id: str
    status: str
    error: dict[str, Any] | None = None


class GateRequested(NodeEvent):
    title: str | None = None
    instructions: str | None = None
    requested_by: str = "workflow"


class GateDecided(NodeEvent):
    decision: str
    reason: str | None = None
    actor: str
    requeued: list[str] = []
    """Nodes sent back to the queue by a ``rework`` (attempts + 1)."""
    run_status: str


class GateMarkedStale(NodeEvent):
    detail: str
    metadata: dict[str, Any]


class RunPauseRequested(LedgerAggregate.Event):
    reason: str | None = None


class RunPaused(LedgerAggregate.Event):
    reason: str | None = None
    stop_kind: str | None = None
    detail: str | None = None
    lifecycle: str = "run_paused"
    repair: list[str] = []
    """Running nodes marked ``needs_repair`` (a stale reap)."""


class RunResumed(LedgerAggregate.Event):
    reason: str | None = None
    requeued: list[str] = []


class RunAutoResumed(LedgerAggregate.Event):
    requeued: list[str] = []
    metadata: dict[str, Any] = {}
    detail: str | None = None


class RunCancelled(LedgerAggregate.Event):
    reason: str | None = None


class RunFailed(LedgerAggregate.Event):
    error: dict[str, Any] | None = None
    stop_kind: str | None = None
    stop_reason: str | None = None
    detail: str | None = None
    lifecycle: str = "run_failed"


class RunSucceeded(LedgerAggregate.Event):
    pass


class RunBlocked(LedgerAggregate.Event):
    reason: str | None = None
    detail: str | None = None


class QuotaOverrideApproved(LedgerAggregate.Event):
    override_id: str
    reason: str | None = None
    actor: str


class SessionAttached(LedgerAggregate.Event):
    session_id: str


class SessionDetached(LedgerAggregate.Event):
    session_id: str


class InstanceAttached(LedgerAggregate.Event):
    instance_id: str


class InstanceDetached(LedgerAggregate.Event):
    instance_id: str


class WorkerEvent(NodeEvent):
    worker_id: str | None = None
    detail: str | None = None
    data: dict[str, Any] = {}


class WorkerLaunched(WorkerEvent):
    pass


class WorkerLaunchFailed(WorkerEvent):
    attempts: int
    requeued: bool


class WorkerUpdated(WorkerEvent):
    pass


class WorkerFinished(WorkerEvent):
    outcome: str


class WorkerAborted(WorkerEvent):
    pass


class ThreadLinked(NodeEvent):
    thread_id: str
