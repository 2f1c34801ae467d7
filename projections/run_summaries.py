"""Run summaries: one row per run for lists, filters and the policies' candidate queries.

``run_summaries`` holds what lists and policies filter on (status, client,
automation, executor, readiness, the awaiting gate, the times the policies
measure ages from). ``run_dispatches`` holds one row per node in flight (running
with a dispatch), so claims, ack timeouts, launch timeouts and lost workers find
their nodes without folding every run. Each run event folds the run
(:mod:`projections.run_fold`), then rewrites its summary row and the dispatch
rows that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from domain.run import Run
from domain.run_state import NodeState
from projections.base import ProjectedEvent, Session, Table, upsert
from projections.run_fold import RUN_STREAM, FoldedRun, RunFolder

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Text timestamps, as thread summaries keep them: UTC, fixed width, so they sort."""

SUMMARIES = Table(
    "run_summaries",
    "tenant text NOT NULL, run_id text NOT NULL, status text NOT NULL,"
    " client_id text NOT NULL, automation_id text, executor_id text, workspace text,"
    " definition_hash text NOT NULL, detail text, stop_kind text,"
    " created_at text NOT NULL, started_at text, finished_at text, updated_at text NOT NULL,"
    " last_event_at text NOT NULL, stopped_at text,"
    " gate_node_id text, gate_requested_at text, gate_stale integer NOT NULL DEFAULT 0,"
    " ready integer NOT NULL DEFAULT 0,"
    " nodes_total bigint NOT NULL DEFAULT 0, nodes_succeeded bigint NOT NULL DEFAULT 0,"
    " nodes_failed bigint NOT NULL DEFAULT 0,"
    " total_tokens bigint NOT NULL DEFAULT 0, cost_usd double precision NOT NULL DEFAULT 0,"
    " created_position bigint NOT NULL, last_seq bigint NOT NULL, last_position bigint NOT NULL,"
    " PRIMARY KEY (tenant, run_id)",
    indexes=(
        "tenant, created_position",
        "tenant, status, created_position",
        "tenant, client_id, created_position",
        "tenant, automation_id, created_position",
        "tenant, ready, created_position",
        "tenant, executor_id, status",
        "status, last_event_at",
        "status, gate_requested_at",
        "status, stopped_at",
    ),
)
DISPATCHES = Table(
    "run_dispatches",
    "tenant text NOT NULL, run_id text NOT NULL, task_id text NOT NULL,"
    " dispatch_id text NOT NULL, worker_id text NOT NULL, pending_ack integer NOT NULL,"
    " ack_deadline text, worker_status text, acknowledged_at text, updated_at text NOT NULL,"
    " PRIMARY KEY (tenant, run_id, task_id)",
    indexes=(
        "tenant, worker_id",
        "pending_ack, ack_deadline",
        "worker_status, acknowledged_at",
    ),
)
SUMMARY_COLUMNS = (
    "status",
    "client_id",
    "automation_id",
    "executor_id",
    "workspace",
    "definition_hash",
    "detail",
    "stop_kind",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "last_event_at",
    "stopped_at",
    "gate_node_id",
    "gate_requested_at",
    "gate_stale",
    "ready",
    "nodes_total",
    "nodes_succeeded",
    "nodes_failed",
    "total_tokens",
    "cost_usd",
    "last_seq",
    "last_position",
)
DISPATCH_COLUMNS = (
    "dispatch_id",
    "worker_id",
    "pending_ack",
    "ack_deadline",
    "worker_status",
    "acknowledged_at",
    "updated_at",
)
DispatchRow = tuple[Any, ...]


def text_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime(TIME_FORMAT)


def summary_values(run: Run, event: ProjectedEvent) -> tuple[Any, ...]:
    """The summary row's values, in :data:`SUMMARY_COLUMNS` order."""
    gate = run.awaiting_gate
    statuses = [node.status for node in run.nodes.values()]
    usage = run.usage
    return (
        run.status,
        run.client_id,
        run.automation_id,
        run.executor_id,
        run.workspace,
        run.definition_hash,
        run.detail,
        run.stop_kind,
        text_time(run.created_at),
        text_time(run.started_at),
        text_time(run.finished_at),
        text_time(run.updated_at),
        text_time(event.recorded_at),
        text_time(run.stopped_at),
        gate.task_id if gate else None,
        text_time(gate.requested_at) if gate else None,
        int(bool(gate and gate.metadata.get("stale"))),
        int(run.has_ready_work()),
        len(statuses),
        statuses.count("succeeded"),
        statuses.count("failed"),
        usage.total_tokens,
        float(usage.cost_usd),
        event.seq,
        event.position,
    )


def dispatch_rows(run: Run) -> dict[str, DispatchRow]:
    """One row per node in flight (running with a dispatch), by task id."""
    return {
        task_id: _dispatch_row(node, run)
        for task_id, node in run.nodes.items()
        if node.in_flight and node.dispatch_id is not None and node.worker_id is not None
    }


def _dispatch_row(node: NodeState, run: Run) -> DispatchRow:
    return (
        node.dispatch_id,
        node.worker_id,
        int(node.pending_ack),
        text_time(node.ack_deadline),
        node.worker_status,
        text_time(node.acknowledged_at),
        text_time(node.updated_at or run.updated_at),
    )


class RunSummaries:
    name = "run_summaries"
    tables: tuple[Table, ...] = (SUMMARIES, DISPATCHES)

    def __init__(self, folder: RunFolder | None = None) -> None:
        self.folder = folder or RunFolder()

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        if event.stream_type != RUN_STREAM:
            return
        folded = self.folder.fold(session, event, names["run_summaries"])
        self._upsert_summary(session, folded.run, event, names["run_summaries"])
        self._sync_dispatches(session, folded, event, names["run_dispatches"])

    def apply_page(
        self, session: Session, events: Sequence[ProjectedEvent], names: dict[str, str]
    ) -> None:
        """As ``apply`` for each event, writing each run's rows once per page: its summary
        as after its last event here, its dispatch rows as they end up."""
        summaries, dispatches = names["run_summaries"], names["run_dispatches"]
        touched: dict[tuple[str, str], tuple[FoldedRun, ProjectedEvent, int]] = {}
        before: dict[tuple[str, str], dict[str, DispatchRow] | None] = {}
        for event in events:
            if event.stream_type != RUN_STREAM:
                continue
            key = (event.tenant, event.stream_id)
            folded = self.folder.fold(session, event, summaries)
            if key not in touched:
                before[key] = folded.memo.get("dispatches")
                touched[key] = (folded, event, event.position)
            else:
                touched[key] = (folded, event, touched[key][2])
        if not touched:
            return
        rows = [
            (tenant, folded.run.id, *summary_values(folded.run, last), first_position)
            for (tenant, _), (folded, last, first_position) in touched.items()
        ]
        columns = ("tenant", "run_id", *SUMMARY_COLUMNS, "created_position")
        upsert(session, SUMMARIES, summaries, columns, 2, rows, SUMMARY_COLUMNS)
        for key, (folded, _, _) in touched.items():
            self._write_dispatches(session, key, before[key], folded, dispatches)

    def _upsert_summary(
        self, session: Session, run: Run, event: ProjectedEvent, table: str
    ) -> None:
        columns = ("tenant", "run_id", *SUMMARY_COLUMNS, "created_position")
        updates = ", ".join(f"{column} = excluded.{column}" for column in SUMMARY_COLUMNS)
        session.execute(
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join('%s' for _ in columns)})"
            f" ON CONFLICT (tenant, run_id) DO UPDATE SET {updates}",
            (event.tenant, run.id, *summary_values(run, event), event.position),
        )

    def _sync_dispatches(
        self, session: Session, folded: FoldedRun, event: ProjectedEvent, table: str
    ) -> None:
        key = (event.tenant, event.stream_id)
        self._write_dispatches(session, key, folded.memo.get("dispatches"), folded, table)

    def _write_dispatches(
        self,
        session: Session,
        key: tuple[str, str],
        before: dict[str, DispatchRow] | None,
        folded: FoldedRun,
        table: str,
    ) -> None:
        """Make the run's dispatch rows those of ``folded.run``; ``before`` is what the table
        holds (None: unknown, read it)."""
        if before is None:  # refolded: what the table holds is what was written
            before = {
                row[0]: tuple(row[1:])
                for row in session.fetchall(
                    f"SELECT task_id, {', '.join(DISPATCH_COLUMNS)} FROM {table}"
                    " WHERE tenant = %s AND run_id = %s",
                    key,
                )
            }
        after = dispatch_rows(folded.run)
        for task_id in before.keys() - after.keys():
            session.execute(
                f"DELETE FROM {table} WHERE tenant = %s AND run_id = %s AND task_id = %s",
                (*key, task_id),
            )
        updates = ", ".join(f"{column} = excluded.{column}" for column in DISPATCH_COLUMNS)
        for task_id, row in after.items():
            if before.get(task_id) == row:
                continue
            session.execute(
                f"INSERT INTO {table} (tenant, run_id, task_id, {', '.join(DISPATCH_COLUMNS)})"
                f" VALUES (%s, %s, %s, {', '.join('%s' for _ in DISPATCH_COLUMNS)})"
                f" ON CONFLICT (tenant, run_id, task_id) DO UPDATE SET {updates}",
                (*key, task_id, *row),
            )
        folded.memo["dispatches"] = after
