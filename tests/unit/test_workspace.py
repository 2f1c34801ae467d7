"""Workspace paths: trimmed, joined to the root, canonical, an existing directory inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import InvalidCommand
from infra.workspace import WorkspaceRoot


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "proj" / "a").mkdir(parents=True)
    (root / "notes.txt").write_text("not a directory")
    (tmp_path / "outside").mkdir()
    return root.resolve()


@pytest.fixture
def resolve(root: Path) -> WorkspaceRoot:
    return WorkspaceRoot(root)


@pytest.mark.parametrize("raw", [None, "", ".", "   ", " . "])
def test_empty_or_dot_is_the_root(resolve: WorkspaceRoot, root: Path, raw: str | None) -> None:
    assert resolve(raw) == str(root)


def test_a_relative_path_joins_the_root(resolve: WorkspaceRoot, root: Path) -> None:
    assert resolve("proj/a") == str(root / "proj" / "a")


def test_the_path_is_trimmed(resolve: WorkspaceRoot, root: Path) -> None:
    assert resolve("  proj/a \n") == str(root / "proj" / "a")


def test_a_path_with_dot_dot_inside_the_root_is_canonicalised(
    resolve: WorkspaceRoot, root: Path
) -> None:
    assert resolve("proj/a/../a/./") == str(root / "proj" / "a")


def test_an_absolute_path_inside_the_root_is_accepted(resolve: WorkspaceRoot, root: Path) -> None:
    assert resolve(str(root / "proj")) == str(root / "proj")


def test_a_missing_path_is_invalid(resolve: WorkspaceRoot) -> None:
    with pytest.raises(InvalidCommand, match="does not exist"):
        resolve("proj/missing")


def test_a_path_naming_a_file_is_invalid(resolve: WorkspaceRoot) -> None:
    with pytest.raises(InvalidCommand, match="not a directory"):
        resolve("notes.txt")


def test_an_absolute_path_outside_the_root_is_invalid(
    resolve: WorkspaceRoot, tmp_path: Path
) -> None:
    with pytest.raises(InvalidCommand, match="outside the workspace root"):
        resolve(str(tmp_path / "outside"))


def test_climbing_out_of_the_root_is_invalid(resolve: WorkspaceRoot) -> None:
    with pytest.raises(InvalidCommand, match="outside the workspace root"):
        resolve("../outside")


def test_a_sibling_whose_name_starts_like_the_root_is_outside(
    tmp_path: Path, root: Path, resolve: WorkspaceRoot
) -> None:
    sibling = tmp_path / "root-evil"
    sibling.mkdir()

    with pytest.raises(InvalidCommand, match="outside the workspace root"):
        resolve(str(sibling))


def test_a_symlink_inside_the_root_pointing_outside_is_invalid(
    resolve: WorkspaceRoot, root: Path, tmp_path: Path
) -> None:
    (root / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)

    with pytest.raises(InvalidCommand, match="outside the workspace root"):
        resolve("escape")


def test_a_symlink_pointing_inside_resolves_to_its_target(
    resolve: WorkspaceRoot, root: Path
) -> None:
    (root / "shortcut").symlink_to(root / "proj" / "a", target_is_directory=True)

    assert resolve("shortcut") == str(root / "proj" / "a")


def test_a_dangling_symlink_is_invalid(resolve: WorkspaceRoot, root: Path) -> None:
    (root / "dangling").symlink_to(root / "gone", target_is_directory=True)

    with pytest.raises(InvalidCommand):
        resolve("dangling")


def test_a_symlink_loop_is_invalid(resolve: WorkspaceRoot, root: Path) -> None:
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")

    with pytest.raises(InvalidCommand):
        resolve("loop_a")


def test_a_nul_character_is_invalid(resolve: WorkspaceRoot) -> None:
    with pytest.raises(InvalidCommand):
        resolve("proj\x00a")


def test_a_root_given_through_a_symlink_is_canonicalised(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "root-link"
    link.symlink_to(root, target_is_directory=True)

    resolve = WorkspaceRoot(link)

    assert resolve(".") == str(root)
    assert resolve("proj/a") == str(root / "proj" / "a")


def test_a_relative_root_resolves_against_the_working_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root.parent)

    resolve = WorkspaceRoot(Path("root"))

    assert resolve("proj") == str(root / "proj")
