"""Approvals: asked on the active turn, decided once, by the policy, the session or a person."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from commands.thread_commands import (
    AddItem,
    CompleteTurn,
    DecideApproval,
    RequestApproval,
    StartThread,
    StartTurn,
)
from commands.thread_handlers import ThreadHandlers
from domain.approval_policy import auto_decision
from domain.errors import LifecycleConflict, NotFound
from domain.thread_events import ApprovalDecided, ApprovalRequested
from tests.unit.builders import add_item, at, new_thread
from tests.unit.fake_repository import InMemoryRepository, context, handlers_over


@pytest.fixture
def repository() -> InMemoryRepository:
    return InMemoryRepository()


@pytest.fixture
def handlers(repository: InMemoryRepository, tmp_path: Path) -> ThreadHandlers:
    return handlers_over(repository, tmp_path)


async def open_turn(
    handlers: ThreadHandlers, *, auto_approve: bool = False, trust_mode: bool = False
) -> None:
    """thr_1 with an active turn t1 holding a tool item i1."""
    await handlers.start_thread(StartThread(thread_id="thr_1"), context())
    turn = StartTurn(turn_id="t1", auto_approve=auto_approve, trust_mode=trust_mode)
    await handlers.start_turn("thr_1", turn, context())
    await handlers.add_item("thr_1", "t1", AddItem(item_id="i1", tool_name="exec_shell"), context())


def ask(approval_id: str = "a1", **fields: object) -> RequestApproval:
    return RequestApproval.model_validate(
        {"approval_id": approval_id, "turn_id": "t1", "item_id": "i1", **fields}
    )


def decision(
    turn_id: str = "t1", verdict: str = "approve", remember: bool = False
) -> DecideApproval:
    return DecideApproval.model_validate(
        {"turn_id": turn_id, "decision": verdict, "remember_for_session": remember}
    )


# the policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auto_approve", "trust_mode", "requires_full_access", "expected"),
    [
        (True, False, False, "approve"),
        (True, True, False, "approve"),
        (True, True, True, "retry_with_full_access"),
        (True, False, True, "deny"),
        (False, False, False, None),
        (False, True, True, None),
    ],
)
def test_the_policy_decides_only_for_auto_approve_turns(
    auto_approve: bool, trust_mode: bool, requires_full_access: bool, expected: str | None
) -> None:
    assert (
        auto_decision(
            auto_approve=auto_approve,
            trust_mode=trust_mode,
            requires_full_access=requires_full_access,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("trust_mode", "requires_full_access", "expected"),
    [
        (False, False, "approve"),
        (True, True, "retry_with_full_access"),
        (False, True, "deny"),
    ],
)
async def test_an_auto_approve_turn_has_its_approval_decided_at_once_by_the_policy(
    handlers: ThreadHandlers,
    repository: InMemoryRepository,
    trust_mode: bool,
    requires_full_access: bool,
    expected: str,
) -> None:
    await open_turn(handlers, auto_approve=True, trust_mode=trust_mode)

    saved = await handlers.request_approval(
        "thr_1", ask(requires_full_access=requires_full_access), context()
    )

    assert saved.body["status"] == saved.body["decision"] == expected
    assert saved.body["actor"] == "policy"
    appended = repository.events("thr_1")[-1].event
    assert isinstance(appended, ApprovalRequested)  # one event carries request and decision
    assert (appended.decision, appended.actor) == (expected, "policy")
    assert repository.types("thr_1")[-1:] == ["ApprovalRequested"]
    thread = await handlers.load("default", "thr_1")
    assert thread.pending_approvals == []
    assert thread.approvals["a1"].decided_at is not None


async def test_without_auto_approve_the_approval_waits_for_a_person(
    handlers: ThreadHandlers,
) -> None:
    await open_turn(handlers)

    saved = await handlers.request_approval("thr_1", ask(approval_key="shell:ls"), context())

    assert saved.body["status"] == "pending"
    assert (saved.body["decision"], saved.body["actor"]) == (None, None)
    thread = await handlers.load("default", "thr_1")
    assert [a.approval_id for a in thread.pending_approvals] == ["a1"]
    assert thread.approvals["a1"].approval_key == "shell:ls"


async def test_an_approval_without_an_id_gets_one(handlers: ThreadHandlers) -> None:
    await open_turn(handlers)

    saved = await handlers.request_approval("thr_1", RequestApproval(turn_id="t1"), context())

    assert saved.body["approval_id"].startswith("appr_")
    assert saved.body["item_id"] is None


# a person decides -------------------------------------------------------------------------


async def test_the_decision_is_made_by_the_commands_actor(
    handlers: ThreadHandlers, repository: InMemoryRepository
) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask(), context())

    saved = await handlers.decide_approval(
        "thr_1", "a1", decision(verdict="deny"), context(actor="alice")
    )

    assert (saved.body["status"], saved.body["actor"]) == ("deny", "alice")
    appended = repository.events("thr_1")[-1]
    assert isinstance(appended.event, ApprovalDecided)
    assert (appended.event.actor, appended.context.actor) == ("alice", "alice")
    thread = await handlers.load("default", "thr_1")
    assert thread.pending_approvals == []
    assert thread.approvals["a1"].decision == "deny"


async def test_remembered_for_session_the_same_key_is_approved_at_once_by_the_session(
    handlers: ThreadHandlers, repository: InMemoryRepository
) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask("a1", approval_key="shell:ls"), context())
    await handlers.decide_approval("thr_1", "a1", decision(remember=True), context("alice"))

    same = await handlers.request_approval("thr_1", ask("a2", approval_key="shell:ls"), context())
    other = await handlers.request_approval("thr_1", ask("a3", approval_key="shell:rm"), context())

    assert (same.body["status"], same.body["actor"]) == ("approve", "session")
    assert other.body["status"] == "pending"
    assert repository.types("thr_1")[-2:] == ["ApprovalRequested", "ApprovalRequested"]


async def test_a_denial_or_an_approval_not_remembered_is_not_reused(
    handlers: ThreadHandlers,
) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask("a1", approval_key="k"), context())
    await handlers.decide_approval(
        "thr_1", "a1", decision(verdict="deny", remember=True), context()
    )
    await handlers.request_approval("thr_1", ask("a2", approval_key="k"), context())
    await handlers.decide_approval("thr_1", "a2", decision(), context())

    again = await handlers.request_approval("thr_1", ask("a3", approval_key="k"), context())

    assert again.body["status"] == "pending"


async def test_decision_for_other_turn_leaves_approval_pending_and_appends_nothing(
    handlers: ThreadHandlers, repository: InMemoryRepository
) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask(), context())
    before = repository.events("thr_1")

    with pytest.raises(LifecycleConflict) as refused:
        await handlers.decide_approval("thr_1", "a1", decision(turn_id="t9"), context())

    assert refused.value.message == (
        "pending approval scope mismatch for a1: expected thread thr_1 turn t1,"
        " URL had thread thr_1 turn t9"
    )
    assert repository.events("thr_1") == before
    thread = await handlers.load("default", "thr_1")
    assert [a.approval_id for a in thread.pending_approvals] == ["a1"]
    # and the right turn may still decide it
    saved = await handlers.decide_approval("thr_1", "a1", decision(), context())
    assert saved.body["status"] == "approve"


async def test_an_approval_is_decided_once(
    handlers: ThreadHandlers, repository: InMemoryRepository
) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask(), context())
    await handlers.decide_approval("thr_1", "a1", decision(), context())
    before = repository.events("thr_1")

    with pytest.raises(NotFound, match=r"^no pending approval for a1$"):
        await handlers.decide_approval("thr_1", "a1", decision(verdict="deny"), context())

    assert repository.events("thr_1") == before


async def test_a_policy_decision_cannot_be_decided_again(handlers: ThreadHandlers) -> None:
    await open_turn(handlers, auto_approve=True)
    await handlers.request_approval("thr_1", ask(), context())

    with pytest.raises(NotFound, match="no pending approval for a1"):
        await handlers.decide_approval("thr_1", "a1", decision(verdict="deny"), context())


async def test_an_unknown_approval_is_not_found(handlers: ThreadHandlers) -> None:
    await open_turn(handlers)

    with pytest.raises(NotFound, match=r"^no pending approval for nope$"):
        await handlers.decide_approval("thr_1", "nope", decision(), context())


async def test_approvals_belong_to_their_thread(handlers: ThreadHandlers) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask(), context())
    await handlers.start_thread(StartThread(thread_id="thr_2"), context())
    await handlers.start_turn("thr_2", StartTurn(turn_id="t1"), context())

    with pytest.raises(NotFound, match="no pending approval for a1"):
        await handlers.decide_approval("thr_2", "a1", decision(), context())


# asking -------------------------------------------------------------------------------------


async def test_asking_on_an_ended_turn_is_a_conflict(handlers: ThreadHandlers) -> None:
    await open_turn(handlers)
    await handlers.complete_turn("thr_1", "t1", CompleteTurn(), context())

    with pytest.raises(LifecycleConflict, match="not active"):
        await handlers.request_approval("thr_1", ask(), context())


async def test_asking_for_an_unknown_turn_or_item_is_not_found(handlers: ThreadHandlers) -> None:
    await open_turn(handlers)

    with pytest.raises(NotFound):
        await handlers.request_approval("thr_1", ask(turn_id="t9"), context())
    with pytest.raises(NotFound):
        await handlers.request_approval("thr_1", ask(item_id="i9"), context())


async def test_an_approval_id_is_used_once_per_thread(handlers: ThreadHandlers) -> None:
    await open_turn(handlers)
    await handlers.request_approval("thr_1", ask(), context())

    with pytest.raises(LifecycleConflict, match="already has an approval a1"):
        await handlers.request_approval("thr_1", ask(), context())


def test_refusals_leave_nothing_pending_on_the_aggregate() -> None:
    thread = new_thread()
    thread.start_turn(
        turn_id="t1", input=None, executor_id=None, auto_approve=False, trust_mode=False, now=at(1)
    )
    add_item(thread)
    thread.request_approval(
        approval_id="a1",
        turn_id="t1",
        item_id="i1",
        approval_key=None,
        requires_full_access=False,
        now=at(3),
    )
    version = thread.version

    with pytest.raises(LifecycleConflict):
        thread.decide_approval(
            approval_id="a1",
            turn_id="t2",
            decision="approve",
            remember_for_session=False,
            actor="bob",
            now=at(4),
        )

    assert thread.version == version
    assert thread.approvals["a1"].pending
    assert len(thread.collect_events()) == 4  # started, turn, item, approval


# the command bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "approve"},
        {"turn_id": "t1"},
        {"turn_id": "t1", "decision": "retry_with_full_access"},
        {"turn_id": "t1", "decision": "maybe"},
        {"turn_id": "t1", "decision": "approve", "actor": "mallory"},
    ],
)
def test_a_decision_body_outside_the_contract_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DecideApproval.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"turn_id": "bad id"},
        {"turn_id": "t1", "approval_key": ""},
        {"turn_id": "t1", "decision": "approve"},
    ],
)
def test_an_approval_request_outside_the_contract_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RequestApproval.model_validate(body)
