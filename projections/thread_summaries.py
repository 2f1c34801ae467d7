"""Thread summaries: one row per thread for lists and filters (status, executor).

Per-turn usage is kept beside it so thread totals can be recomputed when a turn's
usage is replaced.

A page of events is folded in memory: the page's threads are read in one
query, each event changes its thread's row as the per-event SQL did, and the
rows are written back with one upsert per table (totals are summed by the
database, as before, after the turn usage rows are written).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.costs import rounded_cost
from projections.base import ProjectedEvent, Session, Table, keys_in, upsert

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


COLUMNS = (
    "tenant",
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
    "created_position",
    "last_seq",
    "last_position",
)
TURN_USAGE_COLUMNS = (
    "tenant",
    "thread_id",
    "turn_id",
    "model",
    *USAGE_FIELDS,
    "cost_usd",
    "recorded_at",
)
ENDINGS = frozenset({"TurnCompleted", "TurnFailed", "TurnInterrupted"})
Key = tuple[str, str]
KEYS_PER_QUERY = 500
"""Threads per query on SQLite (two parameters each, well under its 32,766)."""


class DuplicateThread(Exception):
    """A second ``ThreadStarted`` for a thread that has a row."""


class _Page:
    """One page's thread rows, folded in memory (column name to value)."""

    def __init__(self, session: Session, names: dict[str, str]) -> None:
        self.session = session
        self.names = names
        self.rows: dict[Key, dict[str, Any]] = {}
        self.last: dict[Key, ProjectedEvent] = {}
        self.usage: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self.summed: set[Key] = set()

    def load(self, events: Sequence[ProjectedEvent]) -> None:
        keys = list(dict.fromkeys((e.tenant, e.stream_id) for e in events))
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = keys[start : start + KEYS_PER_QUERY]
            where, params = keys_in(self.session, ("tenant", "thread_id"), chunk)
            table = self.names["thread_summaries"]
            for row in self.session.fetchall(
                f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE {where}", params
            ):
                self.rows[(row[0], row[1])] = dict(zip(COLUMNS, row, strict=True))

    def apply(self, event: ProjectedEvent) -> None:
        key = (event.tenant, event.stream_id)
        if event.type == "ThreadStarted":
            self._start(key, event)
            return
        row = self.rows.get(key)
        if event.type == "UsageRecorded":
            self._usage(key, event)  # kept even without a summary row, as the UPDATE was
        if row is None:  # an UPDATE of no row: checks the event's data, changes nothing
            self._change(dict.fromkeys(COLUMNS, 0), event)
            return
        self._change(row, event)
        self.last[key] = event

    def _start(self, key: Key, event: ProjectedEvent) -> None:
        if key in self.rows:
            raise DuplicateThread(f"thread {key[1]} of tenant {key[0]} already has a summary")
        data = event.data
        self.rows[key] = {
            **dict.fromkeys(COLUMNS, 0),
            "tenant": key[0],
            "thread_id": key[1],
            "status": "idle",
            "title": data.get("title"),
            "workspace": data.get("workspace"),
            "executor_id": None,
            "active_turn_id": None,
            "cost_usd": 0.0,
            "created_at": _time(event),
            "created_position": event.position,
        }
        self.last[key] = event

    def _change(self, row: dict[str, Any], event: ProjectedEvent) -> None:
        kind = event.type
        if kind == "TurnStarted":
            data = event.data
            row["status"] = "active"
            row["active_turn_id"] = data["turn_id"]
            row["executor_id"] = data.get("executor_id")
            row["turns"] += 1
        elif kind == "ItemAdded":
            row["items"] += 1
        elif kind in ENDINGS:
            row["status"] = "idle"
            row["active_turn_id"] = None
        elif kind == "ApprovalRequested":
            if event.data.get("decision") is None:
                row["pending_approvals"] += 1
        elif kind == "ApprovalDecided":
            row["pending_approvals"] -= 1
        elif kind == "WorkspaceChanged":
            row["workspace"] = event.data["workspace"]
        elif kind == "ThreadArchived":
            row["status"] = "archived"

    def _usage(self, key: Key, event: ProjectedEvent) -> None:
        data = event.data
        figures = [int(data.get(f, 0)) for f in USAGE_FIELDS]
        turn_id = data["turn_id"]
        self.usage[(*key, turn_id)] = (
            *key,
            turn_id,
            data.get("model"),
            *figures,
            float(data.get("cost_usd", 0.0)),
            _time(event),
        )
        self.summed.add(key)

    def write(self) -> None:
        if self.usage:
            upsert(
                self.session,
                TURN_USAGE,
                self.names["thread_turn_usage"],
                TURN_USAGE_COLUMNS,
                3,
                list(self.usage.values()),
            )
            self._totals()
        for key, event in self.last.items():
            row = self.rows[key]
            row["updated_at"] = _time(event)
            row["last_seq"] = event.seq
            row["last_position"] = event.position
        if self.last:
            upsert(
                self.session,
                SUMMARIES,
                self.names["thread_summaries"],
                COLUMNS,
                2,
                [tuple(self.rows[key].values()) for key in self.last],
            )

    def _totals(self) -> None:
        """Each summed thread's totals over its turns, summed by the database as before."""
        keys = [key for key in self.summed if key in self.rows]
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = keys[start : start + KEYS_PER_QUERY]
            where, params = keys_in(self.session, ("tenant", "thread_id"), chunk)
            for tenant, thread_id, *totals in self.session.fetchall(
                "SELECT tenant, thread_id, coalesce(sum(input_tokens), 0),"
                " coalesce(sum(output_tokens), 0), coalesce(sum(reasoning_tokens), 0),"
                " coalesce(sum(reasoning_replay_tokens), 0), coalesce(sum(cost_usd), 0)"
                f" FROM {self.names['thread_turn_usage']} WHERE {where}"
                " GROUP BY tenant, thread_id",
                params,
            ):
                row = self.rows[(tenant, thread_id)]
                tokens = [int(v) for v in totals[:4]]
                row.update(zip(USAGE_FIELDS, tokens, strict=True))
                row["total_tokens"] = sum(tokens)
                row["cost_usd"] = rounded_cost(float(totals[4]))


class ThreadSummaries:
    name = "thread_summaries"
    tables: tuple[Table, ...] = (SUMMARIES, TURN_USAGE)

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        self.apply_page(session, (event,), names)

    def apply_page(
        self, session: Session, events: Sequence[ProjectedEvent], names: dict[str, str]
    ) -> None:
        threads = [event for event in events if event.stream_type == "thread"]
        if not threads:
            return
        page = _Page(session, names)
        page.load(threads)
        for event in threads:
            page.apply(event)
        page.write()
