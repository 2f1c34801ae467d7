"""Which kind an item is, from its tool name (or the kind given when there is no tool)."""

from __future__ import annotations

import pytest

from domain.item_kind import kind_for_tool
from domain.thread import Thread
from tests.unit.builders import add_item, new_thread, start_turn


@pytest.fixture
def thread() -> Thread:
    thread = new_thread()
    start_turn(thread, "t1")
    return thread


@pytest.mark.parametrize(
    "tool_name",
    [
        "exec_shell",
        "exec_shell_wait",
        "exec_shell_interact",
        "EXEC_SHELL_WAIT",
        "Exec_Shell_Interact",
        "Exec_Shell",
    ],
)
def test_shell_tools_in_any_case_are_command_executions(tool_name: str) -> None:
    assert kind_for_tool(tool_name) == "command_execution"


@pytest.mark.parametrize(
    "tool_name", ["exec_shell_foo", "exec_shel", "my_exec_shell", "exec", "shell", "exec-shell"]
)
def test_names_that_only_resemble_a_shell_tool_are_tool_calls(tool_name: str) -> None:
    assert kind_for_tool(tool_name) == "tool_call"


@pytest.mark.parametrize(
    "tool_name",
    [
        "apply_patch",
        "WriteFile",
        "str_replace_edit",
        "PATCH",
        "edit",
        "write_stdin",
        "notebook_Edit",
        "overwrite",
    ],
)
def test_names_containing_patch_write_or_edit_are_file_changes(tool_name: str) -> None:
    assert kind_for_tool(tool_name) == "file_change"


@pytest.mark.parametrize("tool_name", ["read_file", "search", "web_fetch", "grep", "ls"])
def test_other_tools_are_tool_calls(tool_name: str) -> None:
    assert kind_for_tool(tool_name) == "tool_call"


@pytest.mark.parametrize("kind", ["message", "reasoning"])
def test_item_without_a_tool_takes_the_kind_given(thread: Thread, kind: str) -> None:
    returned = add_item(thread, "i1", tool_name=None, kind=kind)

    assert returned == kind
    assert thread.item("t1", "i1").kind == kind
    assert thread.item("t1", "i1").tool_name is None


@pytest.mark.parametrize(
    ("tool_name", "expected"),
    [
        ("Exec_Shell_Interact", "command_execution"),
        ("apply_patch", "file_change"),
        ("web_search", "tool_call"),
    ],
)
def test_item_with_a_tool_takes_its_kind_from_the_tool(
    thread: Thread, tool_name: str, expected: str
) -> None:
    returned = add_item(thread, "i1", tool_name=tool_name, kind="message")

    assert returned == expected
    item = thread.item("t1", "i1")
    assert item.kind == expected
    assert item.tool_name == tool_name
    assert thread.collect_events()[-1].kind == expected  # type: ignore[attr-defined]
