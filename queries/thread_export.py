"""The thread export (``GET /v1/threads/{id}/export``): the conversation as messages.

Per turn, in order: a ``user`` message for the turn's input (when it has one), then
per item in order an ``assistant`` message for each ``message`` item and a ``tool``
message, with its status, for each tool item. Other items (reasoning, …) are left out.
"""

from __future__ import annotations

import json
from typing import Any

from domain.thread import Item, Thread

TOOL_KINDS = frozenset({"command_execution", "file_change", "tool_call"})


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _message_content(item: Item) -> str:
    """The message text: ``payload.text``, else ``payload.content``, else the payload as JSON."""
    for key in ("text", "content"):
        if isinstance(item.payload.get(key), str):
            return str(item.payload[key])
    return _as_text(item.payload)


def _tool_content(item: Item) -> str:
    """The tool's output (JSON unless it is a string), or empty when it has none."""
    return _as_text(item.payload["output"]) if "output" in item.payload else ""


def _item_message(item: Item) -> dict[str, Any] | None:
    if item.kind == "message":
        return {
            "role": "assistant",
            "turn_id": item.turn_id,
            "item_id": item.item_id,
            "content": _message_content(item),
        }
    if item.kind in TOOL_KINDS:
        return {
            "role": "tool",
            "turn_id": item.turn_id,
            "item_id": item.item_id,
            "content": _tool_content(item),
            "status": item.status,
            "tool_name": item.tool_name,
        }
    return None


def thread_export(thread: Thread) -> dict[str, Any]:
    """The thread's messages in order, and its total tokens over every turn."""
    messages: list[dict[str, Any]] = []
    for turn in thread.turns.values():
        if turn.input:
            messages.append(
                {"role": "user", "turn_id": turn.turn_id, "item_id": None, "content": turn.input}
            )
        for item_id in turn.item_ids:
            message = _item_message(thread.items[item_id])
            if message is not None:
                messages.append(message)
    return {
        "thread_id": thread.id,
        "messages": messages,
        "total_tokens": thread.usage.total_tokens,
    }
