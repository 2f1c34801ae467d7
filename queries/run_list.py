"""Named SQL over the run read models (``run_summaries``, ``run_dispatches``).

:func:`list_runs` serves ``GET /v1/runs``. The other queries find the candidates
policies and claims act on; each answers small rows, and the caller then loads
the run itself (the read model may trail the log, so it decides nothing). The
per-tenant queries take the tenant; the sweeps a policy makes across tenants
(``overdue_acks``, ``stalled_launches``, ``stale_runs``, ``stale_gates``,
``resumable_runs``) answer it in each row. Times are compared as the fixed-width
UTC text the projection stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from queries.pagination import decode_cursor, encode_cursor
from queries.thread_list import Fetch

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
CLAIMABLE_STATUSES = ("queued", "running")
DRIVEN_STATUSES = ("running", "pausing")
RESUMABLE_STOP_KINDS = ("stale_reaped",)
SWEEP_LIMIT = 1000

LIST_COLUMNS = (
    "run_id",
    "status",
    "client_id",
    "automation_id",
    "executor_id",
    "definition_hash",
    "detail",
    "stop_kind",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "nodes_total",
    "nodes_succeeded",
    "nodes_failed",
    "total_tokens",
    "cost_usd",
    "last_seq",
    "last_position",
    "created_position",
)


class RunRef(NamedTuple):
    """A run, named across tenants."""

    tenant: str
    run_id: str


class NodeRef(NamedTuple):
    """A node of a run (a dispatch in flight, or a gate), named across tenants."""

    tenant: str
    run_id: str
    task_id: str


def text_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _marks(values: Sequence[object]) -> str:
    return ", ".join("%s" for _ in values)


def run_summary(row: Sequence[Any]) -> dict[str, Any]:
    """A ``run_summaries`` row (``LIST_COLUMNS``) as the list's DTO."""
    column = dict(zip(LIST_COLUMNS, row, strict=True))
    return {
        "run_id": column["run_id"],
        "status": column["status"],
        "client_id": column["client_id"],
        "automation_id": column["automation_id"],
        "executor_id": column["executor_id"],
        "definition_hash": column["definition_hash"],
        "detail": column["detail"],
        "stop_kind": column["stop_kind"],
        "created_at": column["created_at"],
        "started_at": column["started_at"],
        "finished_at": column["finished_at"],
        "updated_at": column["updated_at"],
        "nodes": {
            "total": int(column["nodes_total"]),
            "succeeded": int(column["nodes_succeeded"]),
            "failed": int(column["nodes_failed"]),
        },
        "usage": {
            "total_tokens": int(column["total_tokens"]),
            "cost_usd": float(column["cost_usd"]),
        },
        "last_seq": int(column["last_seq"]),
        "last_position": int(column["last_position"]),
    }


async def list_runs(
    fetch: Fetch,
    tenant: str,
    *,
    status: str | None,
    client_id: str | None,
    automation_id: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Runs newest first (by creation position); ``next_cursor`` continues after the
    last one, so runs created meanwhile never shift a page. A cursor not made here
    raises :class:`queries.pagination.BadCursor`."""
    where = ["tenant = %s"]
    params: list[object] = [tenant]
    for column, value in (
        ("status", status),
        ("client_id", client_id),
        ("automation_id", automation_id),
    ):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if cursor is not None:
        where.append("created_position < %s")
        params.append(decode_cursor(cursor))
    rows = await fetch(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM run_summaries WHERE {' AND '.join(where)}"
        " ORDER BY created_position DESC LIMIT %s",
        [*params, limit + 1],
    )
    page = rows[:limit]
    next_cursor = encode_cursor(int(page[-1][-1])) if len(rows) > limit else None
    return {"items": [run_summary(row) for row in page], "next_cursor": next_cursor}


async def claimable_runs(fetch: Fetch, tenant: str, limit: int) -> list[str]:
    """Ids of queued or running runs with a ready node, oldest first (claims serve these
    first)."""
    rows = await fetch(
        "SELECT run_id FROM run_summaries"
        f" WHERE tenant = %s AND ready = 1 AND status IN ({_marks(CLAIMABLE_STATUSES)})"
        " ORDER BY created_position LIMIT %s",
        [tenant, *CLAIMABLE_STATUSES, limit],
    )
    return [str(row[0]) for row in rows]


async def runs_driven_by(fetch: Fetch, tenant: str, executor_id: str) -> list[str]:
    """Ids of the running or pausing runs ``executor_id`` drives (restart recovery's work)."""
    rows = await fetch(
        "SELECT run_id FROM run_summaries WHERE tenant = %s AND executor_id = %s"
        f" AND status IN ({_marks(DRIVEN_STATUSES)}) ORDER BY created_position",
        [tenant, executor_id, *DRIVEN_STATUSES],
    )
    return [str(row[0]) for row in rows]


async def runs_with_worker(fetch: Fetch, tenant: str, worker_id: str) -> list[str]:
    """Ids of the runs with a node in flight on ``worker_id`` (a lost worker's runs)."""
    rows = await fetch(
        "SELECT DISTINCT run_id FROM run_dispatches WHERE tenant = %s AND worker_id = %s"
        " ORDER BY run_id",
        [tenant, worker_id],
    )
    return [str(row[0]) for row in rows]


async def overdue_acks(fetch: Fetch, now: datetime, *, limit: int = SWEEP_LIMIT) -> list[NodeRef]:
    """Dispatches still unacknowledged after their ack deadline, in every tenant."""
    rows = await fetch(
        "SELECT tenant, run_id, task_id FROM run_dispatches"
        " WHERE pending_ack = 1 AND ack_deadline < %s ORDER BY ack_deadline LIMIT %s",
        [text_time(now), limit],
    )
    return [NodeRef(str(t), str(r), str(n)) for t, r, n in rows]


async def stalled_launches(
    fetch: Fetch, before: datetime, *, limit: int = SWEEP_LIMIT
) -> list[NodeRef]:
    """Acknowledged dispatches whose worker said it was launching and has not reported
    since ``before`` (launches are timed from the ack, as ``Run.time_out_launch`` does)."""
    rows = await fetch(
        "SELECT tenant, run_id, task_id FROM run_dispatches"
        " WHERE worker_status = 'launching' AND acknowledged_at < %s"
        " ORDER BY acknowledged_at LIMIT %s",
        [text_time(before), limit],
    )
    return [NodeRef(str(t), str(r), str(n)) for t, r, n in rows]


async def stale_runs(fetch: Fetch, before: datetime, *, limit: int = SWEEP_LIMIT) -> list[RunRef]:
    """Running runs whose last event was recorded before ``before``."""
    rows = await fetch(
        "SELECT tenant, run_id FROM run_summaries"
        " WHERE status = 'running' AND last_event_at < %s ORDER BY last_event_at LIMIT %s",
        [text_time(before), limit],
    )
    return [RunRef(str(t), str(r)) for t, r in rows]


async def stale_gates(fetch: Fetch, before: datetime, *, limit: int = SWEEP_LIMIT) -> list[NodeRef]:
    """Awaiting gates requested before ``before`` and not yet marked stale (the run's
    first awaiting gate; ``task_id`` is the gate's node)."""
    rows = await fetch(
        "SELECT tenant, run_id, gate_node_id FROM run_summaries"
        " WHERE status = 'awaiting_approval' AND gate_requested_at < %s AND gate_stale = 0"
        " ORDER BY gate_requested_at LIMIT %s",
        [text_time(before), limit],
    )
    return [NodeRef(str(t), str(r), str(n)) for t, r, n in rows]


async def resumable_runs(
    fetch: Fetch,
    since: datetime,
    *,
    stop_kinds: Sequence[str] = RESUMABLE_STOP_KINDS,
    limit: int = SWEEP_LIMIT,
) -> list[RunRef]:
    """Paused runs stopped (by default stale-reaped) at or after ``since``: auto-resume's
    candidates (the run itself decides on the cap and on its nodes' attempts)."""
    if not stop_kinds:
        return []
    rows = await fetch(
        "SELECT tenant, run_id FROM run_summaries"
        f" WHERE status = 'paused' AND stop_kind IN ({_marks(stop_kinds)}) AND stopped_at >= %s"
        " ORDER BY stopped_at LIMIT %s",
        [*stop_kinds, text_time(since), limit],
    )
    return [RunRef(str(t), str(r)) for t, r in rows]
