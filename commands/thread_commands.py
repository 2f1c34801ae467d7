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
    """Add an item to the active turn; its kind comes from ``tool_name`` when given."""

    item_id: ExternalId | None = None
    tool_name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    kind: ItemKind | None = None
    status: Literal["queued", "in_progress", "completed", "failed", "declined"] | None = None
    payload: dict[str, Any] = {}


class SetItemStatus(Command):
    """Move an item on; a final status (completed, failed, declined) is final."""

    status: Literal["in_progress", "completed", "failed", "declined"]


class CompleteTurn(Command):
    """End the active turn."""

    status: Literal["completed", "failed", "interrupted"] = "completed"
    error: Annotated[str, Field(max_length=10_000)] | None = None
