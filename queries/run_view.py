"""The run view: the shape ``GET /v1/runs/{id}`` and ``/at/{seq}`` answer with, and the diff
between two seqs of one run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from domain.run import Run
from domain.run_record import as_ms
from domain.run_state import Gate, NodeState, NodeUsage


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def usage_view(usage: NodeUsage) -> dict[str, Any]:
    """Tokens and cost, with seed 002's names beside ours."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": usage.cost_usd,
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "estimated_cost_usd": usage.cost_usd,
    }


def node_view(run: Run, node: NodeState) -> dict[str, Any]:
    spec = run.plan.nodes[node.task_id]
    return {
        "node_id": node.task_id,
        "local_id": spec.node_id,
        "frame_id": spec.frame_id,
        "type": spec.type,
        "status": node.status,
        "reported_status": node.reported_status,
        "attempts": node.attempts,
        "dispatches": node.dispatches,
        "pending_ack": node.pending_ack,
        "needs_repair": node.needs_repair,
        "dispatch_id": node.dispatch_id,
        "worker_id": node.worker_id,
        "ack_deadline": _time(node.ack_deadline),
        "revision": node.revision,
        "started_at": _time(node.started_at),
        "finished_at": _time(node.finished_at),
        "parameters": node.parameters,
        "result": node.result,
        "error": node.error,
        "metadata": node.metadata,
        "artifacts": node.artifacts,
        "duration_ms": node.duration_ms,
        "stage": node.stage,
        "progress": node.progress,
        "message": node.message,
        "metrics": node.metrics,
        "result_sequence": node.result_sequence,
        "chunk_sequence": node.chunk_sequence,
        "usage": None
        if node.usage is None
        else {**usage_view(node.usage), "model": node.usage.model},
        "thread_id": node.thread_id,
        "worker_status": node.worker_status,
        "worker_detail": node.worker_detail,
        "dependencies": run.plan.nodes[node.task_id].dependencies,
    }


def gate_view(run: Run, gate: Gate) -> dict[str, Any]:
    spec = run.plan.nodes[gate.task_id]
    return {
        "node_id": gate.task_id,
        "title": gate.title,
        "instructions": gate.instructions,
        "requested_by": gate.requested_by,
        "requested_at_ms": as_ms(gate.requested_at),
        "metadata": gate.metadata or None,
        "decisions": ["approve", "rework", "deny"],
        "upstream_node_ids": spec.dependencies,
    }


def run_view(run: Run) -> dict[str, Any]:
    gate = run.awaiting_gate
    return {
        "run_id": run.id,
        "status": run.status,
        "client_id": run.client_id,
        "executor_id": run.executor_id,
        "automation_id": run.automation_id,
        "workspace": run.workspace,
        "trigger": run.trigger,
        "max_attempts": run.max_attempts,
        "definition_hash": run.definition_hash,
        "seq": run.version,
        "created_at": _time(run.created_at),
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "updated_at": _time(run.updated_at),
        "detail": run.detail,
        "stop_kind": run.stop_kind,
        "stop_reason": run.stop_reason,
        "pause_reason": run.pause_reason,
        "error": run.error,
        "awaiting_gate": None if gate is None else gate_view(run, gate),
        "pending_gates": [gate_view(run, run.gates[t]) for t in run.gate_queue],
        "gate_history": run.gate_history,
        # as the JSON the snapshot stored it in, if it was never read since (domain.entry_log)
        "lifecycle_history": orjson.Fragment(run.lifecycle.json()),
        "frames": list(run.frame_stack),
        "revision": run.revision,
        "sessions": list(run.sessions),
        "latest_session_id": run.latest_session_id,
        "instances": list(run.instances),
        "usage": usage_view(run.usage),
        "nodes": {task_id: node_view(run, node) for task_id, node in run.nodes.items()},
    }


def _plain_view(run: Run) -> dict[str, Any]:
    """The run view with its lifecycle entries as values, to diff field by field."""
    return {**run_view(run), "lifecycle_history": list(run.lifecycle)}


def _changes(before: Any, after: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in after:
                out.append({"path": child, "op": "remove", "from": before[key]})
            elif key not in before:
                out.append({"path": child, "op": "add", "value": after[key]})
            else:
                _changes(before[key], after[key], child, out)
        return
    if isinstance(before, list) and isinstance(after, list) and before != after:
        shared = min(len(before), len(after))
        for index in range(shared):
            _changes(before[index], after[index], f"{path}/{index}", out)
        for index in range(shared, len(after)):
            out.append({"path": f"{path}/{index}", "op": "add", "value": after[index]})
        for index in range(len(before) - 1, shared - 1, -1):
            out.append({"path": f"{path}/{index}", "op": "remove", "from": before[index]})
        return
    if before != after:
        out.append({"path": path, "op": "replace", "from": before, "value": after})


def run_diff(
    before: Run | None, after: Run, events: list[dict[str, Any]], from_seq: int, to_seq: int
) -> dict[str, Any]:
    """What changed in the run's view between ``from_seq`` and ``to_seq`` (``from`` 0: before
    the run existed), and the events that changed it (JSON-pointer paths into the view)."""
    changes: list[dict[str, Any]] = []
    _changes({} if before is None else _plain_view(before), _plain_view(after), "", changes)
    return {
        "run_id": after.id,
        "from": from_seq,
        "to": to_seq,
        "status": {"from": None if before is None else before.status, "to": after.status},
        "changes": changes,
        "events": events,
    }
