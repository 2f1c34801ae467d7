"""What a projection is: tables it owns, and how one event changes them.

SQL is written once for both databases, with ``%s`` placeholders and upserts
(``ON CONFLICT … DO UPDATE``) that PostgreSQL and SQLite share. Table names are
written as ``{name}`` and filled in by the runner, so a rebuild can write into
fresh tables while the live ones keep serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ProjectedEvent:
    """An event as projections see it: envelope plus decoded data."""

    tenant: str
    stream_type: str
    stream_id: str
    seq: int
    position: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    class_version: int = 1
    """The event class's version when it was written (folds upcast older shapes)."""


class Session(Protocol):
    """One transaction of the projection's database."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class Table:
    """A table a projection owns: its columns (shared SQL) and its key."""

    name: str
    columns: str
    indexes: tuple[str, ...] = ()


class Projection(Protocol):
    """A read model built from the log."""

    name: str
    tables: tuple[Table, ...]

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        """Change the rows for one event; ``names`` maps each table to its physical name."""
