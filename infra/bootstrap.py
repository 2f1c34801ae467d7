"""The composition root: builds the store, repository and handlers from settings.

Nothing connects at import time; :meth:`Ledger.start` migrates and opens,
:meth:`Ledger.stop` drains the writer and closes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from commands.executor_handlers import ExecutorHandlers
from commands.run_handlers import RunHandlers
from commands.thread_handlers import ThreadHandlers
from domain.bindings import EdgeBinding
from domain.executor import Executor
from domain.run import Run
from domain.run_state import Gate, NodeState, NodeUsage
from domain.thread import Approval, Item, Thread, Turn, Usage
from domain.workflow import FrameSpec, NodeSpec, Plan
from infra.auth import TokenResolver
from infra.config import Settings
from infra.executor_reads import ExecutorReadModels
from infra.http.auth import caller
from infra.mapper import EventMapper
from infra.metrics import Metrics
from infra.notifier import PositionNotifier
from infra.policies import LeaseExpiryPolicy, PolicyLock, PolicyRunner
from infra.projection_runner import ProjectionRunner, ProjectionService
from infra.repository import EventSourcedRepository
from infra.retention import IdempotencyRetention
from infra.run_policies import RunPolicies
from infra.run_reads import RunReadModels
from infra.snapshot_store import Snapshots
from infra.snapshots import StateCodec
from infra.store.eventstore import EventStore, open_backend
from infra.token_store import find_active
from infra.workspace import WorkspaceRoot
from projections.base import Projection
from projections.executor_leases import ExecutorLeases
from projections.pending_approvals import PendingApprovals
from projections.run_status_files import RunStatusFiles
from projections.run_summaries import RunSummaries
from projections.thread_summaries import ThreadSummaries
from projections.usage import UsageProjection
from queries.run_status import status_document

AGGREGATES = (Thread, Executor, Run)
SNAPSHOT_DATACLASSES = (
    *(Turn, Item, Approval, Usage),
    *(NodeState, NodeUsage, Gate, Plan, NodeSpec, FrameSpec, EdgeBinding),
)


def all_projections() -> list[Projection]:
    """Every read model Ledger maintains, by name."""
    return [
        ThreadSummaries(),
        PendingApprovals(),
        ExecutorLeases(),
        UsageProjection(),
        RunSummaries(),
        RunStatusFiles(status_document),
    ]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Everything one Ledger process runs, wired once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = open_backend(settings.database_url)
        self.store = EventStore(self.backend)
        self.mapper = EventMapper(AGGREGATES)
        self.snapshots = Snapshots(
            self.store, StateCodec(AGGREGATES, SNAPSHOT_DATACLASSES), settings.snapshot_every
        )
        self.repository = EventSourcedRepository(self.store, self.mapper, snapshots=self.snapshots)
        self.threads = ThreadHandlers(self.repository, utc_now, WorkspaceRoot(settings.workspace))
        self.projections = ProjectionService(
            self.backend, [ProjectionRunner(self.backend, p) for p in all_projections()]
        )
        lease = timedelta(milliseconds=settings.executor_lease_ms)
        self.executor_reads = ExecutorReadModels(self.store, self.projections)
        self.run_reads = RunReadModels(self.store, self.projections)
        self.runs = RunHandlers(
            self.repository,
            self.run_reads,
            utc_now,
            WorkspaceRoot(settings.workspace),
            timedelta(milliseconds=settings.ack_timeout_ms),
        )
        self.executors = ExecutorHandlers(
            self.repository,
            self.threads,
            self.executor_reads,
            utc_now,
            lease,
            self.runs,
        )
        self.notifier = PositionNotifier(self.store)
        self.metrics = Metrics()
        self.metrics.watch_projections(self._projection_positions)
        self.store.observe(self.metrics.events_appended.inc, self.metrics.append_latency.observe)
        self.tokens = TokenResolver(
            lambda token_hash: find_active(self.store.fetch, token_hash),
            ttl=settings.auth_cache_ms / 1000,
        )
        """Resolves API tokens (consulted only with authentication on)."""
        self.retention = IdempotencyRetention(self.backend, settings.idempotency_ttl_ms)
        self.closing = asyncio.Event()
        """Set when a graceful stop begins: live tails send their final event and close."""
        self.policies = PolicyRunner(
            LeaseExpiryPolicy(self.store, self.executor_reads, self.executors, utc_now, lease),
            PolicyLock(self.backend),
            utc_now,
            interval=settings.policy_interval_ms / 1000,
            run_policies=RunPolicies(self.store, self.run_reads, self.runs, utc_now, settings),
        )

    async def start(self, *, policies: bool = True) -> None:
        """Migrate, open the store, start the projections (unless ``LEDGER_PROJECTIONS`` is off)
        and (unless told not to) the policies."""
        self.backend.migrate()
        await self.store.open()
        if self.settings.projections:
            self.store.writer.add_listener(self.projections.wake)
            self.projections.start()
        else:  # a `ledger project` process applies them; the reads here need the tables
            self.projections.ensure_tables()
        await self.notifier.start()
        if policies:
            self.policies.start()
            self.retention.start()

    def begin_closing(self) -> None:
        """A graceful stop has begun (SIGTERM): tails finish, commands in flight complete."""
        self.closing.set()

    async def stop(self) -> None:
        self.closing.set()
        await self.retention.stop()
        await self.policies.stop()
        await self.notifier.stop()
        self.projections.stop()
        await self.snapshots.drain()
        await self.store.close()

    def metrics_sse_connections(self, change: int) -> None:
        self.metrics.sse_connections.inc(change)

    def _projection_positions(self) -> list[tuple[str, int, int]]:
        head = self.backend.max_position()
        return [(r.name, r.position(), head) for r in self.projections.runners]

    def tenant(self, request: Request) -> str:
        """The caller's tenant: its API token's, or ``default`` with authentication off."""
        return caller(request).tenant
