"""Executor commands (imperative), as the bodies clients send. The executor id is in the path."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, TypeAdapter

from commands.thread_commands import ExternalId

EXECUTOR_ID: TypeAdapter[str] = TypeAdapter(ExternalId)
"""Validates an executor id (the same shape as every client-given id)."""


class ExecutorCommand(BaseModel):
    # strict: each field takes the JSON type the schema states (0 is not false, "5" not 5)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RecordHeartbeat(ExecutorCommand):
    """The executor is alive: renew its lease."""


class AnnounceRestart(ExecutorCommand):
    """The executor restarted: the work it owned is interrupted."""


class AnnounceShutdown(ExecutorCommand):
    """The executor is stopping: the work it owned is interrupted."""
