"""Thread command bodies: ids, enumerations and unknown fields are checked at the edge."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from commands.thread_commands import (
    AddItem,
    CompleteTurn,
    SetItemStatus,
    StartThread,
    StartTurn,
)

BAD_IDS = ["thr 1", " thr_1", "thr_1 ", "a" * 200, "a" * 129, "", "-thr", ".thr", "thr/1", "thr\n"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    ("model", "field"),
    [
        (StartThread, "thread_id"),
        (StartTurn, "turn_id"),
        (StartTurn, "executor_id"),
        (AddItem, "item_id"),
    ],
)
def test_a_malformed_id_is_refused(model: type[BaseModel], field: str, bad: str) -> None:
    with pytest.raises(ValidationError):
        model.model_validate({field: bad})


@pytest.mark.parametrize("good", ["thr_1", "a", "a" * 128, "T1.x:y-z_", "0abc"])
def test_a_well_formed_id_is_accepted(good: str) -> None:
    assert StartThread(thread_id=good).thread_id == good
    assert StartTurn(turn_id=good).turn_id == good
    assert AddItem(item_id=good, kind="message").item_id == good


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (StartThread, {"thread_id": "thr_1", "colour": "red"}),
        (StartTurn, {"turn": "t1"}),
        (AddItem, {"kind": "message", "tool": "exec_shell"}),
        (SetItemStatus, {"status": "completed", "reason": "done"}),
        (CompleteTurn, {"status": "completed", "duration_ms": 5}),
    ],
)
def test_an_unknown_field_is_refused(model: type[BaseModel], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)

    assert any(error["type"] == "extra_forbidden" for error in refused.value.errors())


def test_every_field_is_optional_where_the_contract_says_so() -> None:
    assert StartThread() == StartThread(thread_id=None, workspace=None, title=None, metadata={})
    turn = StartTurn()
    assert (turn.turn_id, turn.auto_approve, turn.trust_mode) == (None, False, False)
    assert CompleteTurn().status == "completed"


@pytest.mark.parametrize("status", ["interrupted", "bogus", "Queued"])
def test_an_item_cannot_be_added_in_a_status_outside_the_contract(status: str) -> None:
    with pytest.raises(ValidationError):
        AddItem(kind="message", status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["queued", "interrupted", "done", ""])
def test_a_status_that_cannot_be_set_is_refused(status: str) -> None:
    with pytest.raises(ValidationError):
        SetItemStatus(status=status)  # type: ignore[arg-type]


def test_set_item_status_needs_a_status() -> None:
    with pytest.raises(ValidationError):
        SetItemStatus.model_validate({})


@pytest.mark.parametrize("status", ["in_progress", "cancelled"])
def test_a_turn_cannot_end_in_a_status_outside_the_contract(status: str) -> None:
    with pytest.raises(ValidationError):
        CompleteTurn(status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["Message", "1abc", "with space", "a" * 65, ""])
def test_a_malformed_kind_is_refused(kind: str) -> None:
    with pytest.raises(ValidationError):
        AddItem(kind=kind)


@pytest.mark.parametrize("tool_name", ["", "x" * 257])
def test_a_tool_name_must_be_1_to_256_characters(tool_name: str) -> None:
    with pytest.raises(ValidationError):
        AddItem(tool_name=tool_name)


def test_commands_are_frozen() -> None:
    command = StartTurn(turn_id="t1")

    with pytest.raises(ValidationError):
        command.turn_id = "t2"  # type: ignore[misc]
