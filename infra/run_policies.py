"""The run policies of DESIGN.md, each idempotent: ack timeout, worker launch timeout, stale
runs, stale gates and bounded auto-resume.

Candidates come from the ``run_summaries`` read model once it has caught up with the log;
each is then decided on the run itself (loaded fresh, appended at its expected version),
so a candidate that is no longer due changes nothing and two Ledger instances never both
apply one policy to one run. They run inside the same locked pass as lease expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from commands.ports import Clock
from commands.run_handlers import RunHandlers
from domain.approval_policy import POLICY_ACTOR
from domain.run import Run
from infra.config import Settings
from infra.run_reads import RunReadModels
from infra.store.eventstore import EventStore
from queries import run_list

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunAction:
    """What one policy did to one run."""

    policy: str
    tenant: str
    run_id: str
    node_id: str | None = None

    def describe(self) -> str:
        node = f" node {self.node_id}" if self.node_id else ""
        return f"{self.policy}: run {self.run_id}{node} (tenant {self.tenant})"


class RunPolicies:
    def __init__(
        self,
        store: EventStore,
        reads: RunReadModels,
        runs: RunHandlers,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self._store = store
        self._reads = reads
        self._runs = runs
        self._clock = clock
        self._launch_timeout = timedelta(milliseconds=settings.worker_launch_timeout_ms)
        self._stale_run = timedelta(milliseconds=settings.stale_run_after_ms)
        self._stale_gate = timedelta(milliseconds=settings.stale_gate_after_ms)
        self._window = timedelta(milliseconds=settings.auto_resume_window_ms)
        self._max_resumes = settings.auto_resume_max
        self._auto_resume = settings.auto_resume

    async def run_once(self) -> list[RunAction]:
        await self._reads.caught_up()
        fetch = self._store.fetch
        now = self._clock()
        done: list[RunAction] = []

        async def apply(
            policy: str, tenant: str, run_id: str, node: str | None, decide: Callable[[Run], bool]
        ) -> None:
            if await self._runs.apply(tenant, run_id, POLICY_ACTOR, decide):
                action = RunAction(policy, tenant, run_id, node)
                log.info("run policy applied: %s", action.describe())
                done.append(action)

        for tenant, run_id, task_id in await run_list.overdue_acks(fetch, now):
            await apply(
                "ack timeout",
                tenant,
                run_id,
                task_id,
                _ack_timeout(task_id, now),
            )
        for tenant, run_id, task_id in await run_list.stalled_launches(
            fetch, now - self._launch_timeout
        ):
            await apply(
                "worker launch timeout",
                tenant,
                run_id,
                task_id,
                _launch_timeout(task_id, self._launch_timeout, now),
            )
        for tenant, run_id in await run_list.stale_runs(fetch, now - self._stale_run):
            await apply(
                "stale run reaped",
                tenant,
                run_id,
                None,
                lambda run: run.reap_if_stale(stale_after=self._stale_run, now=now),
            )
        for tenant, run_id, task_id in await run_list.stale_gates(fetch, now - self._stale_gate):
            await apply(
                "stale gate marked",
                tenant,
                run_id,
                task_id,
                _stale_gate(task_id, self._stale_gate, now),
            )
        if self._auto_resume:
            for tenant, run_id in await run_list.resumable_runs(fetch, now - self._window):
                await apply(
                    "auto-resumed",
                    tenant,
                    run_id,
                    None,
                    lambda run: run.auto_resume(
                        window=self._window, max_resumes=self._max_resumes, now=now
                    ),
                )
        return done


def _ack_timeout(task_id: str, now: datetime) -> Callable[[Run], bool]:
    return lambda run: run.time_out_ack(task_id=task_id, now=now)


def _launch_timeout(task_id: str, timeout: timedelta, now: datetime) -> Callable[[Run], bool]:
    return lambda run: run.time_out_launch(task_id=task_id, timeout=timeout, now=now)


def _stale_gate(task_id: str, stale_after: timedelta, now: datetime) -> Callable[[Run], bool]:
    return lambda run: run.mark_gate_stale(task_id=task_id, stale_after=stale_after, now=now)
