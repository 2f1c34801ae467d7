"""The Run aggregate: a workflow DAG run and the automation lifecycle around it.

Seeds 001 (scheduler), 002 (automation run store) and 003 (worker orchestrator),
as DESIGN.md unifies them. Rules kept here:
- a node is ready when every dependency succeeded; only nodes of the innermost open
  frame (or of the top graph, with no frame open) are dispatched, and only while the
  run is queued or running; a ready container opens its frame and a ready gate asks
  for approval in the same command that made them ready;
- a dispatch must be acknowledged (its id must match) before its ack deadline; a
  missed deadline requeues the node with attempts + 1;
- a failed node is retried while its attempts are below its max; a final failure
  cancels its frame's other nodes and fails the container with the first error,
  and at the top fails the run and cancels every node not yet final;
- the rollup decides between queued, running and the final statuses only while
  the run is queued or running; a terminal run takes no more commands.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import event

from domain.costs import cost_total
from domain.entry_log import EntryLog
from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from domain.json_pointer import MISSING, get_path, merge_deltas
from domain.run_events import (
    RunCreated,
)
from domain.run_lifecycle import (
    AUTO_RESUME_AFTER_GUARDRAIL_OVERRIDE,
    AUTO_RESUME_AFTER_STALE_REAP,
    AUTO_RESUME_ENTRY,
    LAUNCH_TIMEOUT_DETAIL,
    RESTART_DETAIL,
    RESTART_PAUSE_REASON,
    SHUTDOWN_DETAIL,
    STALE_GATE_DETAIL,
    STALE_GATE_POLICY,
    STALE_REAP_DETAIL,
    STALE_REAP_ENTRY,
    WORKER_LOST_MESSAGE,
    rust_duration,
)
from domain.run_record import RunRecord, as_ms
from domain.run_state import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    Gate,
    NodeState,
    NodeUsage,
)
from domain.workflow import compile_workflow

REPORTED_STATUSES = {"succeeded": "succeeded", "skipped": "succeeded", "failed": "failed"}
REPORTED_STATUSES["cancelled"] = "cancelled"
GATE_DECISIONS = ("approve", "deny", "rework")
CONTAINER_FINISH: dict[str, Any] = {
    "reported_status": None,
    "result": None,
    "keep_result": True,
    "metadata": {},
    "artifacts": [],
    "duration_ms": None,
}
WORKER_EVENTS = ("launched", "launch_failed", "update", "finished", "aborted")


def normalise_status(reported: str) -> str | None:
    """A worker's reported status as a node status (``skipped`` → ``succeeded``) [55]."""
    return REPORTED_STATUSES.get(reported.lower())


class Run(RunRecord):
    """One execution of a workflow: its nodes, frames, gates and lifecycle."""

    stream_type: ClassVar[str] = "run"

    RunCreated = RunCreated

    @event(RunCreated)
    def __init__(
        self,
        id: str,
        client_id: str,
        executor_id: str | None,
        workspace: str | None,
        automation_id: str | None,
        trigger: Any,
        max_attempts: int,
        workflow: dict[str, Any],
        definition_hash: str,
        timestamp: datetime,
    ) -> None:
        self.client_id = client_id
        self.executor_id = executor_id
        self.workspace = workspace
        self.automation_id = automation_id
        self.trigger = deepcopy(trigger)
        self.max_attempts = max_attempts
        self.workflow = deepcopy(workflow)
        self.definition_hash = definition_hash
        self.plan = compile_workflow(self.workflow)
        self.nodes = {
            task_id: NodeState(task_id, deepcopy(spec.parameters))
            for task_id, spec in self.plan.nodes.items()
        }
        self.status = "queued"
        self.created_at = timestamp
        self.updated_at = timestamp
        self.started_at = None
        self.finished_at = None
        self.detail = None
        self.stop_kind = None
        self.stop_reason = None
        self.pause_reason = None
        self.stopped_at = None
        self.error = None
        self.frame_stack = []
        self.revision = 0
        self.last_dispatched = None
        self.gates = {}
        self.gate_queue = []
        self.gate_history = []
        self.lifecycle = EntryLog()
        self.sessions = []
        self.latest_session_id = None
        self.instances = []
        self.quota_overrides = []
        self._log(
            "run_created",
            timestamp,
            metadata={"definition_hash": definition_hash, "automation_id": automation_id},
        )

    @classmethod
    def create(
        cls,
        *,
        run_id: str,
        client_id: str,
        executor_id: str | None,
        workspace: str | None,
        automation_id: str | None,
        trigger: Any,
        max_attempts: int,
        workflow: dict[str, Any],
        definition_hash: str,
        now: datetime,
    ) -> Run:
        """A new run; ready gates and containers are settled in the same command."""
        compile_workflow(workflow)  # refuse a malformed workflow before any event
        if max_attempts < 1:
            raise InvalidCommand("max_attempts must be at least 1")
        run = cls(
            id=run_id,
            client_id=client_id,
            executor_id=executor_id,
            workspace=workspace,
            automation_id=automation_id,
            trigger=deepcopy(trigger),
            max_attempts=max_attempts,
            workflow=deepcopy(workflow),  # the event must not share the caller's nested lists
            definition_hash=definition_hash,
            timestamp=now,
        )
        run._settle(now)
        return run

    # queries ---------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.id

    @property
    def auto_resume_count(self) -> int:
        """``run_auto_resumed`` entries so far (the cap counts both kinds, as seed 002 does)."""
        return sum(1 for entry in self.lifecycle if entry["event"] == AUTO_RESUME_ENTRY)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def awaiting_gate(self) -> Gate | None:
        return self.gates[self.gate_queue[0]] if self.gate_queue else None

    def node(self, task_id: str) -> NodeState:
        found = self.nodes.get(task_id)
        if found is None:
            raise NotFound(f"run {self.id} has no node {task_id}", node_id=task_id)
        return found

    def scope(self) -> list[str]:
        """Task ids of the innermost open frame, or of the top graph."""
        if self.frame_stack:
            return self.plan.frames[self.frame_stack[-1]].task_ids
        return self.plan.root_task_ids

    def is_ready(self, task_id: str) -> bool:
        node = self.nodes[task_id]
        deps = self.plan.nodes[task_id].dependencies
        return node.status == "queued" and all(self.nodes[d].status == "succeeded" for d in deps)

    def dispatchable(self, worker_id: str) -> list[str]:
        """Ready task nodes ``worker_id`` may claim now, in workflow order."""
        if self.status not in ACTIVE_RUN_STATUSES:
            return []
        found = []
        for task_id in self.scope():
            spec = self.plan.nodes[task_id]
            if spec.is_gate or spec.is_container or not self.is_ready(task_id):
                continue
            if spec.preferred_worker_id not in (None, worker_id):
                continue
            found.append(task_id)
        return found

    def has_ready_work(self) -> bool:
        """Whether some worker could claim a node now (read models index this)."""
        if self.status not in ACTIVE_RUN_STATUSES:
            return False
        return any(
            not self.plan.nodes[t].is_gate
            and not self.plan.nodes[t].is_container
            and self.is_ready(t)
            for t in self.scope()
        )

    def in_flight(self) -> list[str]:
        return [t for t, n in self.nodes.items() if n.in_flight and not self._is_open_frame(t)]

    def max_attempts_of(self, task_id: str) -> int:
        return self.plan.nodes[task_id].max_attempts or self.max_attempts

    @property
    def usage(self) -> NodeUsage:
        """Tokens and cost of the whole run: the sum of its nodes'."""
        total = NodeUsage()
        used = [node.usage for node in self.nodes.values() if node.usage is not None]
        for usage in used:
            total.input_tokens += usage.input_tokens
            total.output_tokens += usage.output_tokens
            total.reasoning_tokens += usage.reasoning_tokens
        total.cost_usd = cost_total(usage.cost_usd for usage in used)
        return total

    # commands: the worker protocol -----------------------------------------

    def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        ack_timeout: timedelta,
        new_dispatch_id: Callable[[], str],
        now: datetime,
    ) -> list[str]:
        """Dispatch up to ``limit`` ready nodes to ``worker_id``; their task ids."""
        claimed = self.dispatchable(worker_id)[:limit]
        for task_id in claimed:
            node = self.nodes[task_id]
            self._node_dispatched(
                task_id=task_id,
                dispatch_id=new_dispatch_id(),
                worker_id=worker_id,
                attempt=node.attempts + 1,
                ack_deadline=now + ack_timeout,
                revision=self.revision + 1,
                parameters=deepcopy(node.parameters),
                timestamp=now,
            )
        return claimed

    def acknowledge(
        self,
        *,
        task_id: str,
        dispatch_id: str,
        worker_id: str | None,
        now: datetime,
        launching: bool = False,
    ) -> None:
        """Accept a dispatch; ``launching`` starts the worker launch timeout (seed 003)."""
        node = self._dispatched_node(task_id, dispatch_id)
        if not node.pending_ack:
            raise LifecycleConflict(
                f"dispatch {dispatch_id} of node {task_id} is already acknowledged"
            )
        self._node_acknowledged(
            task_id=task_id,
            dispatch_id=dispatch_id,
            worker_id=worker_id,
            launching=launching,
            timestamp=now,
        )

    def time_out_ack(self, *, task_id: str, now: datetime) -> bool:
        """Requeue a dispatch whose ack deadline has passed [1119]; whether it did."""
        node = self.nodes.get(task_id)
        if node is None or self.terminal or not node.pending_ack or node.ack_deadline is None:
            return False
        if node.ack_deadline > now or node.dispatch_id is None:
            return False
        run_status = self.status
        if run_status in ACTIVE_RUN_STATUSES:
            run_status = self._rolled_up_active_status(after_requeue=[task_id])
        self._node_ack_timed_out(
            task_id=task_id,
            dispatch_id=node.dispatch_id,
            attempts=node.attempts + 1,
            run_status=run_status,
            timestamp=now,
        )
        self._settle(now)
        return True

    def record_feedback(
        self,
        *,
        task_id: str,
        dispatch_id: str,
        feedback_id: str | None,
        stage: str | None,
        progress: float | None,
        message: str | None,
        metadata: dict[str, Any],
        metrics: dict[str, Any],
        chunks: list[dict[str, Any]],
        usage: NodeUsage | None,
        now: datetime,
    ) -> bool:
        """Seed 001's feedback [1285]; False when ``feedback_id`` was already recorded."""
        node = self._dispatched_node(task_id, dispatch_id)
        if feedback_id is not None and feedback_id in node.feedback_ids:
            return False
        results = metadata.get("results")
        if results is None and "summary" in metadata:
            results = {"summary": metadata["summary"]}
        if results is not None and not isinstance(results, dict):
            raise InvalidCommand("metadata.results must be an object")
        self._feedback_recorded(
            task_id=task_id,
            feedback_id=feedback_id,
            stage=stage,
            progress=None if progress is None else min(1.0, max(0.0, progress)),
            message=message,
            metadata={k: v for k, v in metadata.items() if k != "results"},
            metrics=metrics,
            timestamp=now,
        )
        current = node.result if isinstance(node.result, dict) else {}
        for delta in merge_deltas(current, results or {}):
            self._result_delta(
                task_id=task_id, sequence=node.result_sequence + 1, timestamp=now, **delta
            )
        for chunk in chunks:
            chunk_metadata = chunk.get("metadata") or {}
            self._chunk_appended(
                task_id=task_id,
                channel=chunk.get("channel") or "log",
                sequence=node.chunk_sequence + 1,
                text=chunk.get("text"),
                data_base64=chunk.get("data_base64"),
                mime_type=chunk.get("mime_type"),
                metadata=chunk_metadata,
                terminal=bool(chunk_metadata.get("terminal")),
                timestamp=now,
            )
        if usage is not None:
            self._record_usage(task_id, usage, now)
        return True

    def record_result(
        self,
        *,
        task_id: str,
        dispatch_id: str,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        metadata: dict[str, Any],
        artifacts: list[Any],
        duration_ms: int | None,
        usage: NodeUsage | None,
        now: datetime,
    ) -> str:
        """A worker's result [1175]; returns the node's status after it."""
        self._ensure_not_terminal()
        node = self.node(task_id)
        if node.final:
            raise LifecycleConflict(
                f"node {task_id} is already {node.status}; it takes no more results",
                status=node.status,
            )
        self._dispatched_node(task_id, dispatch_id)
        normalised = normalise_status(status)
        if normalised is None:
            raise InvalidCommand(
                f"a result status must be succeeded, failed, skipped or cancelled, not {status!r}"
            )
        if usage is not None:
            self._record_usage(task_id, usage, now)
        finished: dict[str, Any] = {
            "reported_status": status.lower(),
            "result": result,
            "keep_result": result is None,
            "metadata": metadata,
            "artifacts": artifacts,
            "duration_ms": duration_ms,
        }
        if normalised == "succeeded":
            outcome = result if result is not None else node.result
            self._succeed(task_id, outcome, finished, now)
        elif normalised == "failed":
            failure = error or {"code": "node_failed", "message": f"node {task_id} failed"}
            self._fail(task_id, failure, now, finished)
        else:
            self._cancel_with_dependents(task_id, f"worker reported node {task_id} cancelled", now)
        self._settle(now)
        return self.nodes[task_id].status

    def record_command_error(
        self, *, task_id: str | None, dispatch_id: str | None, message: str, now: datetime
    ) -> str:
        """A worker's command error [1440]: the node named, else the last dispatched, fails."""
        self._ensure_not_terminal()
        target = task_id or self.last_dispatched
        if target is None:
            raise LifecycleConflict(f"run {self.id} has no dispatched node to fail")
        node = self.node(target)
        if node.final or not node.in_flight:
            raise LifecycleConflict(
                f"node {target} is {node.status}, not running", status=node.status
            )
        if dispatch_id is not None:
            self._dispatched_node(target, dispatch_id)
        self._fail(target, {"code": "command_error", "message": message}, now, {})
        self._settle(now)
        return self.nodes[target].status

    def record_worker_event(
        self,
        *,
        task_id: str,
        kind: str,
        worker_id: str | None,
        detail: str | None,
        outcome: str | None,
        data: dict[str, Any],
        now: datetime,
    ) -> None:
        """Seed 003's worker lifecycle on a dispatched node."""
        self._ensure_not_terminal()
        node = self.node(task_id)
        if not node.in_flight:
            raise LifecycleConflict(
                f"node {task_id} is {node.status}, not running", status=node.status
            )
        worker = worker_id or node.worker_id
        if kind == "launched":
            self._worker_launched(
                task_id=task_id, worker_id=worker, detail=detail, data=data, timestamp=now
            )
        elif kind == "launch_failed":
            self._launch_failed(task_id, worker, detail or "worker launch failed", data, now)
        elif kind == "update":
            self._worker_updated(
                task_id=task_id, worker_id=worker, detail=detail, data=data, timestamp=now
            )
        elif kind == "finished":
            if not outcome:
                raise InvalidCommand("a finished worker needs an outcome")
            self._worker_finished(
                task_id=task_id,
                worker_id=worker,
                detail=detail,
                data=data,
                outcome=outcome,
                timestamp=now,
            )
            if outcome != "succeeded":  # the worker ended without a result: the node fails
                message = detail or f"worker finished with outcome {outcome}"
                self._fail(task_id, {"code": f"worker_{outcome}", "message": message}, now, {})
        elif kind == "aborted":
            self._worker_aborted(
                task_id=task_id, worker_id=worker, detail=detail, data=data, timestamp=now
            )
            failure = {"code": "worker_aborted", "message": detail or "worker aborted"}
            self._fail(task_id, failure, now, {})
        else:
            raise InvalidCommand(
                f"unknown worker event {kind!r}; expected one of {', '.join(WORKER_EVENTS)}"
            )
        self._settle(now)

    def time_out_launch(self, *, task_id: str, timeout: timedelta, now: datetime) -> bool:
        """A worker acknowledged but never reported its launch: requeue (seed 003)."""
        node = self.nodes.get(task_id)
        if node is None or self.terminal or not node.in_flight or node.pending_ack:
            return False
        if node.worker_status != "launching" or node.acknowledged_at is None:
            return False
        if node.acknowledged_at + timeout > now:
            return False
        detail = LAUNCH_TIMEOUT_DETAIL.format(duration=rust_duration(timeout))
        self._launch_failed(task_id, node.worker_id, detail, {"timed_out": True}, now)
        self._settle(now)
        return True

    def link_thread(self, *, task_id: str, thread_id: str, now: datetime) -> None:
        self.node(task_id)
        self._thread_linked(task_id=task_id, thread_id=thread_id, timestamp=now)

    # commands: gates ---------------------------------------------------------

    def request_gate(
        self, *, task_id: str, title: str | None, instructions: str | None, now: datetime
    ) -> None:
        """An executor asks for approval on a node (run → awaiting_approval)."""
        self._ensure_not_terminal()
        node = self.node(task_id)
        if node.final:
            raise LifecycleConflict(f"node {task_id} is already {node.status}", status=node.status)
        if task_id in self.gates:
            raise LifecycleConflict(f"node {task_id} already awaits approval")
        self._gate_requested(
            task_id=task_id,
            title=title,
            instructions=instructions,
            requested_by="executor",
            timestamp=now,
        )

    def decide_gate(
        self, *, task_id: str, decision: str, reason: str | None, actor: str, now: datetime
    ) -> None:
        self._ensure_not_terminal()
        gate = self.gates.get(task_id)
        if gate is None:
            raise NotFound(f"no pending gate for node {task_id}", node_id=task_id)
        if decision not in GATE_DECISIONS:
            raise InvalidCommand(
                f"a gate decision must be approve, deny or rework, not {decision!r}"
            )
        requeued: list[str] = []
        if decision == "rework":
            spec = self.plan.nodes[task_id]
            requeued = list(spec.dependencies) if spec.is_gate and spec.dependencies else [task_id]
        remaining = [t for t in self.gate_queue if t != task_id]
        run_status = self.status
        if run_status == "awaiting_approval" and not remaining:
            run_status = self._rolled_up_active_status(after_requeue=requeued)
        self._gate_decided(
            task_id=task_id,
            decision=decision,
            reason=reason,
            actor=actor,
            requeued=requeued,
            run_status=run_status,
            timestamp=now,
        )
        if decision == "deny":
            self._run_blocked(
                reason=reason, detail=f"approval gate {task_id} was denied", timestamp=now
            )
            return
        self._settle(now)

    def mark_gate_stale(self, *, task_id: str, stale_after: timedelta, now: datetime) -> bool:
        """Stale gate policy [1192]: marked once, the status stays awaiting_approval."""
        gate = self.gates.get(task_id)
        if gate is None or gate.metadata.get("stale") or self.terminal:
            return False
        if gate.requested_at + stale_after > now:
            return False
        stale_after_ms = int(stale_after.total_seconds() * 1000)
        metadata = {
            "stale": True,
            "stale_policy": STALE_GATE_POLICY,
            "stale_after_ms": stale_after_ms,
            "stale_marked_at_ms": as_ms(now),
            "requested_at_ms": as_ms(gate.requested_at),
        }
        detail = STALE_GATE_DETAIL.format(node_id=task_id, seconds=stale_after_ms // 1000)
        self._gate_marked_stale(task_id=task_id, detail=detail, metadata=metadata, timestamp=now)
        return True

    # commands: run lifecycle -------------------------------------------------

    def pause(self, *, reason: str | None, now: datetime) -> None:
        self._ensure_not_terminal()
        if self.status in ("pausing", "paused"):
            raise LifecycleConflict(f"run {self.id} is already {self.status}", status=self.status)
        self._pause_requested(reason=reason, timestamp=now)
        self._settle(now)

    def resume(self, *, reason: str | None, now: datetime) -> None:
        self._ensure_not_terminal()
        if self.status != "paused":
            raise LifecycleConflict(
                f"run {self.id} is {self.status}; only a paused run can resume", status=self.status
            )
        self._resumed(reason=reason, requeued=self._needs_repair(), timestamp=now)
        self._settle(now)

    def cancel(self, *, reason: str | None, now: datetime) -> None:
        self._ensure_not_terminal()
        self._cancel_everything("run cancelled", now)
        self._run_cancelled(reason=reason, timestamp=now)

    def block(self, *, reason: str | None, now: datetime) -> None:
        self._ensure_not_terminal()
        self._run_blocked(reason=reason, detail=reason or "blocked by operator", timestamp=now)

    def stale_reap(self, *, detail: str, now: datetime) -> None:
        """Pause a run whose provider went quiet; its running nodes need repair."""
        self._ensure_not_terminal()
        if self.status not in ("queued", "running", "pausing"):
            raise LifecycleConflict(
                f"run {self.id} is {self.status}; only an active run is reaped", status=self.status
            )
        self._run_paused(
            reason=detail,
            stop_kind="stale_reaped",
            detail=detail,
            lifecycle=STALE_REAP_ENTRY,
            repair=self.in_flight(),
            timestamp=now,
        )

    def reap_if_stale(self, *, stale_after: timedelta, now: datetime) -> bool:
        """Stale-run policy: a running run with no event for ``stale_after`` is reaped."""
        if self.status != "running" or self.modified_on + stale_after > now:
            return False
        seconds = int(stale_after.total_seconds())
        self.stale_reap(detail=STALE_REAP_DETAIL.format(seconds=seconds), now=now)
        return True

    def guardrail_stop(self, *, reason: str | None, now: datetime) -> None:
        self._ensure_not_terminal()
        if self.status not in ("queued", "running", "pausing", "awaiting_approval"):
            raise LifecycleConflict(f"run {self.id} is {self.status}", status=self.status)
        detail = reason or "automation run stopped by a guardrail"
        self._run_paused(
            reason=detail,
            stop_kind="guardrail_stopped",
            detail=detail,
            lifecycle="run_paused_guardrail_stopped",
            repair=self.in_flight(),
            timestamp=now,
        )

    def approve_quota_override(
        self,
        *,
        override_id: str,
        agent_ids: list[str],
        reason: str | None,
        actor: str,
        now: datetime,
    ) -> bool:
        """Record the override; a guardrail-stopped run resumes at once [1369]. Whether it did."""
        self._ensure_not_terminal()
        if override_id in self.quota_overrides:
            raise LifecycleConflict(f"quota override {override_id} is already recorded")
        self._quota_override_approved(
            override_id=override_id, reason=reason, actor=actor, timestamp=now
        )
        if self.status != "paused" or self.stop_kind != "guardrail_stopped":
            return False
        metadata = {
            "agent_ids": list(agent_ids),
            "stop_kind": "guardrail_stopped",
            "quota_override_id": override_id,
        }
        self._auto_resumed(
            requeued=self._needs_repair(),
            metadata=metadata,
            detail=AUTO_RESUME_AFTER_GUARDRAIL_OVERRIDE,
            timestamp=now,
        )
        self._settle(now)
        return True

    def auto_resume(self, *, window: timedelta, max_resumes: int, now: datetime) -> bool:
        """Bounded auto-resume of a stale-reaped run [1266]; whether it resumed."""
        if self.status != "paused" or self.stop_kind != "stale_reaped" or self.stopped_at is None:
            return False
        if self.stopped_at + window < now or self.auto_resume_count >= max_resumes:
            return False
        repairable = [
            t for t in self._needs_repair() if self.nodes[t].attempts < self.max_attempts_of(t)
        ]
        if not repairable:
            return False
        metadata = {
            "auto_resume_window_ms": int(window.total_seconds() * 1000),
            "stale_reaped_at_ms": as_ms(self.stopped_at),
        }
        self._auto_resumed(
            requeued=self._needs_repair(),
            metadata=metadata,
            detail=AUTO_RESUME_AFTER_STALE_REAP,
            timestamp=now,
        )
        self._settle(now)
        return True

    def attach_session(self, *, session_id: str, now: datetime) -> bool:
        """Attach (deduplicated); it becomes ``latest_session_id``. False: nothing changed."""
        self._ensure_not_terminal()
        if session_id in self.sessions and self.latest_session_id == session_id:
            return False
        self._session_attached(session_id=session_id, timestamp=now)
        return True

    def detach_session(self, *, session_id: str, now: datetime) -> bool:
        """Detach; ``latest_session_id`` is kept. False: it was not attached."""
        self._ensure_not_terminal()
        if session_id not in self.sessions:
            return False
        self._session_detached(session_id=session_id, timestamp=now)
        return True

    def attach_instance(self, *, instance_id: str, now: datetime) -> bool:
        self._ensure_not_terminal()
        if instance_id in self.instances:
            return False
        self._instance_attached(instance_id=instance_id, timestamp=now)
        return True

    def detach_instance(self, *, instance_id: str, now: datetime) -> bool:
        self._ensure_not_terminal()
        if instance_id not in self.instances:
            return False
        self._instance_detached(instance_id=instance_id, timestamp=now)
        return True

    # commands: recovery (policies) -------------------------------------------

    def recover_for_executor(self, *, executor_id: str, shutdown: bool, now: datetime) -> bool:
        """Seed 002's restart/shutdown recovery of a run ``executor_id`` drives."""
        if self.executor_id != executor_id:
            return False
        if self.status == "running":
            kind = "shutdown" if shutdown else "server_restart"
            detail = SHUTDOWN_DETAIL if shutdown else RESTART_DETAIL
            self._cancel_everything(detail, now)
            self._run_failed(
                error={"code": kind, "message": detail},
                stop_kind=kind,
                stop_reason=detail,
                detail=detail,
                lifecycle="run_failed_shutdown" if shutdown else "run_failed_server_restart",
                timestamp=now,
            )
            return True
        if self.status == "pausing" and not shutdown:  # seed 002 settles pausing on restart only
            self._run_paused(
                reason=self.pause_reason or RESTART_PAUSE_REASON,
                stop_kind=self.stop_kind,
                detail=RESTART_PAUSE_REASON,
                lifecycle="run_pausing_settled_on_restart",
                repair=[],
                timestamp=now,
            )
            return True
        return False

    def recover_for_worker(self, *, worker_id: str, now: datetime) -> list[str]:
        """A worker is gone: each node it acknowledged fails (then retried or final)."""
        if self.terminal:
            return []
        lost = [
            t
            for t, n in self.nodes.items()
            if n.in_flight and n.worker_id == worker_id and not n.pending_ack and n.dispatch_id
        ]
        for task_id in lost:
            if self.terminal:
                break
            if self.nodes[task_id].final:
                continue
            self._fail(task_id, {"code": "worker_lost", "message": WORKER_LOST_MESSAGE}, now, {})
        if lost:
            self._settle(now)
        return lost

    # guards and helpers ------------------------------------------------------

    def _ensure_not_terminal(self) -> None:
        if self.terminal:
            raise LifecycleConflict(
                f"run {self.id} is {self.status}; a finished run takes no more commands",
                status=self.status,
            )

    def _dispatched_node(self, task_id: str, dispatch_id: str) -> NodeState:
        self._ensure_not_terminal()
        node = self.node(task_id)
        if node.final:
            raise LifecycleConflict(f"node {task_id} is already {node.status}", status=node.status)
        if not node.in_flight or node.dispatch_id is None:
            raise LifecycleConflict(
                f"node {task_id} is {node.status}, not dispatched", status=node.status
            )
        if node.dispatch_id != dispatch_id:
            raise LifecycleConflict(
                f"dispatch id {dispatch_id} does not match node {task_id}'s current dispatch",
                node_id=task_id,
            )
        return node

    def _is_open_frame(self, task_id: str) -> bool:
        frame = self.plan.nodes[task_id].opens_frame
        return frame is not None and frame in self.frame_stack

    def _unfinished(self) -> list[str]:
        return [t for t, n in self.nodes.items() if not n.final]

    def _needs_repair(self) -> list[str]:
        return [t for t, n in self.nodes.items() if n.needs_repair and not n.final]

    def _rolled_up_active_status(self, after_requeue: list[str]) -> str:
        statuses = {"queued" if t in after_requeue else n.status for t, n in self.nodes.items()}
        return "queued" if statuses <= {"queued"} else "running"

    def _record_usage(self, task_id: str, usage: NodeUsage, now: datetime) -> None:
        self._usage_recorded(
            task_id=task_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=usage.cost_usd,
            model=usage.model,
            timestamp=now,
        )

    def _bindings(self, task_id: str, result: Any) -> list[dict[str, Any]]:
        """Values the node's edges carry into its dependents' parameters [1997]."""
        node = self.nodes[task_id]
        copied = []
        for binding in self.plan.nodes[task_id].bindings:
            source = node.parameters if binding.source_root == "parameters" else result
            value = get_path(source, binding.source_path)
            if value is MISSING or binding.target_task_id not in self.nodes:
                continue
            if not binding.target_path and not isinstance(value, dict):
                continue
            copied.append(
                {"task_id": binding.target_task_id, "path": binding.target_path, "value": value}
            )
        return copied

    def _succeed(self, task_id: str, result: Any, finished: dict[str, Any], now: datetime) -> None:
        self._node_succeeded(
            task_id=task_id, bindings=self._bindings(task_id, result), timestamp=now, **finished
        )

    def _fail(
        self, task_id: str, error: dict[str, Any], now: datetime, finished: dict[str, Any]
    ) -> None:
        node = self.nodes[task_id]
        attempts = node.attempts + 1
        spec = self.plan.nodes[task_id]
        retry = not spec.is_container and attempts < self.max_attempts_of(task_id)
        self._node_failed(
            task_id=task_id,
            attempts=attempts,
            retry=retry,
            error=error,
            timestamp=now,
            **{**CONTAINER_FINISH, **finished},  # the event needs every field of a result
        )
        if not retry:
            self._propagate_failure(task_id, error, now)

    def _propagate_failure(self, task_id: str, error: dict[str, Any], now: datetime) -> None:
        """A final failure closes its frame (container fails) or, at the top, fails the run."""
        frame_id = self.plan.nodes[task_id].frame_id
        if frame_id is None:
            message = error.get("message") or "failed"
            self._cancel_everything(f"run failed: node {task_id} failed", now)
            self._run_failed(
                error=error,
                stop_kind=None,
                stop_reason=None,
                detail=f"node {task_id} failed: {message}",
                lifecycle="run_failed",
                timestamp=now,
            )
            return
        container = self._close_frame(frame_id, "failed", error, now)
        self._node_failed(
            task_id=container,
            attempts=self.nodes[container].attempts,
            retry=False,
            error=error,
            timestamp=now,
            **CONTAINER_FINISH,
        )
        self._propagate_failure(container, error, now)

    def _close_frame(
        self, frame_id: str, status: str, error: dict[str, Any] | None, now: datetime
    ) -> str:
        """Close ``frame_id`` (and any frame opened inside it); the container's task id."""
        while frame_id in self.frame_stack and self.frame_stack[-1] != frame_id:
            inner = self.frame_stack[-1]
            self._cancel_frame_nodes(inner, now)
            self._frame_closed(
                frame_id=inner,
                container_task_id=self.plan.frames[inner].container_task_id,
                status="cancelled",
                error=None,
                timestamp=now,
            )
        if status != "succeeded":
            self._cancel_frame_nodes(frame_id, now)
        container = self.plan.frames[frame_id].container_task_id
        self._frame_closed(
            frame_id=frame_id,
            container_task_id=container,
            status=status,
            error=error,
            timestamp=now,
        )
        return container

    def _cancel_frame_nodes(self, frame_id: str, now: datetime, reason: str | None = None) -> None:
        for task_id in self.plan.frames[frame_id].task_ids:
            if not self.nodes[task_id].final:
                self._node_cancelled(
                    task_id=task_id, reason=reason or f"frame {frame_id} failed", timestamp=now
                )

    def _cancel_everything(self, reason: str, now: datetime) -> None:
        """Close every open frame (innermost first), then cancel every node not yet final."""
        while self.frame_stack:
            frame_id = self.frame_stack[-1]
            self._cancel_frame_nodes(frame_id, now, reason)
            self._frame_closed(
                frame_id=frame_id,
                container_task_id=self.plan.frames[frame_id].container_task_id,
                status="cancelled",
                error=None,
                timestamp=now,
            )
        for task_id in self._unfinished():
            self._node_cancelled(task_id=task_id, reason=reason, timestamp=now)

    def _cancel_with_dependents(self, task_id: str, reason: str, now: datetime) -> None:
        self._node_cancelled(task_id=task_id, reason=reason, timestamp=now)
        pending = list(self.plan.nodes[task_id].dependents)
        while pending:
            dependent = pending.pop(0)
            if self.nodes[dependent].final:
                continue
            self._node_cancelled(
                task_id=dependent, reason=f"upstream node {task_id} was cancelled", timestamp=now
            )
            pending.extend(self.plan.nodes[dependent].dependents)

    def _launch_failed(
        self, task_id: str, worker_id: str | None, detail: str, data: dict[str, Any], now: datetime
    ) -> None:
        self._worker_launch_failed(
            task_id=task_id,
            worker_id=worker_id,
            detail=detail,
            data=data,
            attempts=self.nodes[task_id].attempts + 1,
            requeued=True,
            timestamp=now,
        )

    def _settle(self, now: datetime) -> None:
        """Close finished frames, open ready containers, ask ready gates, then roll up."""
        while not self.terminal and self._settle_step(now):
            pass
        if self.terminal:
            return
        if self.status == "pausing" and not self.in_flight():
            self._run_paused(
                reason=self.pause_reason,
                stop_kind=None,
                detail=self.pause_reason or "automation run paused",
                lifecycle="run_paused",
                repair=[],
                timestamp=now,
            )
        if self.status in ACTIVE_RUN_STATUSES and all(
            self.nodes[t].final for t in self.plan.root_task_ids
        ):
            if all(self.nodes[t].status == "cancelled" for t in self.plan.root_task_ids):
                self._run_cancelled(reason="every node was cancelled", timestamp=now)
            else:
                self._run_succeeded(timestamp=now)

    def _settle_step(self, now: datetime) -> bool:
        if self.frame_stack:
            frame_id = self.frame_stack[-1]
            if all(self.nodes[t].final for t in self.plan.frames[frame_id].task_ids):
                container = self._close_frame(frame_id, "succeeded", None, now)
                self._succeed(container, self.nodes[container].result, CONTAINER_FINISH, now)
                return True
        for task_id in self.scope():
            spec = self.plan.nodes[task_id]
            if not self.is_ready(task_id):
                continue
            if spec.is_container and spec.opens_frame is not None:
                self._frame_opened(
                    frame_id=spec.opens_frame, container_task_id=task_id, timestamp=now
                )
                return True
            if spec.is_gate and task_id not in self.gates:
                self._gate_requested(
                    task_id=task_id,
                    title=None,
                    instructions=None,
                    requested_by="workflow",
                    timestamp=now,
                )
                return True
        return False
