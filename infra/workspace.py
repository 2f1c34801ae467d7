"""Workspace paths: trimmed, joined to the configured root, canonical, an existing directory
inside the root (symlinks resolved before the check, so a link cannot escape)."""

from __future__ import annotations

from pathlib import Path

from domain.errors import InvalidCommand


class WorkspaceRoot:
    """Resolves client-given workspace paths against one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __call__(self, raw: str | None) -> str:
        trimmed = (raw or "").strip()
        if "\x00" in trimmed:
            raise InvalidCommand("workspace path contains a NUL character")
        candidate = self.root if trimmed in ("", ".") else self.root / trimmed
        try:
            canonical = candidate.resolve(strict=True)
        except (OSError, RuntimeError) as error:
            raise InvalidCommand(
                f"workspace path does not exist or is not reachable: {candidate}",
                workspace=str(candidate),
            ) from error
        if not canonical.is_dir():
            raise InvalidCommand(
                f"workspace path is not a directory: {canonical}", workspace=str(canonical)
            )
        if canonical != self.root and self.root not in canonical.parents:
            raise InvalidCommand(
                f"workspace path is outside the workspace root {self.root}: {canonical}",
                workspace=str(canonical),
            )
        return str(canonical)
