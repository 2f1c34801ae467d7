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


class ApprovalRequested(LedgerAggregate.Event):
    """A tool asks for approval; when a policy decides at once, the decision rides along."""

    approval_id: str
    turn_id: str
    item_id: str | None = None
    approval_key: str | None = None
    requires_full_access: bool = False
    decision: str | None = None
    actor: str | None = None


class ApprovalDecided(LedgerAggregate.Event):
    approval_id: str
    turn_id: str
    decision: str
    remember_for_session: bool = False
    actor: str


class UsageRecorded(LedgerAggregate.Event):
    """The turn's usage so far: it replaces the turn's previous figures."""

    turn_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    reasoning_replay_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None


class WorkspaceChanged(LedgerAggregate.Event):
    workspace: str
    previous_workspace: str | None = None


class ThreadArchived(LedgerAggregate.Event):
    pass


THREAD_EVENTS: tuple[type[LedgerAggregate.Event], ...] = (
    ThreadStarted,
    TurnStarted,
    ItemAdded,
    ItemStatusChanged,
    TurnCompleted,
    TurnFailed,
    TurnInterrupted,
    ApprovalRequested,
    ApprovalDecided,
    UsageRecorded,
    WorkspaceChanged,
    ThreadArchived,
)
