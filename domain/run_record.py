"""What a run's events do to its state: every ``@event`` body of the Run aggregate.

The bodies only assign: whatever needed deciding (new attempts, the status a run rolls
up to, values copied by bindings) was decided by :class:`domain.run.Run`'s commands and
put in the event, so replaying a run for time travel gives exactly the state it had.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import event

from domain.base import LedgerAggregate
from domain.entry_log import EntryLog
from domain.json_pointer import apply_delta
from domain.run_events import (
    FrameClosed,
    FrameOpened,
    GateDecided,
    GateMarkedStale,
    GateRequested,
    InstanceAttached,
    InstanceDetached,
    NodeAcknowledged,
    NodeAckTimedOut,
    NodeCancelled,
    NodeChunkAppended,
    NodeDispatched,
    NodeFailed,
    NodeFeedbackRecorded,
    NodeResultDelta,
    NodeSucceeded,
    NodeUsageRecorded,
    QuotaOverrideApproved,
    RunAutoResumed,
    RunBlocked,
    RunCancelled,
    RunFailed,
    RunPaused,
    RunPauseRequested,
    RunResumed,
    RunSucceeded,
    SessionAttached,
    SessionDetached,
    ThreadLinked,
    WorkerAborted,
    WorkerFinished,
    WorkerLaunched,
    WorkerLaunchFailed,
    WorkerUpdated,
)
from domain.run_lifecycle import (
    AUTO_RESUME_ENTRY,
    GATE_DECISION_ENTRIES,
    lifecycle_entry,
)
from domain.run_state import (
    ACTIVE_RUN_STATUSES,
    Gate,
    LifecycleEntry,
    NodeState,
    NodeUsage,
)
from domain.workflow import Plan


def as_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RunRecord(LedgerAggregate):
    """The state of a run and the events that change it (the creation event is on ``Run``)."""

    NodeDispatched = NodeDispatched
    NodeAcknowledged = NodeAcknowledged
    NodeAckTimedOut = NodeAckTimedOut
    NodeFeedbackRecorded = NodeFeedbackRecorded
    NodeResultDelta = NodeResultDelta
    NodeChunkAppended = NodeChunkAppended
    NodeUsageRecorded = NodeUsageRecorded
    NodeSucceeded = NodeSucceeded
    NodeFailed = NodeFailed
    NodeCancelled = NodeCancelled
    FrameOpened = FrameOpened
    FrameClosed = FrameClosed
    GateRequested = GateRequested
    GateDecided = GateDecided
    GateMarkedStale = GateMarkedStale
    RunPauseRequested = RunPauseRequested
    RunPaused = RunPaused
    RunResumed = RunResumed
    RunAutoResumed = RunAutoResumed
    RunCancelled = RunCancelled
    RunFailed = RunFailed
    RunSucceeded = RunSucceeded
    RunBlocked = RunBlocked
    QuotaOverrideApproved = QuotaOverrideApproved
    SessionAttached = SessionAttached
    SessionDetached = SessionDetached
    InstanceAttached = InstanceAttached
    InstanceDetached = InstanceDetached
    WorkerLaunched = WorkerLaunched
    WorkerLaunchFailed = WorkerLaunchFailed
    WorkerUpdated = WorkerUpdated
    WorkerFinished = WorkerFinished
    WorkerAborted = WorkerAborted
    ThreadLinked = ThreadLinked

    if TYPE_CHECKING:
        client_id: str
        executor_id: str | None
        workspace: str | None
        automation_id: str | None
        trigger: Any
        max_attempts: int
        workflow: dict[str, Any]
        definition_hash: str
        plan: Plan
        nodes: dict[str, NodeState]
        status: str
        created_at: datetime
        updated_at: datetime
        started_at: datetime | None
        finished_at: datetime | None
        detail: str | None
        stop_kind: str | None
        stop_reason: str | None
        pause_reason: str | None
        stopped_at: datetime | None
        error: dict[str, Any] | None
        frame_stack: list[str]
        revision: int
        last_dispatched: str | None
        gates: dict[str, Gate]
        gate_queue: list[str]
        gate_history: list[dict[str, Any]]
        lifecycle: EntryLog[LifecycleEntry]
        sessions: list[str]
        latest_session_id: str | None
        instances: list[str]
        quota_overrides: list[str]

    def _log(
        self,
        name: str,
        timestamp: datetime,
        *,
        detail: str | None = None,
        stop_kind: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.lifecycle.append(lifecycle_entry(name, timestamp, detail, stop_kind, metadata))
        self.updated_at = timestamp

    def _requeue(self, task_id: str, attempts: int | None = None) -> None:
        node = self.nodes[task_id]
        node.status = "queued"
        node.attempts = node.attempts + 1 if attempts is None else attempts
        node.pending_ack = False
        node.needs_repair = False
        node.dispatch_id = None
        node.worker_id = None
        node.ack_deadline = None
        node.started_at = None
        node.finished_at = None
        node.worker_status = None

    # events: assignment only -------------------------------------------------

    @event(NodeDispatched)
    def _node_dispatched(
        self,
        task_id: str,
        dispatch_id: str,
        worker_id: str,
        attempt: int,
        ack_deadline: datetime,
        revision: int,
        parameters: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        node = self.nodes[task_id]
        node.status = "running"
        node.dispatches += 1
        node.pending_ack = True
        node.dispatch_id = dispatch_id
        node.worker_id = worker_id
        node.ack_deadline = ack_deadline
        node.revision = revision
        node.dispatched_at = timestamp
        node.started_at = timestamp
        node.finished_at = None
        node.updated_at = timestamp
        node.error = None
        node.worker_status = None
        self.revision = revision
        self.last_dispatched = task_id
        if self.status in ACTIVE_RUN_STATUSES:
            if self.status == "queued":
                self._log("run_started", timestamp)
            self.status = "running"
        self._log(
            "node_started",
            timestamp,
            detail=f"node `{task_id}` started",
            metadata={"node_id": task_id, "attempt": attempt, "worker_id": worker_id},
        )
        if self.started_at is None:
            self.started_at = timestamp
        self.updated_at = timestamp

    @event(NodeAcknowledged)
    def _node_acknowledged(
        self,
        task_id: str,
        dispatch_id: str,
        worker_id: str | None,
        launching: bool,
        timestamp: datetime,
    ) -> None:
        node = self.nodes[task_id]
        node.acknowledged_at = timestamp
        if launching:
            node.worker_status = "launching"
        node.pending_ack = False
        node.ack_deadline = None
        node.updated_at = timestamp
        metadata = {"node_id": task_id, "dispatch_id": dispatch_id, "worker_id": worker_id}
        self._log("node_acknowledged", timestamp, metadata=metadata)

    @event(NodeAckTimedOut)
    def _node_ack_timed_out(
        self, task_id: str, dispatch_id: str, attempts: int, run_status: str, timestamp: datetime
    ) -> None:
        self._requeue(task_id, attempts)
        self.nodes[task_id].updated_at = timestamp
        self.status = run_status
        self._log(
            "node_ack_timed_out",
            timestamp,
            detail=f"node `{task_id}` ack timed out; requeued",
            metadata={"node_id": task_id, "dispatch_id": dispatch_id, "attempts": attempts},
        )

    @event(NodeFeedbackRecorded)
    def _feedback_recorded(
        self,
        task_id: str,
        feedback_id: str | None,
        stage: str | None,
        progress: float | None,
        message: str | None,
        metadata: dict[str, Any],
        metrics: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        node = self.nodes[task_id]
        if feedback_id is not None:
            node.feedback_ids.add(feedback_id)
        if stage is not None:
            node.stage = stage
        if progress is not None:
            node.progress = progress
        if message is not None:
            node.message = message
        for key, value in metadata.items():
            if value is None:
                node.metadata.pop(key, None)
            else:
                node.metadata[key] = deepcopy(value)
        node.metrics.update(deepcopy(metrics))
        node.updated_at = timestamp
        self._log("node_feedback_recorded", timestamp, metadata={"node_id": task_id})

    @event(NodeResultDelta)
    def _result_delta(
        self,
        task_id: str,
        path: str,
        operation: str,
        value: Any,
        sequence: int,
        timestamp: datetime,
    ) -> None:
        node = self.nodes[task_id]
        if not isinstance(node.result, dict):
            node.result = {}
        apply_delta(node.result, path, operation, value)
        node.result_sequence = sequence
        self._log(
            "node_result_delta", timestamp, metadata={"node_id": task_id, "sequence": sequence}
        )

    @event(NodeChunkAppended)
    def _chunk_appended(
        self,
        task_id: str,
        channel: str,
        sequence: int,
        text: str | None,
        data_base64: str | None,
        mime_type: str | None,
        metadata: dict[str, Any],
        terminal: bool,
        timestamp: datetime,
    ) -> None:
        self.nodes[task_id].chunk_sequence = sequence
        metadata = {"node_id": task_id, "channel": channel, "sequence": sequence}
        self._log("node_chunk_appended", timestamp, metadata=metadata)

    @event(NodeUsageRecorded)
    def _usage_recorded(
        self,
        task_id: str,
        input_tokens: int,
        output_tokens: int,
        reasoning_tokens: int,
        cost_usd: float,
        model: str | None,
        timestamp: datetime,
    ) -> None:
        self.nodes[task_id].usage = NodeUsage(
            input_tokens, output_tokens, reasoning_tokens, cost_usd, model
        )
        self._log("node_usage_recorded", timestamp, metadata={"node_id": task_id, "model": model})

    @event(NodeSucceeded)
    def _node_succeeded(
        self,
        task_id: str,
        reported_status: str | None,
        result: Any,
        keep_result: bool,
        metadata: dict[str, Any],
        artifacts: list[Any],
        duration_ms: int | None,
        bindings: list[dict[str, Any]],
        timestamp: datetime,
        error: dict[str, Any] | None = None,
    ) -> None:
        node = self.nodes[task_id]
        node.status = "succeeded"
        node.reported_status = reported_status
        if not keep_result:
            node.result = deepcopy(result)
        if metadata:
            node.metadata.update(deepcopy(metadata))
        if artifacts:
            node.artifacts = deepcopy(artifacts)
        node.duration_ms = duration_ms
        node.error = None
        node.pending_ack = False
        node.ack_deadline = None
        node.needs_repair = False
        node.finished_at = timestamp
        node.updated_at = timestamp
        for binding in bindings:
            _assign(self.nodes[binding["task_id"]].parameters, binding["path"], binding["value"])
        self._log(
            "node_completed",
            timestamp,
            metadata={
                "node_id": task_id,
                "status": "succeeded",
                "reported_status": reported_status,
            },
        )

    @event(NodeFailed)
    def _node_failed(
        self,
        task_id: str,
        attempts: int,
        retry: bool,
        error: dict[str, Any] | None,
        timestamp: datetime,
        reported_status: str | None = None,
        result: Any = None,
        keep_result: bool = True,
        metadata: dict[str, Any] | None = None,
        artifacts: list[Any] | None = None,
        duration_ms: int | None = None,
    ) -> None:
        node = self.nodes[task_id]
        node.reported_status = reported_status
        if not keep_result:
            node.result = deepcopy(result)
        if metadata:
            node.metadata.update(deepcopy(metadata))
        if artifacts:
            node.artifacts = deepcopy(artifacts)
        node.duration_ms = duration_ms
        node.error = deepcopy(error)
        node.updated_at = timestamp
        message = (error or {}).get("message") or "failed"
        if retry:
            self._requeue(task_id, attempts)
            self._log(
                "node_retried",
                timestamp,
                detail=f"node {task_id} failed ({message}); retrying, attempt {attempts + 1}",
            )
            return
        node.status = "failed"
        node.attempts = attempts
        node.pending_ack = False
        node.ack_deadline = None
        node.finished_at = timestamp
        self._log("node_failed", timestamp, detail=f"node {task_id} failed: {message}")

    @event(NodeCancelled)
    def _node_cancelled(self, task_id: str, reason: str, timestamp: datetime) -> None:
        node = self.nodes[task_id]
        node.status = "cancelled"
        node.pending_ack = False
        node.ack_deadline = None
        node.finished_at = timestamp
        node.updated_at = timestamp
        self.gates.pop(task_id, None)
        if task_id in self.gate_queue:
            self.gate_queue.remove(task_id)
        self._log("node_cancelled", timestamp, detail=reason, metadata={"node_id": task_id})

    @event(FrameOpened)
    def _frame_opened(self, frame_id: str, container_task_id: str, timestamp: datetime) -> None:
        self.frame_stack.append(frame_id)
        container = self.nodes[container_task_id]
        container.status = "running"
        container.started_at = timestamp
        container.updated_at = timestamp
        container.metadata["frameId"] = frame_id
        if self.started_at is None:
            self.started_at = timestamp
        if self.status == "queued":
            self.status = "running"
        self._log("frame_opened", timestamp, detail=f"frame {frame_id} opened")

    @event(FrameClosed)
    def _frame_closed(
        self,
        frame_id: str,
        container_task_id: str,
        status: str,
        error: dict[str, Any] | None,
        timestamp: datetime,
    ) -> None:
        if frame_id in self.frame_stack:
            self.frame_stack.remove(frame_id)
        self._log("frame_closed", timestamp, detail=f"frame {frame_id} {status}")

    @event(GateRequested)
    def _gate_requested(
        self,
        task_id: str,
        title: str | None,
        instructions: str | None,
        requested_by: str,
        timestamp: datetime,
    ) -> None:
        self.gates[task_id] = Gate(task_id, timestamp, requested_by, title, instructions)
        self.gate_queue.append(task_id)
        if self.status in ACTIVE_RUN_STATUSES:
            self.status = "awaiting_approval"
            self.detail = f"awaiting approval for gate `{task_id}`"
        self._log(
            "approval_gate_requested",
            timestamp,
            detail=f"approval gate {task_id} awaiting approval",
        )

    @event(GateDecided)
    def _gate_decided(
        self,
        task_id: str,
        decision: str,
        reason: str | None,
        actor: str,
        requeued: list[str],
        run_status: str,
        timestamp: datetime,
    ) -> None:
        gate = self.gates.pop(task_id)
        self.gate_queue.remove(task_id)
        gate.decision = decision
        gate.decided_at = timestamp
        self.gate_history.append(
            {
                "node_id": task_id,
                "decision": decision,
                "reason": reason,
                "actor": actor,
                "requested_at_ms": as_ms(gate.requested_at),
                "decided_at_ms": as_ms(timestamp),
                "metadata": deepcopy(gate.metadata),
            }
        )
        node = self.nodes[task_id]
        if decision == "approve" and self.plan.nodes[task_id].is_gate:
            node.status = "succeeded"
            node.finished_at = timestamp
            node.updated_at = timestamp
        for requeued_id in requeued:
            self._requeue(requeued_id)
        self.status = run_status
        self._log(
            GATE_DECISION_ENTRIES[decision],
            timestamp,
            detail=reason,
            metadata={"node_id": task_id, "decision": decision, "actor": actor},
        )

    @event(GateMarkedStale)
    def _gate_marked_stale(
        self, task_id: str, detail: str, metadata: dict[str, Any], timestamp: datetime
    ) -> None:
        gate = self.gates[task_id]
        gate.metadata.update(deepcopy(metadata))
        self.detail = detail
        self._log(
            "approval_gate_marked_stale",
            timestamp,
            detail=detail,
            metadata={
                "node_id": task_id,
                "requested_at_ms": metadata["requested_at_ms"],
                "stale_after_ms": metadata["stale_after_ms"],
                "policy": metadata["stale_policy"],
            },
        )

    @event(RunPauseRequested)
    def _pause_requested(self, reason: str | None, timestamp: datetime) -> None:
        self.status = "pausing"
        self.pause_reason = reason
        self._log("run_pause_requested", timestamp, detail=reason or "paused by operator")

    @event(RunPaused)
    def _run_paused(
        self,
        reason: str | None,
        stop_kind: str | None,
        detail: str | None,
        lifecycle: str,
        repair: list[str],
        timestamp: datetime,
    ) -> None:
        self.status = "paused"
        self.pause_reason = reason
        self.stop_kind = stop_kind
        self.stop_reason = reason if stop_kind else self.stop_reason
        self.detail = detail
        self.stopped_at = timestamp
        for task_id in repair:
            self.nodes[task_id].needs_repair = True
        self._log(lifecycle, timestamp, detail=detail, stop_kind=stop_kind)

    @event(RunResumed)
    def _resumed(self, reason: str | None, requeued: list[str], timestamp: datetime) -> None:
        self._clear_stop(requeued)
        self._log("run_resumed", timestamp, detail=reason or "resumed by operator")

    @event(RunAutoResumed)
    def _auto_resumed(
        self, requeued: list[str], metadata: dict[str, Any], detail: str | None, timestamp: datetime
    ) -> None:
        self._clear_stop(requeued)
        self._log(AUTO_RESUME_ENTRY, timestamp, detail=detail, metadata=metadata)

    def _clear_stop(self, requeued: list[str]) -> None:
        """Assignment shared by the two resumes."""
        for task_id in requeued:
            self._requeue(task_id)
        self.status = "awaiting_approval" if self.gate_queue else "queued"
        self.stop_kind = None
        self.stop_reason = None
        self.pause_reason = None
        self.detail = None
        self.stopped_at = None

    @event(RunCancelled)
    def _run_cancelled(self, reason: str | None, timestamp: datetime) -> None:
        self.stop_kind = "operator_stopped"
        self.stop_reason = reason or "cancelled by operator"
        self._finish("cancelled", timestamp, detail=self.stop_reason)
        self._log("run_stopped", timestamp, detail=self.detail, stop_kind="operator_stopped")

    @event(RunFailed)
    def _run_failed(
        self,
        error: dict[str, Any] | None,
        stop_kind: str | None,
        stop_reason: str | None,
        detail: str | None,
        lifecycle: str,
        timestamp: datetime,
    ) -> None:
        self.error = deepcopy(error)
        self.stop_kind = stop_kind
        self.stop_reason = stop_reason
        self._finish("failed", timestamp, detail=detail)
        self._log(lifecycle, timestamp, detail=detail, stop_kind=stop_kind)

    @event(RunSucceeded)
    def _run_succeeded(self, timestamp: datetime) -> None:
        self._finish("succeeded", timestamp, detail="automation run completed")
        self._log("run_completed", timestamp, detail=self.detail)

    @event(RunBlocked)
    def _run_blocked(self, reason: str | None, detail: str | None, timestamp: datetime) -> None:
        self.stop_reason = reason
        self._finish("blocked", timestamp, detail=detail)
        self._log("run_blocked", timestamp, detail=detail)

    def _finish(self, status: str, timestamp: datetime, *, detail: str | None) -> None:
        """Assignment shared by the terminal transitions: ``finished_at`` is set once."""
        self.status = status
        self.detail = detail
        if self.finished_at is None:
            self.finished_at = timestamp

    @event(QuotaOverrideApproved)
    def _quota_override_approved(
        self, override_id: str, reason: str | None, actor: str, timestamp: datetime
    ) -> None:
        self.quota_overrides.append(override_id)
        self._log(
            "quota_override_approved",
            timestamp,
            detail=reason,
            metadata={"override_id": override_id, "actor": actor},
        )

    @event(SessionAttached)
    def _session_attached(self, session_id: str, timestamp: datetime) -> None:
        if session_id not in self.sessions:
            self.sessions.append(session_id)
        self.latest_session_id = session_id
        self._log("session_attached", timestamp, metadata={"session_id": session_id})

    @event(SessionDetached)
    def _session_detached(self, session_id: str, timestamp: datetime) -> None:
        self.sessions.remove(session_id)
        self._log("session_detached", timestamp, metadata={"session_id": session_id})

    @event(InstanceAttached)
    def _instance_attached(self, instance_id: str, timestamp: datetime) -> None:
        self.instances.append(instance_id)
        self._log("instance_attached", timestamp, metadata={"instance_id": instance_id})

    @event(InstanceDetached)
    def _instance_detached(self, instance_id: str, timestamp: datetime) -> None:
        self.instances.remove(instance_id)
        self._log("instance_detached", timestamp, metadata={"instance_id": instance_id})

    @event(WorkerLaunched)
    def _worker_launched(
        self,
        task_id: str,
        worker_id: str | None,
        detail: str | None,
        data: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        self._worker_state(task_id, "launched", detail, timestamp)
        self._log(
            "worker_launched",
            timestamp,
            detail=detail,
            metadata={"node_id": task_id, "worker_id": worker_id},
        )

    @event(WorkerLaunchFailed)
    def _worker_launch_failed(
        self,
        task_id: str,
        worker_id: str | None,
        detail: str | None,
        data: dict[str, Any],
        attempts: int,
        requeued: bool,
        timestamp: datetime,
    ) -> None:
        self._requeue(task_id, attempts)
        self._worker_state(task_id, "launch_failed", detail, timestamp)
        self._log(
            "worker_launch_failed",
            timestamp,
            detail=detail,
            metadata={"node_id": task_id, "worker_id": worker_id},
        )

    @event(WorkerUpdated)
    def _worker_updated(
        self,
        task_id: str,
        worker_id: str | None,
        detail: str | None,
        data: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        node = self.nodes[task_id]
        node.metadata.setdefault("worker", {}).update(deepcopy(data))
        self._worker_state(task_id, node.worker_status or "running", detail, timestamp)
        metadata = {"node_id": task_id, "worker_id": worker_id}
        self._log("worker_runtime_event", timestamp, detail=detail, metadata=metadata)

    @event(WorkerFinished)
    def _worker_finished(
        self,
        task_id: str,
        worker_id: str | None,
        detail: str | None,
        data: dict[str, Any],
        outcome: str,
        timestamp: datetime,
    ) -> None:
        self._worker_state(task_id, f"finished:{outcome}", detail, timestamp)
        self._log(
            "worker_finished",
            timestamp,
            detail=detail,
            metadata={"node_id": task_id, "outcome": outcome},
        )

    @event(WorkerAborted)
    def _worker_aborted(
        self,
        task_id: str,
        worker_id: str | None,
        detail: str | None,
        data: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        self._worker_state(task_id, "aborted", detail, timestamp)
        self._log("worker_aborted", timestamp, detail=detail, metadata={"node_id": task_id})

    def _worker_state(
        self, task_id: str, status: str, detail: str | None, timestamp: datetime
    ) -> None:
        node = self.nodes[task_id]
        node.worker_status = status
        if detail is not None:
            node.worker_detail = detail
        node.updated_at = timestamp
        self.updated_at = timestamp

    @event(ThreadLinked)
    def _thread_linked(self, task_id: str, thread_id: str, timestamp: datetime) -> None:
        self.nodes[task_id].thread_id = thread_id
        self._log("thread_linked", timestamp, metadata={"node_id": task_id, "thread_id": thread_id})


def _assign(parameters: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``value`` at ``path`` inside ``parameters`` (an empty path merges a mapping)."""
    if not path:
        parameters.clear()
        parameters.update(deepcopy(value))
        return
    current = parameters
    for key in path[:-1]:
        child = current.get(key)
        if not isinstance(child, dict):
            child = {}
            current[key] = child
        current = child
    current[path[-1]] = deepcopy(value)
