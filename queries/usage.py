"""Named SQL over the usage read model: tokens and cost summed by model, day, thread or run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any, Literal

from domain.costs import rounded_cost

Fetch = Callable[[str, Sequence[object]], Awaitable[list[tuple[Any, ...]]]]
GroupBy = Literal["model", "day", "thread", "run", "node"]

GROUP_KEYS: dict[str, tuple[str, str | None]] = {
    "model": ("model", None),
    "day": ("day", None),
    "thread": ("stream_id", "thread"),
    "run": ("stream_id", "run"),
    "node": ("stream_id || '/' || scope_id", "run"),
}
"""For each grouping: the column that is the key, and the stream type it is limited to."""

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "reasoning_tokens", "reasoning_replay_tokens")


def usage_sql(
    tenant: str, group_by: GroupBy, day_from: date | None, day_to: date | None
) -> tuple[str, list[object]]:
    """The grouping query (``%s`` placeholders, the same on both databases)."""
    column, stream_type = GROUP_KEYS[group_by]
    where = ["tenant = %s"]
    params: list[object] = [tenant]
    if stream_type is not None:
        where.append("stream_type = %s")
        params.append(stream_type)
    if day_from is not None:
        where.append("day >= %s")
        params.append(day_from.isoformat())
    if day_to is not None:
        where.append("day <= %s")
        params.append(day_to.isoformat())
    sums = ", ".join(f"coalesce(sum({c}), 0)" for c in TOKEN_COLUMNS)
    text = (
        f"SELECT {column}, {sums}, coalesce(sum(cost_usd), 0), count(*) FROM usage_records"
        f" WHERE {' AND '.join(where)} GROUP BY {column}"
    )
    return text, params


def _group(row: tuple[Any, ...]) -> dict[str, Any]:
    tokens = [int(value) for value in row[1:5]]
    group: dict[str, Any] = {"key": row[0]}
    group.update(zip(TOKEN_COLUMNS, tokens, strict=True))
    group["total_tokens"] = sum(tokens)
    group["cost_usd"] = rounded_cost(float(row[5]))
    group["turns"] = int(row[6])
    return group


def _order(group: dict[str, Any]) -> tuple[bool, str]:
    # Sorted here rather than in SQL: PostgreSQL's collation may order text differently from
    # SQLite's byte order; a missing model (null) comes last.
    key = group["key"]
    return key is None, key or ""


async def usage_groups(
    fetch: Fetch,
    tenant: str,
    *,
    group_by: GroupBy,
    day_from: date | None = None,
    day_to: date | None = None,
) -> dict[str, Any]:
    """Usage summed per group, ordered by key; ``turns`` counts the usage scopes summed."""
    text, params = usage_sql(tenant, group_by, day_from, day_to)
    groups = sorted((_group(row) for row in await fetch(text, params)), key=_order)
    return {"group_by": group_by, "items": groups}
