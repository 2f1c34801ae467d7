"""Named SQL over the thread read models, and the rows mapped once to DTOs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from queries.pagination import decode_cursor, encode_cursor

Fetch = Callable[[str, Sequence[object]], Awaitable[list[tuple[Any, ...]]]]

SUMMARY_COLUMNS = (
    "thread_id",
    "status",
    "title",
    "workspace",
    "executor_id",
    "active_turn_id",
    "turns",
    "items",
    "pending_approvals",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "reasoning_replay_tokens",
    "total_tokens",
    "cost_usd",
    "created_at",
    "updated_at",
    "last_seq",
    "last_position",
    "created_position",
)
APPROVAL_COLUMNS = (
    "thread_id",
    "approval_id",
    "turn_id",
    "item_id",
    "approval_key",
    "requires_full_access",
    "requested_at",
    "position",
)


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    summary = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    summary["cost_usd"] = float(summary["cost_usd"])
    del summary["created_position"]
    return summary


async def list_threads(
    fetch: Fetch,
    tenant: str,
    *,
    status: str | None,
    executor_id: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Threads newest first; ``next_cursor`` continues after the last one (stable under inserts)."""
    where = ["tenant = %s"]
    params: list[object] = [tenant]
    if status is not None:
        where.append("status = %s")
        params.append(status)
    if executor_id is not None:
        where.append("executor_id = %s")
        params.append(executor_id)
    if cursor is not None:
        where.append("created_position < %s")
        params.append(decode_cursor(cursor))
    rows = await fetch(
        f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM thread_summaries WHERE {' AND '.join(where)}"
        " ORDER BY created_position DESC LIMIT %s",
        [*params, limit + 1],
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][-1]) if len(rows) > limit else None
    return {"items": [_summary(row) for row in page], "next_cursor": next_cursor}


async def list_pending_approvals(
    fetch: Fetch, tenant: str, *, thread_id: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Approvals waiting for a person, oldest first."""
    where = ["tenant = %s"]
    params: list[object] = [tenant]
    if thread_id is not None:
        where.append("thread_id = %s")
        params.append(thread_id)
    if cursor is not None:
        where.append("position > %s")
        params.append(decode_cursor(cursor))
    rows = await fetch(
        f"SELECT {', '.join(APPROVAL_COLUMNS)} FROM pending_approvals"
        f" WHERE {' AND '.join(where)} ORDER BY position LIMIT %s",
        [*params, limit + 1],
    )
    page = rows[:limit]
    items = []
    for row in page:
        approval = dict(zip(APPROVAL_COLUMNS, row, strict=True))
        approval["requires_full_access"] = bool(approval["requires_full_access"])
        items.append(approval)
    next_cursor = encode_cursor(page[-1][-1]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}
