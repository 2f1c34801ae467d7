"""Runs built through the real store for integration tests: domain methods, then the repository."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from commands.ports import CommandContext
from domain.run import Run
from domain.run_state import NodeUsage
from domain.workflow import definition_hash
from infra.bootstrap import Ledger
from tests.unit.builders import T0
from tests.unit.run_builders import linear

ACK = timedelta(seconds=30)


def _context(tenant: str = "default") -> CommandContext:
    return CommandContext(tenant=tenant, actor="test", correlation_id="c")


class Runs:
    """Builds runs through the real store: domain methods, then the repository."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.dispatches = 0

    async def create(
        self,
        run_id: str,
        *,
        flow: dict[str, Any] | None = None,
        client_id: str = "c1",
        automation_id: str | None = "auto_1",
        executor_id: str | None = "auto-1",
        workspace: str | None = None,
        max_attempts: int = 1,
        tenant: str = "default",
        now: datetime = T0,
    ) -> Run:
        flow = flow or linear("a", "b")
        run = Run.create(
            run_id=run_id,
            client_id=client_id,
            executor_id=executor_id,
            workspace=workspace,
            automation_id=automation_id,
            trigger={"kind": "manual"},
            max_attempts=max_attempts,
            workflow=flow,
            definition_hash=definition_hash(flow),
            now=now,
        )
        await self.save(run, tenant)
        return run

    async def save(self, run: Run, tenant: str = "default") -> None:
        await self.ledger.repository.save(run, _context(tenant), {})

    def _dispatch_id(self) -> str:
        self.dispatches += 1
        return f"d{self.dispatches}"

    async def claim(
        self, run: Run, worker_id: str = "w1", *, now: datetime, tenant: str = "default"
    ) -> list[str]:
        claimed = run.claim(
            worker_id=worker_id,
            limit=10,
            ack_timeout=ACK,
            new_dispatch_id=self._dispatch_id,
            now=now,
        )
        await self.save(run, tenant)
        return claimed

    async def ack(self, run: Run, task_id: str, *, now: datetime, launching: bool = False) -> None:
        node = run.nodes[task_id]
        run.acknowledge(
            task_id=task_id,
            dispatch_id=str(node.dispatch_id),
            worker_id=node.worker_id,
            now=now,
            launching=launching,
        )
        await self.save(run)

    async def result(
        self,
        run: Run,
        task_id: str,
        status: str = "succeeded",
        *,
        now: datetime,
        usage: NodeUsage | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        run.record_result(
            task_id=task_id,
            dispatch_id=str(run.nodes[task_id].dispatch_id),
            status=status,
            result={"value": task_id},
            error=error,
            metadata={},
            artifacts=[],
            duration_ms=5,
            usage=usage,
            now=now,
        )
        await self.save(run)

    async def complete(
        self, run: Run, task_id: str, *, now: datetime, usage: NodeUsage | None = None
    ) -> None:
        await self.claim(run, now=now)
        await self.ack(run, task_id, now=now)
        await self.result(run, task_id, now=now, usage=usage)

    async def step(self, run: Run, command: Callable[[Run], object]) -> None:
        command(run)
        await self.save(run)
