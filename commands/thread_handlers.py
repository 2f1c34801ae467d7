"""Handlers of thread commands: load the thread, call one method, save.

Commands on one thread are decided one at a time in this process (a lock per
stream). A command that still loses a race, to another Ledger instance on the
same database, is decided again on the fresh state, so concurrent commands
behave as if they came one after the other; only a rule that the fresh state
breaks is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from commands.ports import (
    Clock,
    CommandContext,
    ConcurrencyConflict,
    Repository,
    Saved,
    WorkspaceResolver,
)
from commands.stream_locks import StreamLocks
from commands.thread_commands import (
    AddItem,
    ArchiveThread,
    ChangeWorkspace,
    CompleteTurn,
    DecideApproval,
    RecordUsage,
    RequestApproval,
    SetItemStatus,
    StartThread,
    StartTurn,
)
from domain.base import LedgerAggregate
from domain.errors import DomainError, LifecycleConflict, NotFound
from domain.thread import Approval, Thread, Usage

MAX_ATTEMPTS = 10


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class ThreadHandlers:
    """Every thread command, each one load → one domain method → save."""

    def __init__(self, repository: Repository, clock: Clock, workspace: WorkspaceResolver) -> None:
        self._repository = repository
        self._clock = clock
        self._workspace = workspace
        self._locks = StreamLocks()

    async def start_thread(self, command: StartThread, context: CommandContext) -> Saved:
        replayed = await self._repository.replay(context)
        if replayed is not None:
            return replayed
        thread_id = command.thread_id or new_id("thr")
        workspace = self._workspace(command.workspace) if command.workspace is not None else None
        thread = Thread(
            id=thread_id,
            workspace=workspace,
            title=command.title,
            metadata=command.metadata,
            timestamp=self._clock(),
        )
        return await self._repository.save(thread, context, {"thread_id": thread_id})

    async def start_turn(
        self, thread_id: str, command: StartTurn, context: CommandContext
    ) -> Saved:
        turn_id = command.turn_id or new_id("turn")

        def decide(thread: Thread) -> dict[str, Any]:
            thread.start_turn(
                turn_id=turn_id,
                input=command.input,
                executor_id=command.executor_id,
                auto_approve=command.auto_approve,
                trust_mode=command.trust_mode,
                now=self._clock(),
            )
            return {"thread_id": thread_id, "turn_id": turn_id}

        return await self._change(thread_id, context, decide)

    async def add_item(
        self, thread_id: str, turn_id: str, command: AddItem, context: CommandContext
    ) -> Saved:
        item_id = command.item_id or new_id("item")

        def decide(thread: Thread) -> dict[str, Any]:
            kind = thread.add_item(
                turn_id=turn_id,
                item_id=item_id,
                tool_name=command.tool_name,
                kind=command.kind,
                status=command.status,
                payload=command.payload,
                now=self._clock(),
                after_the_fact=command.after_the_fact,
            )
            return {"thread_id": thread_id, "turn_id": turn_id, "item_id": item_id, "kind": kind}

        return await self._change(thread_id, context, decide)

    async def set_item_status(
        self,
        thread_id: str,
        turn_id: str,
        item_id: str,
        command: SetItemStatus,
        context: CommandContext,
    ) -> Saved:
        def decide(thread: Thread) -> dict[str, Any]:
            thread.set_item_status(
                turn_id=turn_id, item_id=item_id, status=command.status, now=self._clock()
            )
            return {"item_id": item_id, "status": command.status}

        return await self._change(thread_id, context, decide)

    async def complete_turn(
        self, thread_id: str, turn_id: str, command: CompleteTurn, context: CommandContext
    ) -> Saved:
        def decide(thread: Thread) -> dict[str, Any]:
            thread.end_turn(
                turn_id=turn_id, status=command.status, error=command.error, now=self._clock()
            )
            turn = thread.turns[turn_id]
            return {"turn_id": turn_id, "status": turn.status, "duration_ms": turn.duration_ms}

        return await self._change(thread_id, context, decide)

    async def request_approval(
        self, thread_id: str, command: RequestApproval, context: CommandContext
    ) -> Saved:
        approval_id = command.approval_id or new_id("appr")

        def decide(thread: Thread) -> dict[str, Any]:
            thread.request_approval(
                approval_id=approval_id,
                turn_id=command.turn_id,
                item_id=command.item_id,
                approval_key=command.approval_key,
                requires_full_access=command.requires_full_access,
                now=self._clock(),
            )
            return _approval_body(thread_id, thread.approvals[approval_id])

        return await self._change(thread_id, context, decide)

    async def decide_approval(
        self, thread_id: str, approval_id: str, command: DecideApproval, context: CommandContext
    ) -> Saved:
        """Decided by the command's actor; refused for another turn, or once decided."""

        def decide(thread: Thread) -> dict[str, Any]:
            thread.decide_approval(
                approval_id=approval_id,
                turn_id=command.turn_id,
                decision=command.decision,
                remember_for_session=command.remember_for_session,
                actor=context.actor,
                now=self._clock(),
            )
            return _approval_body(thread_id, thread.approvals[approval_id])

        return await self._change(thread_id, context, decide)

    async def record_usage(
        self, thread_id: str, turn_id: str, command: RecordUsage, context: CommandContext
    ) -> Saved:
        usage = Usage(
            input_tokens=command.input_tokens,
            output_tokens=command.output_tokens,
            reasoning_tokens=command.reasoning_tokens,
            reasoning_replay_tokens=command.reasoning_replay_tokens,
            cost_usd=command.cost_usd,
            model=command.model,
        )

        def decide(thread: Thread) -> dict[str, Any]:
            thread.record_usage(
                turn_id=turn_id,
                usage=usage,
                now=self._clock(),
                after_the_fact=command.after_the_fact,
            )
            return {
                "thread_id": thread_id,
                "turn_id": turn_id,
                **asdict(usage),
                "total_tokens": usage.total_tokens,
            }

        return await self._change(thread_id, context, decide)

    async def change_workspace(
        self, thread_id: str, command: ChangeWorkspace, context: CommandContext
    ) -> Saved:
        """The path is resolved (and refused if it is no workspace) once the thread is found."""

        def decide(thread: Thread) -> dict[str, Any]:
            previous = thread.workspace
            workspace = self._workspace(command.workspace)
            thread.change_workspace(workspace=workspace, now=self._clock())
            return {
                "thread_id": thread_id,
                "workspace": workspace,
                "previous_workspace": previous,
            }

        return await self._change(thread_id, context, decide)

    async def archive(
        self, thread_id: str, command: ArchiveThread, context: CommandContext
    ) -> Saved:
        def decide(thread: Thread) -> dict[str, Any]:
            thread.archive(now=self._clock())
            return {"thread_id": thread_id, "status": thread.status}

        return await self._change(thread_id, context, decide)

    async def _change(
        self,
        thread_id: str,
        context: CommandContext,
        decide: Callable[[Thread], dict[str, Any]],
    ) -> Saved:
        replayed = await self._repository.replay(context)
        if replayed is not None:
            return replayed
        async with self._locks.hold(context.tenant, thread_id):
            # A cached thread is decided on unverified: its append at the cached version
            # is the check, and a refusal is decided again on the stored state.
            verify = not self._repository.is_cached(context.tenant, thread_id)
            for _ in range(MAX_ATTEMPTS):
                aggregate = await self._repository.checkout(
                    context.tenant, thread_id, verify=verify
                )
                thread = _as_thread(aggregate, thread_id)
                try:
                    try:
                        body = decide(thread)
                    except DomainError:
                        if verify:
                            raise
                        verify = True
                        continue
                    verify = True
                    try:
                        return await self._repository.save(thread, context, body)
                    except ConcurrencyConflict:
                        continue  # another Ledger instance appended first: decide again
                finally:
                    self._repository.give_back(context.tenant, thread)
        raise LifecycleConflict(f"thread {thread_id} is changing too fast; retry the command")

    async def load(self, tenant: str, thread_id: str) -> Thread:
        """The thread as stored, for reading only."""
        return _as_thread(await self._repository.load(tenant, thread_id), thread_id)


def _as_thread(aggregate: LedgerAggregate | None, thread_id: str) -> Thread:
    if not isinstance(aggregate, Thread):
        raise NotFound(f"no thread {thread_id}", thread_id=thread_id)
    return aggregate


def _approval_body(thread_id: str, approval: Approval) -> dict[str, Any]:
    """An approval as a command answers with it: ``status`` is its decision, or pending."""
    return {
        "thread_id": thread_id,
        "approval_id": approval.approval_id,
        "turn_id": approval.turn_id,
        "item_id": approval.item_id,
        "approval_key": approval.approval_key,
        "status": approval.decision or "pending",
        "decision": approval.decision,
        "actor": approval.actor,
        "remember_for_session": approval.remember_for_session,
    }
