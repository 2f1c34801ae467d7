"""Which kind of item a tool call is, from the tool's name."""

from __future__ import annotations

COMMAND_TOOLS = frozenset({"exec_shell", "exec_shell_wait", "exec_shell_interact"})
FILE_CHANGE_MARKERS = ("patch", "write", "edit")


def kind_for_tool(tool_name: str) -> str:
    """``command_execution`` for exactly the shell tools (any case), ``file_change`` for
    names containing patch/write/edit, else ``tool_call``."""
    lower = tool_name.lower()
    if lower in COMMAND_TOOLS:
        return "command_execution"
    if any(marker in lower for marker in FILE_CHANGE_MARKERS):
        return "file_change"
    return "tool_call"
