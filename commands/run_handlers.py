"""Handlers of run commands: load the run, call one method, save.

As for threads, commands on one run are decided one at a time in this process and
decided again on the fresh state when another Ledger instance appended first, so a
node is dispatched exactly once however many workers claim at the same moment. A
command that changes nothing (a repeated ``feedback_id``, an attached session)
appends nothing and answers with the run's current seq and position.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from commands.ports import (
    Clock,
    CommandContext,
    ConcurrencyConflict,
    Repository,
    Saved,
    WorkspaceResolver,
)
from commands.run_commands import (
    AcknowledgeDispatch,
    ApproveQuotaOverride,
    ChangeInstance,
    ChangeRun,
    ChangeSession,
    ClaimNodes,
    DecideGate,
    LinkThread,
    RecordCommandError,
    RecordFeedback,
    RecordResult,
    RecordWorkerEvent,
    RequestGate,
    StartRun,
    UsageReport,
)
from commands.stream_locks import StreamLocks
from commands.thread_handlers import MAX_ATTEMPTS, new_id
from domain.approval_policy import POLICY_ACTOR
from domain.base import LedgerAggregate
from domain.errors import LifecycleConflict, NotFound
from domain.run import Run
from domain.run_state import NodeUsage
from domain.workflow import definition_hash

MAX_CLAIM_CANDIDATES = 50


class Unchanged(Exception):
    """The command changes nothing: nothing is appended."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("unchanged")
        self.body = body


class RunReads(Protocol):
    """What run commands read from the cross-stream read models."""

    async def claimable(self, tenant: str, limit: int) -> list[str]:
        """Runs with a node ready to dispatch, oldest first, once the read model is current."""
        ...

    async def position_of(self, tenant: str, stream_id: str, seq: int) -> int:
        """The global position of event ``seq`` of a stream."""
        ...

    async def driven_by(self, tenant: str, executor_id: str) -> list[str]:
        """Runs the executor drives that are running or pausing."""
        ...

    async def with_worker(self, tenant: str, worker_id: str) -> list[str]:
        """Runs with a node in flight on the worker."""
        ...


def _usage(usage: UsageReport | None) -> NodeUsage | None:
    if usage is None:
        return None
    return NodeUsage(
        usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cost_usd, usage.model
    )


class RunHandlers:
    """Every run command, each one load → one domain method → save."""

    def __init__(
        self,
        repository: Repository,
        reads: RunReads,
        clock: Clock,
        workspace: WorkspaceResolver,
        ack_timeout: timedelta,
    ) -> None:
        self._repository = repository
        self._reads = reads
        self._clock = clock
        self._workspace = workspace
        self._ack_timeout = ack_timeout
        self._locks = StreamLocks()

    # creation and the worker protocol ---------------------------------------

    async def start_run(self, command: StartRun, context: CommandContext) -> Saved:
        replayed = await self._repository.replay(context)
        if replayed is not None:
            return replayed
        run_id = command.run_id or new_id("run")
        workspace = self._workspace(command.workspace)
        run = Run.create(
            run_id=run_id,
            client_id=command.client_id,
            executor_id=command.executor_id,
            workspace=workspace,
            automation_id=command.automation_id,
            trigger=command.trigger,
            max_attempts=command.max_attempts,
            workflow=command.workflow,
            definition_hash=definition_hash(command.workflow),
            now=self._clock(),
        )
        body = {
            "run_id": run_id,
            "status": run.status,
            "definition_hash": run.definition_hash,
            "client_id": run.client_id,
            "created_at": run.created_at.isoformat().replace("+00:00", "Z"),
        }
        return await self._repository.save(run, context, body)

    async def claim(self, command: ClaimNodes, context: CommandContext) -> Saved:
        """Ready nodes for the worker, oldest run first; each goes to exactly one worker.

        With an idempotency key, the claim is one commit over every run it takes nodes
        from, stored with the key: a retry answers with the same dispatches and claims
        nothing more. Without one, each run's share is a commit of its own. The answer's
        ``seq`` and ``position`` are those of the last event appended (0 if none).
        """
        if context.idempotency is not None:
            return await self._claim_once(command, context)
        on_runs = replace(context, executor_id=command.worker_id)
        dispatches: list[dict[str, Any]] = []
        last = Saved(0, 0, {})
        candidates = await self._reads.claimable(context.tenant, MAX_CLAIM_CANDIDATES)
        for run_id in candidates:
            wanted = command.limit - len(dispatches)
            if wanted <= 0:
                break
            claimed: list[dict[str, Any]] = []

            def decide(
                run: Run, wanted: int = wanted, claimed: list[dict[str, Any]] = claimed
            ) -> dict[str, Any]:
                claimed[:] = self._claim_on(run, command, wanted)
                if not claimed:
                    raise Unchanged({})
                return {"run_id": run.id, "dispatches": list(claimed)}

            try:
                last = await self._change(run_id, on_runs, decide)
            except (Unchanged, NotFound):
                continue
            dispatches.extend(claimed)
        body = {"worker_id": command.worker_id, "dispatches": dispatches}
        return Saved(last.seq, last.position, body)

    async def _claim_once(self, command: ClaimNodes, context: CommandContext) -> Saved:
        stored = await self._repository.stored_answer(context)
        if stored is not None:
            return stored
        for _ in range(MAX_ATTEMPTS):
            try:
                return await self._claim_in_one_commit(command, context)
            except ConcurrencyConflict:
                continue  # another Ledger instance changed one of the runs: claim again
        raise LifecycleConflict("the claimable runs are changing too fast; retry the claim")

    async def _claim_in_one_commit(self, command: ClaimNodes, context: CommandContext) -> Saved:
        """Every run's share of the claim, appended together with the idempotency key.

        The runs stay locked from their checkout to the commit. Claims take the locks
        in the order of the candidates (oldest run first, an order that never changes),
        and every other command holds one run's lock at a time, so no two wait on each
        other.
        """
        on_runs = replace(context, executor_id=command.worker_id)
        dispatches: list[dict[str, Any]] = []
        taken: list[LedgerAggregate] = []
        changed: list[LedgerAggregate] = []
        candidates = await self._reads.claimable(context.tenant, MAX_CLAIM_CANDIDATES)
        async with AsyncExitStack() as locks:
            try:
                for run_id in candidates:
                    wanted = command.limit - len(dispatches)
                    if wanted <= 0:
                        break
                    await locks.enter_async_context(self._locks.hold(context.tenant, run_id))
                    run = await self._repository.checkout(context.tenant, run_id)
                    if run is None:
                        continue
                    taken.append(run)
                    if not isinstance(run, Run):
                        continue
                    claimed = self._claim_on(run, command, wanted)
                    if claimed:
                        changed.append(run)
                        dispatches.extend(claimed)
                body = {"worker_id": command.worker_id, "dispatches": dispatches}
                if not changed:  # nothing to store the key with: a retry claims afresh
                    return Saved(0, 0, body)
                return await self._repository.save_all(changed, on_runs, body)
            finally:
                for run in taken:  # unchanged ones go back to the cache; no-op once saved
                    self._repository.give_back(context.tenant, run)

    def _claim_on(self, run: Run, command: ClaimNodes, wanted: int) -> list[dict[str, Any]]:
        """Claim up to ``wanted`` of the run's ready nodes for the worker; their dispatches."""
        return [
            _dispatch_view(run, task_id)
            for task_id in run.claim(
                worker_id=command.worker_id,
                limit=wanted,
                ack_timeout=self._ack_timeout,
                new_dispatch_id=lambda: new_id("dsp"),
                now=self._clock(),
            )
        ]

    async def acknowledge(
        self, run_id: str, node_id: str, command: AcknowledgeDispatch, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.acknowledge(
                task_id=node_id,
                dispatch_id=command.dispatch_id,
                worker_id=command.worker_id,
                launching=command.launching,
                now=self._clock(),
            )
            return _node_body(run, node_id)

        return await self._change(run_id, self._as_worker(context, command.worker_id), decide)

    async def feedback(
        self, run_id: str, node_id: str, command: RecordFeedback, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            node = run.node(node_id)
            before = (node.result_sequence, node.chunk_sequence)
            recorded = run.record_feedback(
                task_id=node_id,
                dispatch_id=command.dispatch_id,
                feedback_id=command.feedback_id,
                stage=command.stage,
                progress=command.progress,
                message=command.message,
                metadata=dict(command.metadata),
                metrics=dict(command.metrics),
                chunks=[c.model_dump(exclude={"sequence"}) for c in command.chunks],
                usage=_usage(command.usage),
                now=self._clock(),
            )
            body = {
                **_node_body(run, node_id),
                "recorded": recorded,
                "result_sequence": node.result_sequence,
                "chunk_sequence": node.chunk_sequence,
                "deltas": node.result_sequence - before[0],
                "chunks": node.chunk_sequence - before[1],
            }
            if not recorded:
                raise Unchanged(body)
            return body

        return await self._change(run_id, context, decide)

    async def result(
        self, run_id: str, node_id: str, command: RecordResult, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.record_result(
                task_id=node_id,
                dispatch_id=command.dispatch_id,
                status=command.status,
                result=command.result,
                error=None if command.error is None else command.error.model_dump(),
                metadata=dict(command.metadata),
                artifacts=list(command.artifacts),
                duration_ms=command.duration_ms,
                usage=_usage(command.usage),
                now=self._clock(),
            )
            return _node_body(run, node_id)

        return await self._change(run_id, context, decide)

    async def command_error(
        self, run_id: str, node_id: str, command: RecordCommandError, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.record_command_error(
                task_id=node_id,
                dispatch_id=command.dispatch_id,
                message=command.message,
                now=self._clock(),
            )
            return _node_body(run, node_id)

        return await self._change(run_id, context, decide)

    async def worker_event(
        self, run_id: str, node_id: str, command: RecordWorkerEvent, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.record_worker_event(
                task_id=node_id,
                kind=command.event,
                worker_id=command.worker_id,
                detail=command.detail,
                outcome=command.outcome,
                data=dict(command.data),
                now=self._clock(),
            )
            return {**_node_body(run, node_id), "worker_status": run.nodes[node_id].worker_status}

        return await self._change(run_id, self._as_worker(context, command.worker_id), decide)

    async def link_thread(
        self, run_id: str, node_id: str, command: LinkThread, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.link_thread(task_id=node_id, thread_id=command.thread_id, now=self._clock())
            return {**_node_body(run, node_id), "thread_id": command.thread_id}

        return await self._change(run_id, context, decide)

    # run lifecycle ------------------------------------------------------------

    async def change_run(
        self, run_id: str, action: str, command: ChangeRun, context: CommandContext
    ) -> Saved:
        """pause, resume, cancel, block, stale-reap or guardrail-stop."""

        def decide(run: Run) -> dict[str, Any]:
            now = self._clock()
            if action == "pause":
                run.pause(reason=command.reason, now=now)
            elif action == "resume":
                run.resume(reason=command.reason, now=now)
            elif action == "cancel":
                run.cancel(reason=command.reason, now=now)
            elif action == "block":
                run.block(reason=command.reason, now=now)
            elif action == "stale-reap":
                run.stale_reap(detail=command.reason or "stale reaped by operator", now=now)
            else:
                run.guardrail_stop(reason=command.reason, now=now)
            return _run_body(run)

        return await self._change(run_id, context, decide)

    async def request_gate(
        self, run_id: str, command: RequestGate, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.request_gate(
                task_id=command.node_id,
                title=command.title,
                instructions=command.instructions,
                now=self._clock(),
            )
            return {**_run_body(run), "node_id": command.node_id}

        return await self._change(run_id, context, decide)

    async def decide_gate(
        self, run_id: str, node_id: str, command: DecideGate, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            run.decide_gate(
                task_id=node_id,
                decision=command.decision,
                reason=command.reason,
                actor=context.actor,
                now=self._clock(),
            )
            return {**_run_body(run), "node_id": node_id, "decision": command.decision}

        return await self._change(run_id, context, decide)

    async def approve_quota_override(
        self, command: ApproveQuotaOverride, context: CommandContext
    ) -> Saved:
        override_id = command.override_id or new_id("qo")

        def decide(run: Run) -> dict[str, Any]:
            resumed = run.approve_quota_override(
                override_id=override_id,
                agent_ids=sorted(set(command.agent_ids)),
                reason=command.reason,
                actor=context.actor,
                now=self._clock(),
            )
            return {**_run_body(run), "override_id": override_id, "resumed": resumed}

        return await self._change(command.run_id, context, decide)

    async def change_session(
        self, run_id: str, command: ChangeSession, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            now = self._clock()
            if command.action == "attach":
                changed = run.attach_session(session_id=command.session_id, now=now)
            else:
                changed = run.detach_session(session_id=command.session_id, now=now)
            body = {
                **_run_body(run),
                "sessions": list(run.sessions),
                "latest_session_id": run.latest_session_id,
                "changed": changed,
            }
            if not changed:
                raise Unchanged(body)
            return body

        return await self._change(run_id, context, decide)

    async def change_instance(
        self, run_id: str, command: ChangeInstance, context: CommandContext
    ) -> Saved:
        def decide(run: Run) -> dict[str, Any]:
            now = self._clock()
            if command.action == "attach":
                changed = run.attach_instance(instance_id=command.instance_id, now=now)
            else:
                changed = run.detach_instance(instance_id=command.instance_id, now=now)
            body = {**_run_body(run), "instances": list(run.instances), "changed": changed}
            if not changed:
                raise Unchanged(body)
            return body

        return await self._change(run_id, context, decide)

    # policies -------------------------------------------------------------------

    async def apply(
        self, tenant: str, run_id: str, actor: str, decide: Callable[[Run], bool]
    ) -> bool:
        """A policy's change to one run; whether anything was appended (idempotent)."""
        context = CommandContext(tenant=tenant, actor=actor, correlation_id=new_id("policy"))

        def change(run: Run) -> dict[str, Any]:
            if not decide(run):
                raise Unchanged({})
            return _run_body(run)

        try:
            await self._change(run_id, context, change)
        except (Unchanged, NotFound):
            return False
        return True

    async def recover_for_executor(
        self, tenant: str, executor_id: str, *, shutdown: bool
    ) -> list[str]:
        """Restart / shutdown / lease-expiry recovery of the executor's runs and nodes."""
        recovered: list[str] = []
        for run_id in await self._reads.driven_by(tenant, executor_id):
            if await self.apply(
                tenant,
                run_id,
                POLICY_ACTOR,
                lambda run: run.recover_for_executor(
                    executor_id=executor_id, shutdown=shutdown, now=self._clock()
                ),
            ):
                recovered.append(run_id)
        for run_id in await self._reads.with_worker(tenant, executor_id):
            if (
                await self.apply(
                    tenant,
                    run_id,
                    POLICY_ACTOR,
                    lambda run: bool(
                        run.recover_for_worker(worker_id=executor_id, now=self._clock())
                    ),
                )
                and run_id not in recovered
            ):
                recovered.append(run_id)
        return recovered

    # plumbing -------------------------------------------------------------------

    def _as_worker(self, context: CommandContext, worker_id: str | None) -> CommandContext:
        """A worker's command renews the worker's lease (workers are executors too)."""
        if worker_id is None or context.executor_id is not None:
            return context
        return replace(context, executor_id=worker_id)

    async def _change(
        self, run_id: str, context: CommandContext, decide: Callable[[Run], dict[str, Any]]
    ) -> Saved:
        replayed = await self._repository.replay(context)
        if replayed is not None:
            return replayed
        async with self._locks.hold(context.tenant, run_id):
            for _ in range(MAX_ATTEMPTS):
                run = _as_run(await self._repository.checkout(context.tenant, run_id), run_id)
                try:
                    try:
                        body = decide(run)
                    except Unchanged as unchanged:
                        if not unchanged.body:
                            raise
                        return await self._unchanged(context.tenant, run, unchanged.body)
                    try:
                        return await self._repository.save(run, context, body)
                    except ConcurrencyConflict:
                        continue  # another Ledger instance appended first: decide again
                finally:
                    self._repository.give_back(context.tenant, run)
        raise LifecycleConflict(f"run {run_id} is changing too fast; retry the command")

    async def _unchanged(self, tenant: str, run: Run, body: dict[str, Any]) -> Saved:
        seq = run.version - len(run.collect_events())
        position = await self._reads.position_of(tenant, run.id, seq)
        return Saved(seq, position, {**body, "seq": seq, "position": position})

    async def load(self, tenant: str, run_id: str) -> Run:
        """The run as stored, for reading only."""
        return _as_run(await self._repository.load(tenant, run_id), run_id)


def _as_run(aggregate: LedgerAggregate | None, run_id: str) -> Run:
    if not isinstance(aggregate, Run):
        raise NotFound(f"no run {run_id}", run_id=run_id)
    return aggregate


def _time(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _run_body(run: Run) -> dict[str, Any]:
    return {"run_id": run.id, "status": run.status}


def _node_body(run: Run, task_id: str) -> dict[str, Any]:
    node = run.nodes[task_id]
    return {
        **_run_body(run),
        "node_id": task_id,
        "node_status": node.status,
        "attempts": node.attempts,
        "pending_ack": node.pending_ack,
    }


def _dispatch_view(run: Run, task_id: str) -> dict[str, Any]:
    node = run.nodes[task_id]
    spec = run.plan.nodes[task_id]
    return {
        "run_id": run.id,
        "node_id": task_id,
        "dispatch_id": node.dispatch_id,
        "attempt": node.attempts + 1,
        "revision": node.revision,
        "node_type": spec.type,
        "package": {"name": spec.package_name, "version": spec.package_version},
        "parameters": node.parameters,
        "ack_deadline": _time(node.ack_deadline),
    }
