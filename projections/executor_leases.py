"""Executor leases, judged from the log: when each executor was last seen, and what recovery
has already covered.

Any event whose metadata names an ``executor_id`` (a command the executor sent),
the heartbeats on an executor's own stream, and a turn started for an executor
(so a turn's owner has a lease even if another executor sent the command) renew
``last_seen``. A recovery
(restarted, shut down, lease expired) moves ``recovered_position`` to the last
activity it covered, so activity after it (``recovered_position <
last_seen_position``) is what a lease expiry would recover next.
"""

from __future__ import annotations

from projections.base import ProjectedEvent, Session, Table

LEASES = Table(
    "executor_leases",
    "tenant text NOT NULL, executor_id text NOT NULL, last_seen_at text,"
    " last_seen_position bigint NOT NULL DEFAULT 0,"
    " recovered_position bigint NOT NULL DEFAULT 0,"
    " PRIMARY KEY (tenant, executor_id)",
    indexes=("last_seen_at",),
)
EXECUTOR_STREAM_PREFIX = "executor/"
HEARTBEAT = "ExecutorHeartbeatRecorded"
TURN_STARTED = "TurnStarted"
RECOVERIES = frozenset({"ExecutorRestarted", "ExecutorShutDown", "ExecutorLeaseExpired"})


def _time(event: ProjectedEvent) -> str:
    return event.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ExecutorLeases:
    name = "executor_leases"
    tables: tuple[Table, ...] = (LEASES,)

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        table = names["executor_leases"]
        sender = event.metadata.get("executor_id")
        if isinstance(sender, str):
            self._seen(session, table, event, sender)
        owner = event.data.get("executor_id") if event.type == TURN_STARTED else None
        if isinstance(owner, str) and owner != sender:
            self._seen(session, table, event, owner)  # its lease covers the turn from the start
        if event.stream_type != "executor":
            return
        executor_id = event.stream_id.removeprefix(EXECUTOR_STREAM_PREFIX)
        if event.type == HEARTBEAT and sender != executor_id:
            self._seen(session, table, event, executor_id)
        elif event.type in RECOVERIES:
            session.execute(
                f"INSERT INTO {table} (tenant, executor_id, recovered_position)"
                " VALUES (%s, %s, %s) ON CONFLICT (tenant, executor_id) DO UPDATE SET"
                " recovered_position = CASE WHEN excluded.recovered_position"
                f" > {table}.recovered_position THEN excluded.recovered_position"
                f" ELSE {table}.recovered_position END",
                (event.tenant, executor_id, int(event.data["last_seen_position"])),
            )

    def _seen(self, session: Session, table: str, event: ProjectedEvent, executor_id: str) -> None:
        session.execute(
            f"INSERT INTO {table} (tenant, executor_id, last_seen_at, last_seen_position)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (tenant, executor_id) DO UPDATE SET"
            " last_seen_at = excluded.last_seen_at,"
            " last_seen_position = excluded.last_seen_position",
            (event.tenant, executor_id, _time(event), event.position),
        )
