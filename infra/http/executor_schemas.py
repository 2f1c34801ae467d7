"""Response shapes of the executor endpoints (documented in ``/openapi.json``)."""

from __future__ import annotations

from infra.http.schemas import Accepted


class HeartbeatResponse(Accepted):
    """The heartbeat's place in the log, and until when the lease runs without another."""

    executor_id: str
    lease_expires_at: str


class RecoveryResponse(Accepted):
    """The threads whose turns this call interrupted, the runs it recovered (runs the executor
    drives, and runs with nodes it worked on as a worker), and whether it recorded the recovery.

    When there was nothing new to recover, nothing is appended: ``recorded`` is false
    and ``seq``/``position`` are those of the executor stream's last event.
    """

    executor_id: str
    interrupted_threads: list[str]
    recovered_runs: list[str]
    recorded: bool
