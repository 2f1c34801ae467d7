"""The Thread aggregate: turns, items and their lifecycle (seed 000's thread manager).

Rules kept here:
- one active turn per thread; items only on the active turn;
- an item's kind comes from its tool name, else the kind given;
- items start ``queued`` unless a status is given; a final item status is final;
- a turn ends once, as completed, failed or interrupted, with ``duration_ms``;
  interrupting a turn interrupts its queued and in-progress items.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import event

from domain.base import LedgerAggregate
from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from domain.item_kind import kind_for_tool
from domain.thread_events import (
    ItemAdded,
    ItemStatusChanged,
    ThreadStarted,
    TurnCompleted,
    TurnEnded,
    TurnFailed,
    TurnInterrupted,
    TurnStarted,
)

ITEM_STATUSES = ("queued", "in_progress", "completed", "failed", "declined", "interrupted")
OPEN_ITEM_STATUSES = frozenset({"queued", "in_progress"})
TURN_END_EVENTS: dict[str, type[TurnEnded]] = {
    "completed": TurnCompleted,
    "failed": TurnFailed,
    "interrupted": TurnInterrupted,
}


@dataclass
class Item:
    item_id: str
    turn_id: str
    kind: str
    tool_name: str | None
    status: str
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass
class Turn:
    turn_id: str
    input: str | None
    executor_id: str | None
    auto_approve: bool
    trust_mode: bool
    started_at: datetime
    status: str = "in_progress"
    ended_at: datetime | None = None
    error: str | None = None
    duration_ms: int | None = None
    item_ids: list[str] = field(default_factory=list)


class Thread(LedgerAggregate):
    """One agent conversation: a sequence of turns, each with its items."""

    stream_type: ClassVar[str] = "thread"

    ThreadStarted = ThreadStarted
    TurnStarted = TurnStarted
    ItemAdded = ItemAdded
    ItemStatusChanged = ItemStatusChanged
    TurnCompleted = TurnCompleted
    TurnFailed = TurnFailed
    TurnInterrupted = TurnInterrupted

    @event(ThreadStarted)
    def __init__(
        self,
        id: str,
        workspace: str | None,
        title: str | None,
        metadata: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        self.workspace = workspace
        self.title = title
        self.metadata = deepcopy(metadata)
        self.archived = False
        self.active_turn_id: str | None = None
        self.turns: dict[str, Turn] = {}
        self.items: dict[str, Item] = {}

    # queries ---------------------------------------------------------------

    @property
    def thread_id(self) -> str:
        return self.id

    @property
    def status(self) -> str:
        if self.archived:
            return "archived"
        return "active" if self.active_turn_id is not None else "idle"

    def turn(self, turn_id: str) -> Turn:
        found = self.turns.get(turn_id)
        if found is None:
            raise NotFound(f"thread {self.id} has no turn {turn_id}", turn_id=turn_id)
        return found

    def item(self, turn_id: str, item_id: str) -> Item:
        turn = self.turn(turn_id)
        found = self.items.get(item_id)
        if found is None or found.turn_id != turn.turn_id:
            raise NotFound(f"turn {turn_id} has no item {item_id}", item_id=item_id)
        return found

    # commands --------------------------------------------------------------

    def start_turn(
        self,
        *,
        turn_id: str,
        input: str | None,
        executor_id: str | None,
        auto_approve: bool,
        trust_mode: bool,
        now: datetime,
    ) -> None:
        self._ensure_not_archived()
        self._ensure_no_active_turn()
        if turn_id in self.turns:
            raise LifecycleConflict(f"thread {self.id} already has a turn {turn_id}")
        self._turn_started(
            turn_id=turn_id,
            input=input,
            executor_id=executor_id,
            auto_approve=auto_approve,
            trust_mode=trust_mode,
            timestamp=now,
        )

    def add_item(
        self,
        *,
        turn_id: str,
        item_id: str,
        tool_name: str | None,
        kind: str | None,
        status: str | None,
        payload: dict[str, Any],
        now: datetime,
    ) -> str:
        """Add an item to the active turn; returns the kind it was given."""
        self._ensure_turn_is_active(self.turn(turn_id))
        if item_id in self.items:
            raise LifecycleConflict(f"thread {self.id} already has an item {item_id}")
        resolved_kind = kind_for_tool(tool_name) if tool_name else kind
        if not resolved_kind:
            raise InvalidCommand("an item needs a tool_name or a kind")
        initial = status or "queued"
        if initial not in ITEM_STATUSES or initial == "interrupted":
            raise InvalidCommand(f"an item cannot start as {initial!r}")
        self._item_added(
            turn_id=turn_id,
            item_id=item_id,
            kind=resolved_kind,
            tool_name=tool_name,
            status=initial,
            payload=payload,
            timestamp=now,
        )
        return resolved_kind

    def set_item_status(self, *, turn_id: str, item_id: str, status: str, now: datetime) -> None:
        item = self.item(turn_id, item_id)
        self._ensure_turn_is_active(self.turn(turn_id))
        if item.status not in OPEN_ITEM_STATUSES:
            raise LifecycleConflict(f"item {item_id} is already {item.status}", status=item.status)
        if status == item.status:
            raise LifecycleConflict(f"item {item_id} is already {status}", status=status)
        if status not in ITEM_STATUSES or status in ("queued", "interrupted"):
            raise InvalidCommand(f"an item cannot be set to {status!r}")
        self._item_status_changed(
            turn_id=turn_id,
            item_id=item_id,
            status=status,
            previous_status=item.status,
            timestamp=now,
        )

    def end_turn(self, *, turn_id: str, status: str, error: str | None, now: datetime) -> None:
        turn = self.turn(turn_id)
        self._ensure_turn_is_active(turn)
        event_class = TURN_END_EVENTS.get(status)
        if event_class is None:
            raise InvalidCommand(f"a turn cannot end as {status!r}")
        duration_ms = max(0, (now - turn.started_at) // timedelta(milliseconds=1))
        interrupted = (
            [i for i in turn.item_ids if self.items[i].status in OPEN_ITEM_STATUSES]
            if status == "interrupted"
            else []
        )
        record = {
            TurnCompleted: self._turn_completed,
            TurnFailed: self._turn_failed,
            TurnInterrupted: self._turn_interrupted,
        }[event_class]
        record(
            turn_id=turn_id,
            error=error,
            duration_ms=duration_ms,
            interrupted_item_ids=interrupted,
            timestamp=now,
        )

    # guards ----------------------------------------------------------------

    def _ensure_not_archived(self) -> None:
        if self.archived:
            raise LifecycleConflict(f"thread {self.id} is archived")

    def _ensure_no_active_turn(self) -> None:
        if self.active_turn_id is not None:
            raise LifecycleConflict(
                f"thread {self.id} already has an active turn {self.active_turn_id}",
                active_turn_id=self.active_turn_id,
            )

    def _ensure_turn_is_active(self, turn: Turn) -> None:
        if turn.status != "in_progress":
            raise LifecycleConflict(
                f"turn {turn.turn_id} is not active (it is {turn.status})", status=turn.status
            )

    # events: assignment only -------------------------------------------------

    @event(TurnStarted)
    def _turn_started(
        self,
        turn_id: str,
        input: str | None,
        executor_id: str | None,
        auto_approve: bool,
        trust_mode: bool,
        timestamp: datetime,
    ) -> None:
        self.turns[turn_id] = Turn(
            turn_id=turn_id,
            input=input,
            executor_id=executor_id,
            auto_approve=auto_approve,
            trust_mode=trust_mode,
            started_at=timestamp,
        )
        self.active_turn_id = turn_id

    @event(ItemAdded)
    def _item_added(
        self,
        turn_id: str,
        item_id: str,
        kind: str,
        tool_name: str | None,
        status: str,
        payload: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        self.items[item_id] = Item(
            item_id=item_id,
            turn_id=turn_id,
            kind=kind,
            tool_name=tool_name,
            status=status,
            payload=deepcopy(payload),
            created_at=timestamp,
            updated_at=timestamp,
        )
        self.turns[turn_id].item_ids.append(item_id)

    @event(ItemStatusChanged)
    def _item_status_changed(
        self, turn_id: str, item_id: str, status: str, previous_status: str, timestamp: datetime
    ) -> None:
        item = self.items[item_id]
        item.status = status
        item.updated_at = timestamp

    @event(TurnCompleted)
    def _turn_completed(
        self,
        turn_id: str,
        error: str | None,
        duration_ms: int | None,
        interrupted_item_ids: list[str],
        timestamp: datetime,
    ) -> None:
        self._close_turn(turn_id, "completed", error, duration_ms, interrupted_item_ids, timestamp)

    @event(TurnFailed)
    def _turn_failed(
        self,
        turn_id: str,
        error: str | None,
        duration_ms: int | None,
        interrupted_item_ids: list[str],
        timestamp: datetime,
    ) -> None:
        self._close_turn(turn_id, "failed", error, duration_ms, interrupted_item_ids, timestamp)

    @event(TurnInterrupted)
    def _turn_interrupted(
        self,
        turn_id: str,
        error: str | None,
        duration_ms: int | None,
        interrupted_item_ids: list[str],
        timestamp: datetime,
    ) -> None:
        self._close_turn(
            turn_id, "interrupted", error, duration_ms, interrupted_item_ids, timestamp
        )

    def _close_turn(
        self,
        turn_id: str,
        status: str,
        error: str | None,
        duration_ms: int | None,
        interrupted_item_ids: list[str],
        timestamp: datetime,
    ) -> None:
        """Assignment shared by the three turn-ending events."""
        turn = self.turns[turn_id]
        turn.status = status
        turn.error = error
        turn.ended_at = timestamp
        turn.duration_ms = duration_ms
        for item_id in interrupted_item_ids:
            item = self.items[item_id]
            item.status = "interrupted"
            item.updated_at = timestamp
        if self.active_turn_id == turn_id:
            self.active_turn_id = None
