"""Thread summaries: one row per thread for lists and filters (status, executor).

Per-turn usage is kept beside it so thread totals can be recomputed when a turn's
usage is replaced.
"""

from __future__ import annotations

from projections.base import ProjectedEvent, Session, Table

SUMMARIES = Table(
    "thread_summaries",
    "tenant text NOT NULL, thread_id text NOT NULL, status text NOT NULL, title text,"
    " workspace text, executor_id text, active_turn_id text,"
    " turns bigint NOT NULL DEFAULT 0, items bigint NOT NULL DEFAULT 0,"
    " pending_approvals bigint NOT NULL DEFAULT 0,"
    " input_tokens bigint NOT NULL DEFAULT 0, output_tokens bigint NOT NULL DEFAULT 0,"
    " reasoning_tokens bigint NOT NULL DEFAULT 0,"
    " reasoning_replay_tokens bigint NOT NULL DEFAULT 0,"
    " total_tokens bigint NOT NULL DEFAULT 0, cost_usd double precision NOT NULL DEFAULT 0,"
    " created_at text NOT NULL, updated_at text NOT NULL, created_position bigint NOT NULL,"
    " last_seq bigint NOT NULL, last_position bigint NOT NULL,"
    " PRIMARY KEY (tenant, thread_id)",
    indexes=(
        "tenant, created_position",
        "tenant, status, created_position",
        "tenant, executor_id, created_position",
    ),
)
TURN_USAGE = Table(
    "thread_turn_usage",
    "tenant text NOT NULL, thread_id text NOT NULL, turn_id text NOT NULL, model text,"
    " input_tokens bigint NOT NULL, output_tokens bigint NOT NULL,"
    " reasoning_tokens bigint NOT NULL, reasoning_replay_tokens bigint NOT NULL,"
    " cost_usd double precision NOT NULL, recorded_at text NOT NULL,"
    " PRIMARY KEY (tenant, thread_id, turn_id)",
)
USAGE_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens", "reasoning_replay_tokens")


def _time(event: ProjectedEvent) -> str:
    return event.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ThreadSummaries:
    name = "thread_summaries"
    tables: tuple[Table, ...] = (SUMMARIES, TURN_USAGE)

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        if event.stream_type != "thread":
            return
        table = names["thread_summaries"]
        key = (event.tenant, event.stream_id)
        if event.type == "ThreadStarted":
            session.execute(
                f"INSERT INTO {table} (tenant, thread_id, status, title, workspace, created_at,"
                " updated_at, created_position, last_seq, last_position)"
                " VALUES (%s, %s, 'idle', %s, %s, %s, %s, %s, %s, %s)",
                (
                    *key,
                    event.data.get("title"),
                    event.data.get("workspace"),
                    _time(event),
                    _time(event),
                    event.position,
                    event.seq,
                    event.position,
                ),
            )
            return
        changes = self._changes(session, event, names)
        assignments = ", ".join(f"{column} = {expression}" for column, expression, _ in changes)
        params = [value for _, _, values in changes for value in values]
        session.execute(
            f"UPDATE {table} SET {assignments}{', ' if assignments else ''}"
            "updated_at = %s, last_seq = %s, last_position = %s"
            " WHERE tenant = %s AND thread_id = %s",
            (*params, _time(event), event.seq, event.position, *key),
        )

    def _changes(
        self, session: Session, event: ProjectedEvent, names: dict[str, str]
    ) -> list[tuple[str, str, tuple[object, ...]]]:
        data = event.data
        kind = event.type
        if kind == "TurnStarted":
            return [
                ("status", "'active'", ()),
                ("active_turn_id", "%s", (data["turn_id"],)),
                ("executor_id", "%s", (data.get("executor_id"),)),
                ("turns", "turns + 1", ()),
            ]
        if kind in ("TurnCompleted", "TurnFailed", "TurnInterrupted"):
            return [("status", "'idle'", ()), ("active_turn_id", "NULL", ())]
        if kind == "ItemAdded":
            return [("items", "items + 1", ())]
        if kind == "ApprovalRequested" and data.get("decision") is None:
            return [("pending_approvals", "pending_approvals + 1", ())]
        if kind == "ApprovalDecided":
            return [("pending_approvals", "pending_approvals - 1", ())]
        if kind == "WorkspaceChanged":
            return [("workspace", "%s", (data["workspace"],))]
        if kind == "ThreadArchived":
            return [("status", "'archived'", ())]
        if kind == "UsageRecorded":
            return self._usage(session, event, names)
        return []

    def _usage(
        self, session: Session, event: ProjectedEvent, names: dict[str, str]
    ) -> list[tuple[str, str, tuple[object, ...]]]:
        usage = names["thread_turn_usage"]
        data = event.data
        figures = [int(data.get(f, 0)) for f in USAGE_FIELDS]
        session.execute(
            f"INSERT INTO {usage} (tenant, thread_id, turn_id, model, input_tokens,"
            " output_tokens, reasoning_tokens, reasoning_replay_tokens, cost_usd, recorded_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant, thread_id, turn_id) DO UPDATE SET model = excluded.model,"
            " input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,"
            " reasoning_tokens = excluded.reasoning_tokens,"
            " reasoning_replay_tokens = excluded.reasoning_replay_tokens,"
            " cost_usd = excluded.cost_usd, recorded_at = excluded.recorded_at",
            (
                event.tenant,
                event.stream_id,
                data["turn_id"],
                data.get("model"),
                *figures,
                float(data.get("cost_usd", 0.0)),
                _time(event),
            ),
        )
        totals = session.fetchone(
            "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
            " coalesce(sum(reasoning_tokens), 0), coalesce(sum(reasoning_replay_tokens), 0),"
            f" coalesce(sum(cost_usd), 0) FROM {usage} WHERE tenant = %s AND thread_id = %s",
            (event.tenant, event.stream_id),
        )
        assert totals is not None
        tokens = [int(v) for v in totals[:4]]
        return [
            *[(field, "%s", (value,)) for field, value in zip(USAGE_FIELDS, tokens, strict=True)],
            ("total_tokens", "%s", (sum(tokens),)),
            ("cost_usd", "%s", (float(totals[4]),)),
        ]
