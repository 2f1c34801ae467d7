"""Thread commands (imperative), as the bodies clients send. Path ids come separately.

Every ``str`` field has an explicit maximum length (``MAX_*_CHARS``; they are named in the
422 a longer value gets). Short text that read models keep in text columns (title, tool
name, approval key, model) may not hold NUL, which PostgreSQL text cannot store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ID_CHARS = 128
MAX_KIND_CHARS = 64
MAX_WORKSPACE_CHARS = 4096
MAX_TITLE_CHARS = 1000
MAX_INPUT_CHARS = 262_144
MAX_TOOL_NAME_CHARS = 256
MAX_ERROR_CHARS = 10_000
MAX_APPROVAL_KEY_CHARS = 1000
MAX_MODEL_CHARS = 256
NO_NUL = r"^[^\x00]*$"

ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="1-128 characters: letters, digits and . _ : - (not first)",
    ),
]
ItemKind = Annotated[str, Field(max_length=MAX_KIND_CHARS, pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Workspace = Annotated[str, Field(max_length=MAX_WORKSPACE_CHARS, pattern=NO_NUL)]
Title = Annotated[str, Field(max_length=MAX_TITLE_CHARS, pattern=NO_NUL)]
ToolName = Annotated[str, Field(min_length=1, max_length=MAX_TOOL_NAME_CHARS, pattern=NO_NUL)]
ApprovalKey = Annotated[str, Field(min_length=1, max_length=MAX_APPROVAL_KEY_CHARS, pattern=NO_NUL)]
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_CHARS, pattern=NO_NUL)]
MAX_TOKENS = 10**12  # per turn: keeps every sum of turns far inside a 64-bit integer
MAX_COST_USD = 1e9

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]


class Command(BaseModel):
    # strict: each field takes the JSON type the schema states (0 is not false, "5" not 5)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StartThread(Command):
    """Open a new thread (its first event)."""

    thread_id: ExternalId | None = None
    workspace: Workspace | None = None
    title: Title | None = None
    metadata: dict[str, Any] = {}


class StartTurn(Command):
    """Start a turn; a thread has at most one active turn."""

    turn_id: ExternalId | None = None
    input: Annotated[str, Field(max_length=MAX_INPUT_CHARS)] | None = None
    executor_id: ExternalId | None = None
    auto_approve: bool = False
    trust_mode: bool = False


class AddItem(Command):
    """Add an item to the active turn; its kind comes from ``tool_name`` when given.

    ``after_the_fact`` records it on a turn that has already ended (history written late).
    """

    item_id: ExternalId | None = None
    tool_name: ToolName | None = None
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
    error: Annotated[str, Field(max_length=MAX_ERROR_CHARS)] | None = None


class RequestApproval(Command):
    """Ask for approval on the active turn; a turn started with ``auto_approve`` decides at once."""

    approval_id: ExternalId | None = None
    turn_id: ExternalId
    item_id: ExternalId | None = None
    approval_key: ApprovalKey | None = None
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
    model: ModelName | None = None
    after_the_fact: bool = False


class ChangeWorkspace(Command):
    """Bind the thread to another workspace directory (not while a turn is active)."""

    workspace: Workspace


class ArchiveThread(Command):
    """Archive an idle thread; it takes no new turns afterwards."""
