"""Events of the Thread aggregate (past tense). Each names its turn and item."""

from __future__ import annotations

from typing import Any

from domain.base import LedgerAggregate


class ThreadStarted(LedgerAggregate.Created):
    workspace: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = {}


class TurnStarted(LedgerAggregate.Event):
    turn_id: str
    input: str | None = None
    executor_id: str | None = None
    auto_approve: bool = False
    trust_mode: bool = False


class ItemAdded(LedgerAggregate.Event):
    turn_id: str
    item_id: str
    kind: str
    tool_name: str | None = None
    status: str = "queued"
    payload: dict[str, Any] = {}


class ItemStatusChanged(LedgerAggregate.Event):
    turn_id: str
    item_id: str
    status: str
    previous_status: str


class TurnEnded(LedgerAggregate.Event):
    """Common shape of the three ways a turn ends."""

    turn_id: str
    error: str | None = None
    duration_ms: int | None = None
    interrupted_item_ids: list[str] = []


class TurnCompleted(TurnEnded):
    pass


class TurnFailed(TurnEnded):
    pass


class TurnInterrupted(TurnEnded):
    pass


THREAD_EVENTS: tuple[type[LedgerAggregate.Event], ...] = (
    ThreadStarted,
    TurnStarted,
    ItemAdded,
    ItemStatusChanged,
    TurnCompleted,
    TurnFailed,
    TurnInterrupted,
)
