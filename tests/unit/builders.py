"""Small builders shared by the unit tests: a fixed clock and threads in known states."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.thread import Thread

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float = 0, *, ms: int = 0) -> datetime:
    """A moment ``seconds`` (plus ``ms`` milliseconds) after the fixed start of every test."""
    return T0 + timedelta(seconds=seconds, milliseconds=ms)


def new_thread(thread_id: str = "thr_1", *, now: datetime = T0) -> Thread:
    return Thread(
        id=thread_id,
        workspace=None,
        title="demo",
        metadata={"origin": "test"},
        timestamp=now,
    )


def start_turn(thread: Thread, turn_id: str = "t1", *, now: datetime | None = None) -> None:
    thread.start_turn(
        turn_id=turn_id,
        input="fix the bug",
        executor_id="rt-1",
        auto_approve=False,
        trust_mode=False,
        now=now or at(1),
    )


def add_item(
    thread: Thread,
    item_id: str = "i1",
    *,
    turn_id: str = "t1",
    tool_name: str | None = "exec_shell",
    kind: str | None = None,
    status: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    return thread.add_item(
        turn_id=turn_id,
        item_id=item_id,
        tool_name=tool_name,
        kind=kind,
        status=status,
        payload=payload if payload is not None else {},
        now=now or at(2),
    )


def observable(thread: Thread) -> dict[str, Any]:
    """Everything a reader can see of a thread, as plain values (a deep snapshot)."""
    return {
        "id": thread.id,
        "version": thread.version,
        "created_on": thread.created_on,
        "modified_on": thread.modified_on,
        "status": thread.status,
        "workspace": thread.workspace,
        "title": thread.title,
        "metadata": dict(thread.metadata),
        "archived": thread.archived,
        "active_turn_id": thread.active_turn_id,
        "turns": {turn_id: asdict(turn) for turn_id, turn in thread.turns.items()},
        "items": {item_id: asdict(item) for item_id, item in thread.items.items()},
    }
