"""Usage: tokens and cost per usage scope, for grouping by model, day, thread or run.

One row per (tenant, stream_type, stream_id, scope_id). For threads the scope is
a turn (``scope_kind`` ``turn``, ``scope_id`` the turn id); for runs it is a node
(``node``, ``scope_id`` the node's task id), from ``NodeUsageRecorded``.

A usage record is the scope's usage so far: a later record for the same scope
replaces the figures and the model, but keeps ``day`` (the UTC date of the
scope's first record), so a replacement never moves usage from one day to another.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from projections.base import ProjectedEvent, Session, Table, upsert

USAGE = Table(
    "usage_records",
    "tenant text NOT NULL, stream_type text NOT NULL, stream_id text NOT NULL,"
    " scope_id text NOT NULL, scope_kind text NOT NULL, model text,"
    " input_tokens bigint NOT NULL, output_tokens bigint NOT NULL,"
    " reasoning_tokens bigint NOT NULL, reasoning_replay_tokens bigint NOT NULL,"
    " cost_usd double precision NOT NULL, day text NOT NULL,"
    " first_position bigint NOT NULL, last_position bigint NOT NULL,"
    " PRIMARY KEY (tenant, stream_type, stream_id, scope_id)",
    indexes=("tenant, day", "tenant, model"),
)
USAGE_EVENTS = frozenset({"UsageRecorded", "NodeUsageRecorded"})
TOKEN_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens", "reasoning_replay_tokens")


def usage_scope(stream_type: str, data: dict[str, Any]) -> tuple[str, str]:
    """(scope_kind, scope_id) of a usage record: its turn, its node, else its whole stream."""
    if isinstance(data.get("turn_id"), str):
        return "turn", data["turn_id"]
    for node_key in ("node_id", "task_id"):
        if isinstance(data.get(node_key), str):
            return "node", data[node_key]
    return stream_type, ""


def usage_day(event: ProjectedEvent) -> str:
    """The UTC date of the event, ``YYYY-MM-DD``."""
    return event.recorded_at.astimezone(UTC).date().isoformat()


COLUMNS = (
    "tenant",
    "stream_type",
    "stream_id",
    "scope_id",
    "scope_kind",
    "model",
    *TOKEN_FIELDS,
    "cost_usd",
    "day",
    "first_position",
    "last_position",
)
REPLACED = ("model", *TOKEN_FIELDS, "cost_usd", "last_position")
"""What a later record of a scope replaces (its kind, day and first position stay)."""
KEPT = tuple(COLUMNS.index(column) for column in ("scope_kind", "day", "first_position"))


def _values(event: ProjectedEvent) -> tuple[Any, ...]:
    data = event.data
    kind, scope_id = usage_scope(event.stream_type, data)
    model = data.get("model")
    return (
        event.tenant,
        event.stream_type,
        event.stream_id,
        scope_id,
        kind,
        model if isinstance(model, str) else None,
        *(int(data.get(field) or 0) for field in TOKEN_FIELDS),
        float(data.get("cost_usd") or 0.0),
        usage_day(event),
        event.position,
        event.position,
    )


class UsageProjection:
    name = "usage"
    tables: tuple[Table, ...] = (USAGE,)

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        self.apply_page(session, (event,), names)

    def apply_page(
        self, session: Session, events: Sequence[ProjectedEvent], names: dict[str, str]
    ) -> None:
        """One upsert per page: a scope recorded twice in the page merges in memory first."""
        rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for event in events:
            if event.type not in USAGE_EVENTS:
                continue
            values = _values(event)
            earlier = rows.get(values[:4])
            if earlier is not None:
                kept = {index: earlier[index] for index in KEPT}
                values = tuple(kept.get(i, value) for i, value in enumerate(values))
            rows[values[:4]] = values
        upsert(session, USAGE, names["usage_records"], COLUMNS, 4, list(rows.values()), REPLACED)
