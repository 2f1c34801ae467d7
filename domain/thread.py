"""The Thread aggregate: turns, items and their lifecycle (seed 000's thread manager).

Rules kept here:
- one active turn per thread; items only on the active turn;
- an item's kind comes from its tool name, else the kind given;
- items start ``queued`` unless a status is given; a final item status is final;
- a turn ends once, as completed, failed or interrupted, with ``duration_ms``;
  interrupting a turn interrupts its queued and in-progress items;
- approvals live in their thread and are decided once, for the turn they were asked
  in; turns started with ``auto_approve`` have them decided by the policy at once;
- usage is per turn and replaces the turn's previous figures;
- the workspace cannot change while a turn is active; an archived thread takes no
  new turns.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from eventsourcing.domain import event

from domain.approval_policy import APPROVE, POLICY_ACTOR, SESSION_ACTOR, auto_decision
from domain.base import LedgerAggregate
from domain.costs import cost_total
from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from domain.item_kind import kind_for_tool
from domain.thread_events import (
    ApprovalDecided,
    ApprovalRequested,
    ItemAdded,
    ItemStatusChanged,
    ThreadArchived,
    ThreadStarted,
    TurnCompleted,
    TurnEnded,
    TurnFailed,
    TurnInterrupted,
    TurnStarted,
    UsageRecorded,
    WorkspaceChanged,
)

RESTART_REASON = "Interrupted by process restart"
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
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    reasoning_replay_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.reasoning_tokens
            + self.reasoning_replay_tokens
        )


@dataclass
class Approval:
    approval_id: str
    turn_id: str
    item_id: str | None
    approval_key: str | None
    requires_full_access: bool
    requested_at: datetime
    decision: str | None = None
    actor: str | None = None
    remember_for_session: bool = False
    decided_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.decision is None


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
    usage: Usage | None = None


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
    ApprovalRequested = ApprovalRequested
    ApprovalDecided = ApprovalDecided
    UsageRecorded = UsageRecorded
    WorkspaceChanged = WorkspaceChanged
    ThreadArchived = ThreadArchived

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
        self.approvals: dict[str, Approval] = {}
        self.remembered_approval_keys: set[str] = set()

    # queries ---------------------------------------------------------------

    @property
    def thread_id(self) -> str:
        return self.id

    @property
    def status(self) -> str:
        if self.archived:
            return "archived"
        return "active" if self.active_turn_id is not None else "idle"

    @property
    def pending_approvals(self) -> list[Approval]:
        return [a for a in self.approvals.values() if a.pending]

    @property
    def usage(self) -> Usage:
        """Thread totals: the sum of every turn's usage."""
        total = Usage()
        used = [turn.usage for turn in self.turns.values() if turn.usage is not None]
        for usage in used:
            total.input_tokens += usage.input_tokens
            total.output_tokens += usage.output_tokens
            total.reasoning_tokens += usage.reasoning_tokens
            total.reasoning_replay_tokens += usage.reasoning_replay_tokens
        total.cost_usd = cost_total(usage.cost_usd for usage in used)
        return total

    def active_turn_of(self, executor_id: str) -> Turn | None:
        """The active turn if ``executor_id`` runs it."""
        if self.active_turn_id is None:
            return None
        turn = self.turns[self.active_turn_id]
        return turn if turn.executor_id == executor_id else None

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
        after_the_fact: bool = False,
    ) -> str:
        """Add an item to the active turn (or to an ended one, asked explicitly); its kind."""
        turn = self.turn(turn_id)
        if not after_the_fact:
            self._ensure_turn_is_active(turn)
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

    def request_approval(
        self,
        *,
        approval_id: str,
        turn_id: str,
        item_id: str | None,
        approval_key: str | None,
        requires_full_access: bool,
        now: datetime,
    ) -> str | None:
        """Ask for approval on the active turn; returns the decision if one was made at once."""
        turn = self.turn(turn_id)
        self._ensure_turn_is_active(turn)
        if item_id is not None:
            self.item(turn_id, item_id)
        if approval_id in self.approvals:
            raise LifecycleConflict(f"thread {self.id} already has an approval {approval_id}")
        decision = auto_decision(
            auto_approve=turn.auto_approve,
            trust_mode=turn.trust_mode,
            requires_full_access=requires_full_access,
        )
        actor = POLICY_ACTOR if decision is not None else None
        if decision is None and approval_key and approval_key in self.remembered_approval_keys:
            decision, actor = APPROVE, SESSION_ACTOR
        self._approval_requested(
            approval_id=approval_id,
            turn_id=turn_id,
            item_id=item_id,
            approval_key=approval_key,
            requires_full_access=requires_full_access,
            decision=decision,
            actor=actor,
            timestamp=now,
        )
        return decision

    def decide_approval(
        self,
        *,
        approval_id: str,
        turn_id: str,
        decision: str,
        remember_for_session: bool,
        actor: str,
        now: datetime,
    ) -> None:
        """A person's decision; refused (and the approval left pending) for another turn."""
        approval = self.approvals.get(approval_id)
        if approval is None or not approval.pending:
            raise NotFound(f"no pending approval for {approval_id}", approval_id=approval_id)
        if approval.turn_id != turn_id:
            raise LifecycleConflict(
                f"pending approval scope mismatch for {approval_id}: expected thread {self.id}"
                f" turn {approval.turn_id}, URL had thread {self.id} turn {turn_id}",
                approval_id=approval_id,
                expected_turn_id=approval.turn_id,
            )
        if decision not in ("approve", "deny"):
            raise InvalidCommand(f"an approval cannot be decided as {decision!r}")
        self._approval_decided(
            approval_id=approval_id,
            turn_id=turn_id,
            decision=decision,
            remember_for_session=remember_for_session,
            actor=actor,
            timestamp=now,
        )

    def record_usage(
        self,
        *,
        turn_id: str,
        usage: Usage,
        now: datetime,
        after_the_fact: bool = False,
    ) -> None:
        """Set the turn's usage so far (replacing earlier figures)."""
        turn = self.turn(turn_id)
        if not after_the_fact:
            self._ensure_turn_is_active(turn)
        self._usage_recorded(
            turn_id=turn_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            reasoning_replay_tokens=usage.reasoning_replay_tokens,
            cost_usd=usage.cost_usd,
            model=usage.model,
            timestamp=now,
        )

    def change_workspace(self, *, workspace: str, now: datetime) -> None:
        self._ensure_not_archived()
        if self.active_turn_id is not None:
            raise LifecycleConflict(
                "thread has an active turn; finish or interrupt before rebinding workspace",
                active_turn_id=self.active_turn_id,
            )
        if workspace == self.workspace:
            raise LifecycleConflict(f"thread {self.id} already uses workspace {workspace}")
        self._workspace_changed(
            workspace=workspace, previous_workspace=self.workspace, timestamp=now
        )

    def archive(self, *, now: datetime) -> None:
        self._ensure_not_archived()
        if self.active_turn_id is not None:
            raise LifecycleConflict(
                f"thread {self.id} has an active turn {self.active_turn_id};"
                " finish or interrupt it before archiving",
                active_turn_id=self.active_turn_id,
            )
        self._thread_archived(timestamp=now)

    def interrupt_for_restart(self, *, executor_id: str, now: datetime) -> bool:
        """Seed 000's restart recovery for the turn ``executor_id`` runs, if any.

        Returns whether anything was interrupted; a second call finds nothing to do.
        """
        turn = self.active_turn_of(executor_id)
        if turn is None:
            return False
        self.end_turn(turn_id=turn.turn_id, status="interrupted", error=RESTART_REASON, now=now)
        return True

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

    @event(ApprovalRequested)
    def _approval_requested(
        self,
        approval_id: str,
        turn_id: str,
        item_id: str | None,
        approval_key: str | None,
        requires_full_access: bool,
        decision: str | None,
        actor: str | None,
        timestamp: datetime,
    ) -> None:
        self.approvals[approval_id] = Approval(
            approval_id=approval_id,
            turn_id=turn_id,
            item_id=item_id,
            approval_key=approval_key,
            requires_full_access=requires_full_access,
            requested_at=timestamp,
            decision=decision,
            actor=actor,
            decided_at=timestamp if decision is not None else None,
        )

    @event(ApprovalDecided)
    def _approval_decided(
        self,
        approval_id: str,
        turn_id: str,
        decision: str,
        remember_for_session: bool,
        actor: str,
        timestamp: datetime,
    ) -> None:
        approval = self.approvals[approval_id]
        approval.decision = decision
        approval.actor = actor
        approval.remember_for_session = remember_for_session
        approval.decided_at = timestamp
        if remember_for_session and decision == "approve" and approval.approval_key:
            self.remembered_approval_keys.add(approval.approval_key)

    @event(UsageRecorded)
    def _usage_recorded(
        self,
        turn_id: str,
        input_tokens: int,
        output_tokens: int,
        reasoning_tokens: int,
        reasoning_replay_tokens: int,
        cost_usd: float,
        model: str | None,
        timestamp: datetime,
    ) -> None:
        self.turns[turn_id].usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            reasoning_replay_tokens=reasoning_replay_tokens,
            cost_usd=cost_usd,
            model=model,
        )

    @event(WorkspaceChanged)
    def _workspace_changed(
        self, workspace: str, previous_workspace: str | None, timestamp: datetime
    ) -> None:
        self.workspace = workspace

    @event(ThreadArchived)
    def _thread_archived(self, timestamp: datetime) -> None:
        self.archived = True

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
