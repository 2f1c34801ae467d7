"""Named SQL over the executor read models: the work an executor owns, and lapsed leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from queries.thread_list import Fetch

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Lease:
    """An executor's lease as the ``executor_leases`` read model has it."""

    tenant: str
    executor_id: str
    last_seen_at: datetime | None
    last_seen_position: int
    recovered_position: int


def as_text(moment: datetime) -> str:
    """A timestamp in the read models' textual form (it sorts as the moments do)."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def _lease(row: tuple[object, ...]) -> Lease:
    tenant, executor_id, seen_at, seen_position, recovered = row
    return Lease(
        str(tenant),
        str(executor_id),
        _moment(None if seen_at is None else str(seen_at)),
        int(str(seen_position)),
        int(str(recovered)),
    )


LEASE_COLUMNS = "tenant, executor_id, last_seen_at, last_seen_position, recovered_position"


async def threads_run_by(fetch: Fetch, tenant: str, executor_id: str) -> list[str]:
    """Threads whose active turn runs on ``executor_id``, oldest first."""
    rows = await fetch(
        "SELECT thread_id FROM thread_summaries"
        " WHERE tenant = %s AND executor_id = %s AND status = 'active'"
        " ORDER BY created_position",
        [tenant, executor_id],
    )
    return [str(row[0]) for row in rows]


async def lease_of(fetch: Fetch, tenant: str, executor_id: str) -> Lease | None:
    rows = await fetch(
        f"SELECT {LEASE_COLUMNS} FROM executor_leases WHERE tenant = %s AND executor_id = %s",
        [tenant, executor_id],
    )
    return _lease(rows[0]) if rows else None


async def unrecovered_leases_seen_before(fetch: Fetch, moment: datetime) -> list[Lease]:
    """Leases with activity no recovery has covered, last renewed before ``moment``."""
    rows = await fetch(
        f"SELECT {LEASE_COLUMNS} FROM executor_leases"
        " WHERE last_seen_at < %s AND recovered_position < last_seen_position"
        " ORDER BY last_seen_position",
        [as_text(moment)],
    )
    return [_lease(row) for row in rows]
