"""The pending-approvals index: every approval waiting for a person, across threads."""

from __future__ import annotations

from projections.base import ProjectedEvent, Session, Table

PENDING = Table(
    "pending_approvals",
    "tenant text NOT NULL, thread_id text NOT NULL, approval_id text NOT NULL,"
    " turn_id text NOT NULL, item_id text, approval_key text,"
    " requires_full_access integer NOT NULL, requested_at text NOT NULL,"
    " position bigint NOT NULL, PRIMARY KEY (tenant, thread_id, approval_id)",
    indexes=("tenant, position",),
)


class PendingApprovals:
    name = "pending_approvals"
    tables: tuple[Table, ...] = (PENDING,)

    def apply(self, session: Session, event: ProjectedEvent, names: dict[str, str]) -> None:
        if event.stream_type != "thread":
            return
        table = names["pending_approvals"]
        data = event.data
        if event.type == "ApprovalRequested" and data.get("decision") is None:
            session.execute(
                f"INSERT INTO {table} (tenant, thread_id, approval_id, turn_id, item_id,"
                " approval_key, requires_full_access, requested_at, position)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    event.tenant,
                    event.stream_id,
                    data["approval_id"],
                    data["turn_id"],
                    data.get("item_id"),
                    data.get("approval_key"),
                    1 if data.get("requires_full_access") else 0,
                    event.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    event.position,
                ),
            )
        elif event.type == "ApprovalDecided":
            session.execute(
                f"DELETE FROM {table} WHERE tenant = %s AND thread_id = %s AND approval_id = %s",
                (event.tenant, event.stream_id, data["approval_id"]),
            )
