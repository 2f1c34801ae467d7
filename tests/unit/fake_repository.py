"""An in-memory Repository (the handlers' port): fold to load, check the version to save.

It keeps each stream's domain events and the context each was saved with, so unit
tests can drive the real handlers and domain and look at what was appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from commands.ports import CommandContext, ConcurrencyConflict, Saved
from commands.thread_handlers import ThreadHandlers
from domain.base import LedgerAggregate, fold
from domain.errors import LifecycleConflict
from infra.workspace import WorkspaceRoot
from tests.unit.builders import T0


@dataclass
class Appended:
    event: LedgerAggregate.Event
    context: CommandContext


@dataclass
class InMemoryRepository:
    streams: dict[tuple[str, str], list[Appended]] = field(default_factory=dict)
    position: int = 0

    async def load(self, tenant: str, stream_id: str) -> LedgerAggregate | None:
        return fold([a.event for a in self.streams.get((tenant, stream_id), [])])

    async def checkout(
        self, tenant: str, stream_id: str, *, verify: bool = True
    ) -> LedgerAggregate | None:
        return await self.load(tenant, stream_id)

    def give_back(self, tenant: str, aggregate: LedgerAggregate) -> None:
        pass

    def is_cached(self, tenant: str, stream_id: str) -> bool:
        return False

    async def save(
        self, aggregate: LedgerAggregate, context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        pending = aggregate.collect_events()
        stream = self.streams.setdefault((context.tenant, aggregate.id), [])
        expected = aggregate.version - len(pending)
        if len(stream) != expected:
            if expected == 0:
                raise LifecycleConflict(f"{aggregate.id} already exists")
            raise ConcurrencyConflict(f"{aggregate.id} is at {len(stream)}, not {expected}")
        stream.extend(Appended(e, context) for e in pending)
        self.position += len(pending)
        return Saved(
            len(stream), self.position, {**body, "seq": len(stream), "position": self.position}
        )

    async def save_all(
        self, aggregates: list[LedgerAggregate], context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        saved = Saved(0, 0, body)
        for aggregate in aggregates:  # not atomic: the unit tests save one aggregate at a time
            saved = await self.save(aggregate, context, body)
        return Saved(saved.seq, saved.position, body)

    async def replay(self, context: CommandContext) -> Saved | None:
        return None

    async def stored_answer(self, context: CommandContext) -> Saved | None:
        return None

    def events(self, stream_id: str, tenant: str = "default") -> list[Appended]:
        return list(self.streams.get((tenant, stream_id), []))

    def types(self, stream_id: str) -> list[str]:
        return [type(a.event).__name__ for a in self.events(stream_id)]


class TickingClock:
    """Starts at the tests' fixed moment and moves one second per reading."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def context(actor: str = "tester", tenant: str = "default") -> CommandContext:
    return CommandContext(tenant=tenant, actor=actor, correlation_id="corr-1")


def handlers_over(repository: InMemoryRepository, workspace_root: Path) -> ThreadHandlers:
    return ThreadHandlers(repository, TickingClock(), WorkspaceRoot(workspace_root))
