"""The composition root: builds the store, repository and handlers from settings.

Nothing connects at import time; :meth:`Ledger.start` migrates and opens,
:meth:`Ledger.stop` drains the writer and closes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from commands.thread_handlers import ThreadHandlers
from domain.thread import Thread
from infra.config import Settings
from infra.mapper import EventMapper
from infra.projection_runner import ProjectionRunner, ProjectionService
from infra.repository import EventSourcedRepository
from infra.store.eventstore import EventStore, open_backend
from infra.store.records import DEFAULT_TENANT
from infra.workspace import WorkspaceRoot
from projections.base import Projection
from projections.pending_approvals import PendingApprovals
from projections.thread_summaries import ThreadSummaries

AGGREGATES = (Thread,)


def all_projections() -> list[Projection]:
    """Every read model Ledger maintains, by name."""
    return [ThreadSummaries(), PendingApprovals()]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Everything one Ledger process runs, wired once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = open_backend(settings.database_url)
        self.store = EventStore(self.backend)
        self.mapper = EventMapper(AGGREGATES)
        self.repository = EventSourcedRepository(self.store, self.mapper)
        self.threads = ThreadHandlers(self.repository, utc_now, WorkspaceRoot(settings.workspace))
        self.projections = ProjectionService(
            self.backend, [ProjectionRunner(self.backend, p) for p in all_projections()]
        )

    async def start(self) -> None:
        self.backend.migrate()
        await self.store.open()
        self.store.writer.add_listener(self.projections.wake)
        self.projections.start()

    async def stop(self) -> None:
        self.projections.stop()
        await self.store.close()

    def tenant(self, request: Request) -> str:
        """The caller's tenant (one tenant until API tokens exist)."""
        return DEFAULT_TENANT
