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
    executor_id: str | None = None
    """The executor that sent the command; its events renew that executor's lease."""

    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "actor": self.actor,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
        }
        if self.executor_id is not None:
            metadata["executor_id"] = self.executor_id
        return metadata


class Repository(Protocol):
    """Loads aggregates by folding their stream; saves their new events through the append port."""

    async def load(self, tenant: str, stream_id: str) -> LedgerAggregate | None:
        """The aggregate as stored, for reading only (it may be shared: never change it)."""

    async def checkout(
        self, tenant: str, stream_id: str, *, verify: bool = True
    ) -> LedgerAggregate | None:
        """The aggregate as stored, for a command to change and then :meth:`save`; nobody else
        sees it meanwhile. ``verify=False`` may answer from a cache without checking for
        events appended since by another instance (a command's append then conflicts).
        Every checkout ends in :meth:`save` or :meth:`give_back`."""

    def give_back(self, tenant: str, aggregate: LedgerAggregate) -> None:
        """End a checkout that saved nothing; an aggregate the command changed is discarded."""

    def is_cached(self, tenant: str, stream_id: str) -> bool:
        """Whether an unverified checkout would answer from the cache."""

    async def save(
        self, aggregate: LedgerAggregate, context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        """Append the aggregate's pending events at the version it was loaded at.

        Raises :class:`ConcurrencyConflict` if the stream moved, and
        :class:`IdempotencyMismatch` if the context's key came with another request.
        """

    async def save_all(
        self, aggregates: list[LedgerAggregate], context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        """Append the pending events of every aggregate in one commit: all land or none.
        ``body`` is stored as it is with the context's idempotency key. Raises as
        :meth:`save` does."""

    async def replay(self, context: CommandContext) -> Saved | None:
        """The saved outcome of an earlier command with the context's idempotency key."""

    async def stored_answer(self, context: CommandContext) -> Saved | None:
        """The body stored with the context's idempotency key, as :meth:`save_all` stored it
        (``replayed``); None if the key is new. Raises :class:`IdempotencyMismatch` if the
        key came with another request."""


@dataclass(frozen=True)
class OwnedWork:
    """An executor's work as the read models know it once they have caught up with the log."""

    thread_ids: list[str]
    last_seen_position: int


class ReadModelBehind(Exception):
    """A read model did not catch up with the log in time; the command can be retried."""

    def __init__(self, name: str, current: int, wanted: int) -> None:
        super().__init__(f"read model {name} is at position {current}, not yet at {wanted}")
        self.name = name
        self.current = current


class ExecutorReads(Protocol):
    """What recovery reads from the cross-stream read models."""

    async def owned_work(self, tenant: str, executor_id: str) -> OwnedWork:
        """Threads whose active turn runs on ``executor_id``, and its last activity.

        Read after the read models have applied every event appended so far;
        raises :class:`ReadModelBehind` if they do not get there in time.
        """
        ...

    async def position_of(self, tenant: str, stream_id: str, seq: int) -> int:
        """The global position of event ``seq`` of a stream."""
        ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class WorkspaceResolver(Protocol):
    def __call__(self, raw: str | None) -> str:
        """The canonical workspace directory for ``raw``; raises InvalidCommand if it is not one."""
        ...
