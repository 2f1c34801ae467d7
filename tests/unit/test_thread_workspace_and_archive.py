"""Changing a thread's workspace (a real directory inside the root, never mid-turn) and
archiving it (only when idle; an archived thread takes no new turns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands.thread_commands import (
    AddItem,
    ArchiveThread,
    ChangeWorkspace,
    CompleteTurn,
    RecordUsage,
    StartThread,
    StartTurn,
)
from commands.thread_handlers import ThreadHandlers
from domain.errors import InvalidCommand, LifecycleConflict, NotFound
from tests.unit.fake_repository import InMemoryRepository, context, handlers_over


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for name in ("proj/a", "proj/b"):
        (root / name).mkdir(parents=True)
    (root / "notes.txt").write_text("a file")
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    return root.resolve()


@pytest.fixture
def repository() -> InMemoryRepository:
    return InMemoryRepository()


@pytest.fixture
def handlers(repository: InMemoryRepository, root: Path) -> ThreadHandlers:
    return handlers_over(repository, root)


@pytest.fixture
async def thread(handlers: ThreadHandlers) -> str:
    await handlers.start_thread(StartThread(thread_id="thr_1", workspace="proj/a"), context())
    return "thr_1"


async def move(handlers: ThreadHandlers, workspace: str) -> dict[str, Any]:
    saved = await handlers.change_workspace(
        "thr_1", ChangeWorkspace(workspace=workspace), context()
    )
    return saved.body


# workspace -------------------------------------------------------------------------------


async def test_the_workspace_changes_to_the_canonical_directory(
    handlers: ThreadHandlers, repository: InMemoryRepository, root: Path, thread: str
) -> None:
    body = await move(handlers, "  proj/b/../b ")

    assert body["workspace"] == str(root / "proj" / "b")
    assert body["previous_workspace"] == str(root / "proj" / "a")
    assert (await handlers.load("default", thread)).workspace == str(root / "proj" / "b")
    assert repository.types(thread)[-1] == "WorkspaceChanged"


async def test_empty_workspace_is_the_root(
    handlers: ThreadHandlers, root: Path, thread: str
) -> None:
    assert (await move(handlers, ""))["workspace"] == str(root)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("proj/missing", "does not exist"),
        ("notes.txt", "not a directory"),
        ("../outside", "outside the workspace root"),
        ("escape", "outside the workspace root"),
    ],
    ids=["missing", "a-file", "outside", "symlink-escape"],
)
async def test_a_path_that_is_no_workspace_is_invalid_and_appends_nothing(
    handlers: ThreadHandlers, repository: InMemoryRepository, thread: str, raw: str, reason: str
) -> None:
    before = repository.events(thread)

    with pytest.raises(InvalidCommand, match=reason):
        await move(handlers, raw)

    assert repository.events(thread) == before


async def test_the_workspace_cannot_change_during_a_turn(
    handlers: ThreadHandlers, repository: InMemoryRepository, thread: str
) -> None:
    await handlers.start_turn(thread, StartTurn(turn_id="t1"), context())
    before = repository.events(thread)

    with pytest.raises(LifecycleConflict, match="active turn"):
        await move(handlers, "proj/b")

    assert repository.events(thread) == before
    await handlers.complete_turn(thread, "t1", CompleteTurn(), context())
    assert (await move(handlers, "proj/b"))["workspace"].endswith("proj/b")


async def test_moving_to_the_same_workspace_is_a_conflict(
    handlers: ThreadHandlers, thread: str
) -> None:
    with pytest.raises(LifecycleConflict, match="already uses workspace"):
        await move(handlers, "proj/a")


async def test_the_workspace_of_an_unknown_thread_is_not_found(handlers: ThreadHandlers) -> None:
    with pytest.raises(NotFound):
        await move(handlers, "proj/b")


# archive ---------------------------------------------------------------------------------


async def test_an_idle_thread_is_archived(
    handlers: ThreadHandlers, repository: InMemoryRepository, thread: str
) -> None:
    saved = await handlers.archive(thread, ArchiveThread(), context())

    assert saved.body["status"] == "archived"
    assert (await handlers.load("default", thread)).status == "archived"
    assert repository.types(thread)[-1] == "ThreadArchived"


async def test_a_thread_with_an_active_turn_cannot_be_archived(
    handlers: ThreadHandlers, repository: InMemoryRepository, thread: str
) -> None:
    await handlers.start_turn(thread, StartTurn(turn_id="t1"), context())
    before = repository.events(thread)

    with pytest.raises(LifecycleConflict, match="active turn t1"):
        await handlers.archive(thread, ArchiveThread(), context())

    assert repository.events(thread) == before


async def test_an_archived_thread_refuses_new_turns_workspace_changes_and_a_second_archive(
    handlers: ThreadHandlers, repository: InMemoryRepository, thread: str
) -> None:
    await handlers.archive(thread, ArchiveThread(), context())
    before = repository.events(thread)

    with pytest.raises(LifecycleConflict, match="archived"):
        await handlers.start_turn(thread, StartTurn(turn_id="t1"), context())
    with pytest.raises(LifecycleConflict, match="archived"):
        await move(handlers, "proj/b")
    with pytest.raises(LifecycleConflict, match="archived"):
        await handlers.archive(thread, ArchiveThread(), context())

    assert repository.events(thread) == before


async def test_history_is_added_to_an_ended_turn_when_asked_after_the_fact(
    handlers: ThreadHandlers, thread: str
) -> None:
    await handlers.start_turn(thread, StartTurn(turn_id="t1"), context())
    await handlers.complete_turn(thread, "t1", CompleteTurn(), context())

    late = AddItem(item_id="i1", kind="message", after_the_fact=True)
    await handlers.add_item(thread, "t1", late, context())
    await handlers.record_usage(
        thread,
        "t1",
        RecordUsage(input_tokens=1, output_tokens=1, after_the_fact=True),
        context(),
    )

    ended = await handlers.load("default", thread)
    assert ended.turns["t1"].item_ids == ["i1"]
    assert ended.items["i1"].status == "queued"
    assert ended.usage.total_tokens == 2


async def test_an_item_on_an_ended_turn_needs_after_the_fact(
    handlers: ThreadHandlers, thread: str
) -> None:
    await handlers.start_turn(thread, StartTurn(turn_id="t1"), context())
    await handlers.complete_turn(thread, "t1", CompleteTurn(), context())

    with pytest.raises(LifecycleConflict, match="not active"):
        await handlers.add_item(thread, "t1", AddItem(item_id="i1", kind="message"), context())
