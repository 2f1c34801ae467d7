"""What command handlers need from the outside world, as protocols.

Handlers depend on these; ``infra`` provides the real adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from domain.base import LedgerAggregate


class ConcurrencyConflict(Exception):
    """The stream moved between load and append (another writer got there first)."""


class IdempotencyMismatch(Exception):
    """The idempotency key was first used with a different request."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used with a different request")


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Saved:
    """Where a command's events landed, and the response body to answer with."""

    seq: int
    position: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class CommandContext:
    """Who sent a command and how to trace it; lands in every event's metadata."""

    tenant: str
    actor: str
    correlation_id: str
    idempotency: Idempotency | None = None
    causation_id: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
        }


class Repository(Protocol):
    """Loads aggregates by folding their stream; saves their new events through the append port."""

    async def load(self, tenant: str, stream_id: str) -> LedgerAggregate | None: ...

    async def save(
        self, aggregate: LedgerAggregate, context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        """Append the aggregate's pending events at the version it was loaded at.

        Raises :class:`ConcurrencyConflict` if the stream moved, and
        :class:`IdempotencyMismatch` if the context's key came with another request.
        """

    async def replay(self, context: CommandContext) -> Saved | None:
        """The saved outcome of an earlier command with the context's idempotency key."""


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class WorkspaceResolver(Protocol):
    def __call__(self, raw: str | None) -> str:
        """The canonical workspace directory for ``raw``; raises InvalidCommand if it is not one."""
        ...
