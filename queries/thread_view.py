"""The thread view: the shape ``GET /v1/threads/{id}`` and ``/at/{seq}`` answer with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.thread import Approval, Item, Thread, Turn, Usage


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def usage_view(usage: Usage) -> dict[str, Any]:
    """Token counts and cost; ``total_tokens`` = input + output + reasoning + reasoning replay."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "reasoning_replay_tokens": usage.reasoning_replay_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": usage.cost_usd,
    }


def _item_view(item: Item) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "kind": item.kind,
        "tool_name": item.tool_name,
        "status": item.status,
        "payload": item.payload,
    }


def _turn_view(thread: Thread, turn: Turn) -> dict[str, Any]:
    usage = None if turn.usage is None else {**usage_view(turn.usage), "model": turn.usage.model}
    return {
        "turn_id": turn.turn_id,
        "status": turn.status,
        "input": turn.input,
        "executor_id": turn.executor_id,
        "auto_approve": turn.auto_approve,
        "trust_mode": turn.trust_mode,
        "started_at": _time(turn.started_at),
        "ended_at": _time(turn.ended_at),
        "error": turn.error,
        "duration_ms": turn.duration_ms,
        "usage": usage,
        "items": [_item_view(thread.items[i]) for i in turn.item_ids],
    }


def _pending_approval_view(approval: Approval) -> dict[str, Any]:
    return {
        "approval_id": approval.approval_id,
        "turn_id": approval.turn_id,
        "item_id": approval.item_id,
        "approval_key": approval.approval_key,
        "requires_full_access": approval.requires_full_access,
        "requested_at": _time(approval.requested_at),
    }


def _approval_view(approval: Approval) -> dict[str, Any]:
    return {
        **_pending_approval_view(approval),
        "status": approval.decision or "pending",
        "decision": approval.decision,
        "actor": approval.actor,
        "remember_for_session": approval.remember_for_session,
        "decided_at": _time(approval.decided_at),
    }


def thread_view(thread: Thread) -> dict[str, Any]:
    """Turns in start order with their items and usage; approvals in request order; totals."""
    return {
        "thread_id": thread.id,
        "status": thread.status,
        "seq": thread.version,
        "title": thread.title,
        "workspace": thread.workspace,
        "metadata": thread.metadata,
        "active_turn_id": thread.active_turn_id,
        "created_at": _time(thread.created_on),
        "updated_at": _time(thread.modified_on),
        "turns": [_turn_view(thread, turn) for turn in thread.turns.values()],
        "pending_approvals": [_pending_approval_view(a) for a in thread.pending_approvals],
        "approvals": [_approval_view(a) for a in thread.approvals.values()],
        "usage": usage_view(thread.usage),
    }
