"""Thread commands (imperative), as the bodies clients send. Path ids come separately."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ExternalId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="1-128 characters: letters, digits and . _ : - (not first)",
    ),
]
ItemKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_TOKENS = 10**12  # per turn: keeps every sum of turns far inside a 64-bit integer
MAX_COST_USD = 1e9
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartThread(Command):
    """Open a new thread (its first event)."""

    thread_id: ExternalId | None = None
    workspace: Annotated[str, Field(max_length=4096)] | None = None
    title: Annotated[str, Field(max_length=1000)] | None = None
    metadata: dict[str, Any] = {}


class StartTurn(Command):
    """Start a turn; a thread has at most one active turn."""

    turn_id: ExternalId | None = None
    input: str | None = None
    executor_id: ExternalId | None = None
    auto_approve: bool = False
    trust_mode: bool = False


class AddItem(Command):
    """Add an item to the active turn; its kind comes from ``tool_name`` when given.

    ``after_the_fact`` records it on a turn that has already ended (history written late).
    """

    item_id: ExternalId | None = None
    tool_name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    kind: ItemKind | None = None
    status: Literal["queued", "in_progress", "completed", "failed", "declined"] | None = None
    payload: dict[str, Any] = {}
    after_the_fact: bool = False


class SetItemStatus(Command):
    """Move an item on; a final status (completed, failed, declined) is final."""

    status: Literal["in_progress", "completed", "failed", "declined"]


class CompleteTurn(Command):
    """End the active turn."""

    status: Literal["completed", "failed", "interrupted"] = "completed"
    error: Annotated[str, Field(max_length=10_000)] | None = None


class RequestApproval(Command):
    """Ask for approval on the active turn; a turn started with ``auto_approve`` decides at once."""

    approval_id: ExternalId | None = None
    turn_id: ExternalId
    item_id: ExternalId | None = None
    approval_key: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    requires_full_access: bool = False


class DecideApproval(Command):
    """A person's decision on a pending approval of the turn named."""

    turn_id: ExternalId
    decision: Literal["approve", "deny"]
    remember_for_session: bool = False


class RecordUsage(Command):
    """The turn's usage so far; it replaces the figures recorded before.

    ``after_the_fact`` records it on a turn that has already ended.
    """

    input_tokens: TokenCount
    output_tokens: TokenCount
    reasoning_tokens: TokenCount = 0
    reasoning_replay_tokens: TokenCount = 0
    cost_usd: Annotated[float, Field(ge=0, le=MAX_COST_USD, allow_inf_nan=False, strict=True)] = 0.0
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    after_the_fact: bool = False


class ChangeWorkspace(Command):
    """Bind the thread to another workspace directory (not while a turn is active)."""

    workspace: Annotated[str, Field(max_length=4096)]


class ArchiveThread(Command):
    """Archive an idle thread; it takes no new turns afterwards."""
