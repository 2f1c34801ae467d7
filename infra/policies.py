"""Background policies of ``ledger serve``; each is also a CLI command and idempotent.

Lease expiry: an executor silent for longer than its lease has the work it owned
recovered (``ExecutorLeaseExpired``). Leases are judged from the log (the
``executor_leases`` read model), so they survive Ledger restarts, and a Ledger
instance expires nothing until it has itself been up for a lease (executors get
a full lease to reach it again). With several instances on one PostgreSQL
database each tick runs under a transaction-level advisory lock held on a
dedicated connection, so one instance works at a time; expected-version appends
make any second attempt append nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from commands.executor_handlers import ExecutorHandlers
from commands.ports import Clock, CommandContext
from domain.approval_policy import POLICY_ACTOR
from domain.executor import lease_has_expired
from infra.executor_reads import ExecutorReadModels
from infra.run_policies import RunAction, RunPolicies
from infra.store.backend import Backend
from infra.store.eventstore import EventStore
from infra.store.postgres import PostgresBackend
from queries.executor_work import Lease, unrecovered_leases_seen_before

log = logging.getLogger(__name__)

POLICY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"ledger.policies").digest()[:8], "big", signed=True
)
CLI_LOCK_TIMEOUT = "10s"
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Recovery:
    """What one recovery did: the threads interrupted and where the executor event landed."""

    tenant: str
    executor_id: str
    last_seen_position: int
    interrupted_threads: list[str]
    recorded: bool

    def describe(self) -> str:
        threads = ", ".join(self.interrupted_threads) or "no active turns"
        recorded = "lease expiry recorded" if self.recorded else "nothing new to record"
        return (
            f"executor {self.executor_id} (tenant {self.tenant}, last seen at position"
            f" {self.last_seen_position}): interrupted {threads}; {recorded}"
        )


class LeaseExpiryPolicy:
    """Finds executors whose lease ran out on unrecovered work and recovers it."""

    def __init__(
        self,
        store: EventStore,
        reads: ExecutorReadModels,
        executors: ExecutorHandlers,
        clock: Clock,
        lease: timedelta,
    ) -> None:
        self._store = store
        self._reads = reads
        self._executors = executors
        self._clock = clock
        self._lease = lease

    def in_grace(self, started_at: datetime | None) -> bool:
        """Whether an instance started at ``started_at`` is still giving executors their lease."""
        return started_at is not None and self._clock() <= started_at + self._lease

    async def run_once(self, *, started_at: datetime | None) -> list[Recovery]:
        """One pass; ``started_at`` is when this instance started (None: no start-up grace)."""
        if self.in_grace(started_at):
            return []
        await self._reads.caught_up()
        now = self._clock()
        due = [
            lease
            for lease in await unrecovered_leases_seen_before(self._store.fetch, now - self._lease)
            if lease_has_expired(
                last_seen_at=lease.last_seen_at,
                last_seen_position=lease.last_seen_position,
                recovered_position=lease.recovered_position,
                now=now,
                lease=self._lease,
                started_at=started_at,
            )
        ]
        return [await self._expire(lease) for lease in due]

    async def _expire(self, lease: Lease) -> Recovery:
        context = CommandContext(
            tenant=lease.tenant, actor=POLICY_ACTOR, correlation_id=str(uuid.uuid4())
        )
        saved = await self._executors.recover(
            lease.executor_id,
            "lease_expired",
            context,
            judged_at_position=lease.last_seen_position,
        )
        interrupted = list(saved.body.get("interrupted_threads", []))
        recovery = Recovery(
            lease.tenant,
            lease.executor_id,
            lease.last_seen_position,
            interrupted,
            recorded=bool(saved.body.get("recorded")),
        )
        log.info("lease expired: %s", recovery.describe())
        return recovery


class PolicyLock:
    """One policy pass at a time across the Ledger instances of a PostgreSQL database.

    The lock is a transaction-level advisory lock on a connection of its own, held
    for the whole pass and released by the commit (or by the connection closing).
    SQLite needs none: its single writer and expected versions already serialise.
    """

    def __init__(self, backend: Backend) -> None:
        self._url = backend.url if isinstance(backend, PostgresBackend) else None
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @contextlib.asynccontextmanager
    async def hold(self, *, wait: bool) -> AsyncIterator[bool]:
        """Yields whether the lock is held; ``wait`` blocks for it (bounded) instead of trying."""
        if self._url is None:
            yield True
            return
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        try:
            async with self._conn.transaction():
                if wait:
                    await self._conn.execute(f"SET LOCAL lock_timeout = '{CLI_LOCK_TIMEOUT}'")
                    await self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (POLICY_LOCK_KEY,))
                    held = True
                else:
                    cursor = await self._conn.execute(
                        "SELECT pg_try_advisory_xact_lock(%s)", (POLICY_LOCK_KEY,)
                    )
                    row = await cursor.fetchone()
                    held = bool(row and row[0])
                yield held
        except psycopg.OperationalError:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PolicyRunner:
    """Runs the policies every interval as an asyncio task of the serving process."""

    def __init__(
        self,
        lease_expiry: LeaseExpiryPolicy,
        lock: PolicyLock,
        clock: Clock,
        interval: float,
        run_policies: RunPolicies | None = None,
    ) -> None:
        self.lease_expiry = lease_expiry
        self.run_policies = run_policies
        self._lock = lock
        self._clock = clock
        self._interval = interval
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.started_at: datetime | None = None

    def start(self) -> None:
        self.started_at = self._clock()
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="ledger-policies")

    async def stop(self) -> None:
        """Let a pass in progress finish (bounded), then stop."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("policies did not finish within %s s; cancelled", STOP_TIMEOUT_SECONDS)
            self._task = None
        await self._lock.close()

    async def tick(self) -> list[Recovery | RunAction]:
        """One pass as the background task runs it: skipped while another instance works.

        The run policies judge deadlines recorded in the log (ack deadlines, gate and
        event ages), so they need no start-up grace; lease expiry does.
        """
        async with self._lock.hold(wait=False) as held:
            if not held:
                return []
            done: list[Recovery | RunAction] = []
            if not self.lease_expiry.in_grace(self.started_at):
                done.extend(await self.lease_expiry.run_once(started_at=self.started_at))
            if self.run_policies is not None:
                done.extend(await self.run_policies.run_once())
            return done

    async def run_now(self) -> list[Recovery | RunAction]:
        """One pass right away, with no start-up grace (``ledger recover``)."""
        async with self._lock.hold(wait=True):
            done: list[Recovery | RunAction] = []
            done.extend(await self.lease_expiry.run_once(started_at=None))
            if self.run_policies is not None:
                done.extend(await self.run_policies.run_once())
            return done

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if self._stopping.is_set():
                return
            try:
                await self.tick()
            except Exception as error:  # database gone, read model behind: next tick
                log.warning("policy pass failed: %s", error)
