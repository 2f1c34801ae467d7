"""What a projection is: tables it owns, and how events change them.

SQL is written once for both databases, with ``%s`` placeholders and upserts
(``ON CONFLICT … DO UPDATE``) that PostgreSQL and SQLite share. Table names are
written as ``{name}`` and filled in by the runner, so a rebuild can write into
fresh tables while the live ones keep serving.

A projection changes rows for one event (``apply``) and may also offer
``apply_page``: the same changes for a page of events at once (typically folded
in memory, then written with a few statements per page instead of one or more
per event). The runner applies a page through :func:`apply_page`, which falls
back to ``apply`` event by event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson


class ProjectedEvent:
    """An event as projections see it: envelope plus data.

    ``data`` and ``metadata`` may be given as stored JSON; they are decoded on
    first use, so a projection pays nothing for the fields it does not read.
    """

    __slots__ = (
        "_data",
        "_metadata",
        "class_version",
        "position",
        "recorded_at",
        "seq",
        "stream_id",
        "stream_type",
        "tenant",
        "type",
    )

    def __init__(
        self,
        *,
        tenant: str,
        stream_type: str,
        stream_id: str,
        seq: int,
        position: int,
        type: str,
        data: dict[str, Any] | bytes,
        metadata: dict[str, Any] | bytes,
        recorded_at: datetime,
        class_version: int = 1,
    ) -> None:
        self.tenant = tenant
        self.stream_type = stream_type
        self.stream_id = stream_id
        self.seq = seq
        self.position = position
        self.type = type
        self.recorded_at = recorded_at
        self.class_version = class_version
        """The event class's version when it was written (folds upcast older shapes)."""
        self._data = data
        self._metadata = metadata

    @property
    def data(self) -> dict[str, Any]:
        if isinstance(self._data, bytes):
            self._data = _object(self._data)
        return self._data

    @property
    def metadata(self) -> dict[str, Any]:
        if isinstance(self._metadata, bytes):
            self._metadata = _object(self._metadata)
        return self._metadata

    def __repr__(self) -> str:
        return (
            f"ProjectedEvent({self.tenant}/{self.stream_id} seq {self.seq}"
            f" position {self.position} {self.type})"
        )


def _object(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise TypeError(f"stored event JSON is not an object: {raw[:40]!r}")
    return value


class Session(Protocol):
    """One transaction of the projection's database."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many parameter rows (pipelined on PostgreSQL)."""
        ...

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


class PageProjection(Projection, Protocol):
    """A projection that can also apply a page of events at once."""

    def apply_page(
        self, session: Session, events: Sequence[ProjectedEvent], names: dict[str, str]
    ) -> None:
        """Change the rows exactly as ``apply`` would for each event in order.

        On an error nothing of the page is kept (the runner rolls the
        transaction back and finds the failing event by applying one at a time).
        """


def apply_page(
    projection: Projection,
    session: Session,
    events: Sequence[ProjectedEvent],
    names: dict[str, str],
) -> None:
    """Apply ``events`` in order: by the projection's ``apply_page`` if it has one."""
    page = getattr(projection, "apply_page", None)
    if page is not None:
        page(session, events, names)
        return
    for event in events:
        projection.apply(session, event, names)


def keys_in(
    session: Session, columns: Sequence[str], keys: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """A condition ``(columns) IN …`` matching ``keys``, and its parameters.

    PostgreSQL gets one array per column (the statement's text is the same for
    any number of keys, so it is parsed and planned once); SQLite a row-value list.
    """
    names = ", ".join(columns)
    if session.dialect == "postgres":
        arrays = ", ".join("%b::text[]" for _ in columns)
        return f"({names}) IN (SELECT * FROM unnest({arrays}))", _by_column(keys, len(columns))
    row = "(" + ", ".join("%s" for _ in columns) + ")"
    return f"({names}) IN (VALUES {', '.join(row for _ in keys)})", [v for k in keys for v in k]


def upsert(
    session: Session,
    table: Table,
    physical: str,
    columns: Sequence[str],
    key: int,
    rows: Sequence[Sequence[Any]],
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (values in ``columns`` order), or replace the columns ``update``
    (by default every non-key column) of those whose key (the first ``key`` columns)
    exists. Keys must be distinct.

    PostgreSQL: one statement taking one array per column (one round trip, planned
    once); SQLite: the single-row upsert for each row (``executemany``).
    """
    if not rows:
        return
    replaced = columns[key:] if update is None else update
    updates = ", ".join(f"{column} = excluded.{column}" for column in replaced)
    conflict = f" ON CONFLICT ({', '.join(columns[:key])}) DO UPDATE SET {updates}"
    if session.dialect == "postgres":
        types = column_types(table)
        arrays = ", ".join(f"%b::{types[column]}[]" for column in columns)  # binary arrays
        session.execute(
            f"INSERT INTO {physical} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
            + conflict,
            _by_column(rows, len(columns)),
        )
        return
    session.executemany(
        f"INSERT INTO {physical} ({', '.join(columns)})"
        f" VALUES ({', '.join('%s' for _ in columns)})" + conflict,
        rows,
    )


def _by_column(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[index] for row in rows] for index in range(width)]


_CONSTRAINTS = (" NOT NULL", " DEFAULT ", " PRIMARY KEY", " REFERENCES ", " UNIQUE", " CHECK")


def column_types(table: Table) -> dict[str, str]:
    """Each column's SQL type, read from the table's shared column definitions."""
    types: dict[str, str] = {}
    for part in table.columns.split(", "):
        definition = part.strip()
        if definition.upper().startswith(("PRIMARY KEY", "UNIQUE", "CHECK", "FOREIGN KEY")):
            break
        name, _, rest = definition.partition(" ")
        ends = [rest.find(word) for word in _CONSTRAINTS if word in rest]
        types[name] = rest[: min(ends)] if ends else rest
    return types
