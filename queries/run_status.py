"""Seed 002's ``status.json`` document for a run (``persist_automation_v2_run_status_json``).

The seed's keys are all present (``null`` when empty): ``run_id, automation_id,
status, detail, completed_nodes, pending_nodes, blocked_nodes, node_attempts,
last_failure, learning_summary, updated_at_ms``, with the seed's checkpoint
mapped from the run's nodes. Extra keys say more about the run (``seq``, stop
fields, the awaiting gate, times, tokens). Everything is a pure function of the
folded run, so the document served over HTTP and the file a projection writes
agree, and a replay writes the same bytes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from domain.run import Run
from domain.run_state import NodeState

DETAIL_NODE = re.compile(r"node `([^`]*)`")


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def dispatch_count(node: NodeState) -> int:
    """How many times the node was dispatched (seed 002's ``node_attempts``)."""
    return node.dispatches


def completed_nodes(run: Run) -> list[str]:
    """Succeeded nodes in the order they succeeded (workflow order breaks ties)."""
    order = {task_id: index for index, task_id in enumerate(run.nodes)}
    done = [(n.finished_at, order[t], t) for t, n in run.nodes.items() if n.status == "succeeded"]
    return [t for _, _, t in sorted(done, key=lambda d: (_ms(d[0]) or 0, d[1]))]


def pending_nodes(run: Run) -> list[str]:
    """Nodes not yet final (queued or running), in workflow order."""
    return [task_id for task_id, node in run.nodes.items() if not node.final]


def _descendants(run: Run, task_id: str) -> list[str]:
    found: list[str] = []
    pending = list(run.plan.nodes[task_id].dependents)
    while pending:
        current = pending.pop(0)
        if current not in found:
            found.append(current)
            pending.extend(run.plan.nodes[current].dependents)
    return found


def blocked_nodes(run: Run) -> list[str]:
    """Nodes a gate holds back: while awaiting approval, the gates' descendants not yet
    final; after a deny (run blocked), the denied gate and its descendants."""
    held: list[str] = []
    if run.status == "awaiting_approval":
        for gate_id in run.gate_queue:
            held.extend(t for t in _descendants(run, gate_id) if not run.nodes[t].final)
    denied = denied_gate(run)
    if denied is not None:
        held.extend([denied, *_descendants(run, denied)])
    order = {task_id: index for index, task_id in enumerate(run.nodes)}
    return sorted(set(held), key=order.__getitem__)


def denied_gate(run: Run) -> str | None:
    """The gate whose deny blocked the run, if that is how it ended."""
    if run.status != "blocked":
        return None
    denied = [g["node_id"] for g in run.gate_history if g.get("decision") == "deny"]
    return str(denied[-1]) if denied else None


def node_attempts(run: Run) -> dict[str, int]:
    """Dispatches per node, for nodes dispatched at least once (sorted by task id)."""
    counts = {task_id: dispatch_count(node) for task_id, node in sorted(run.nodes.items())}
    return {task_id: count for task_id, count in counts.items() if count > 0}


def last_failure(run: Run) -> dict[str, Any] | None:
    """The first final node failure ``{node_id, reason, failed_at_ms}`` (a frame's
    container fails with its inner node's error, so the inner node is named)."""
    order = {task_id: index for index, task_id in enumerate(run.nodes)}
    failed = [
        (_ms(n.finished_at) or 0, run.plan.nodes[t].is_container, order[t], t)
        for t, n in run.nodes.items()
        if n.status == "failed"
    ]
    if not failed:
        return None
    failed_at_ms, _, _, task_id = min(failed)
    error = run.nodes[task_id].error or {}
    return {
        "node_id": task_id,
        "reason": error.get("message") or f"node {task_id} failed",
        "failed_at_ms": failed_at_ms,
    }


def refreshed_detail(run: Run) -> str | None:
    """Seed 002's ``refresh_stale_running_detail`` [962]: a running run whose detail names
    a node that has since completed names the node now running instead."""
    detail = run.detail
    if run.status != "running" or detail is None:
        return detail
    match = DETAIL_NODE.search(detail)
    named = match.group(1).strip() if match else ""
    if not named or named not in run.nodes or run.nodes[named].status != "succeeded":
        return detail
    blocked = set(blocked_nodes(run))
    for task_id in pending_nodes(run):
        attempts = dispatch_count(run.nodes[task_id])
        if task_id not in blocked and attempts > 0:
            return f"running node `{task_id}` attempt {attempts}"
    return f"completed node `{named}`; continuing"


def _awaiting_gate(run: Run) -> dict[str, Any] | None:
    gate = run.awaiting_gate
    if gate is None:
        return None
    return {
        "node_id": gate.task_id,
        "requested_at_ms": _ms(gate.requested_at),
        "title": gate.title,
        "instructions": gate.instructions,
        "metadata": dict(gate.metadata),
    }


def status_document(run: Run) -> dict[str, Any]:
    """Seed 002's ``status.json`` for ``run`` (its keys, plus extras), as after its last event."""
    usage = run.usage
    return {
        "run_id": run.id,
        "automation_id": run.automation_id,
        "status": run.status,
        "detail": refreshed_detail(run),
        "completed_nodes": completed_nodes(run),
        "pending_nodes": pending_nodes(run),
        "blocked_nodes": blocked_nodes(run),
        "node_attempts": node_attempts(run),
        "last_failure": last_failure(run),
        "learning_summary": None,
        "updated_at_ms": _ms(run.updated_at),
        "seq": run.version,
        "client_id": run.client_id,
        "executor_id": run.executor_id,
        "definition_hash": run.definition_hash,
        "stop_kind": run.stop_kind,
        "stop_reason": run.stop_reason,
        "pause_reason": run.pause_reason,
        "awaiting_gate": _awaiting_gate(run),
        "created_at_ms": _ms(run.created_at),
        "started_at_ms": _ms(run.started_at),
        "finished_at_ms": _ms(run.finished_at),
        "latest_session_id": run.latest_session_id,
        "total_tokens": usage.total_tokens,
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "estimated_cost_usd": usage.cost_usd,
    }
