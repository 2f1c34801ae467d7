"""The run's ``lifecycle_history``: seed 002's entry names and the exact strings it records."""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any

from domain.run_state import LifecycleEntry

RESTART_DETAIL = "automation run interrupted by server restart"
RESTART_PAUSE_REASON = "automation run settled to paused after server restart"
LAUNCH_TIMEOUT_DETAIL = "worker launch timed out after {duration}"
SHUTDOWN_DETAIL = "automation run stopped during server shutdown"
WORKER_LOST_MESSAGE = "worker task terminated unexpectedly"
STALE_REAP_DETAIL = "automation run paused after no provider activity for at least {seconds}s"
STALE_GATE_DETAIL = (
    "awaiting manual approval for gate `{node_id}` for at least {seconds}s;"
    " no automatic expiry action is configured"
)
STALE_GATE_POLICY = "manual_only_visible_status"
AUTO_RESUME_AFTER_STALE_REAP = "auto_resume_after_stale_reap"
AUTO_RESUME_AFTER_GUARDRAIL_OVERRIDE = "auto_resume_after_guardrail_override"
STALE_REAP_ENTRY = "run_paused_stale_no_provider_activity"
AUTO_RESUME_ENTRY = "run_auto_resumed"
GATE_DECISION_ENTRIES = {
    "approve": "approval_gate_approved",
    "deny": "approval_gate_denied",
    "rework": "approval_gate_rework_requested",
}


def lifecycle_entry(
    name: str,
    timestamp: datetime,
    detail: str | None,
    stop_kind: str | None,
    metadata: dict[str, Any] | None,
) -> LifecycleEntry:
    return LifecycleEntry(
        event=name,
        recorded_at_ms=int(timestamp.timestamp() * 1000),
        detail=detail,
        stop_kind=stop_kind,
        metadata=deepcopy(metadata) if metadata else {},
    )


def rust_duration(duration: timedelta) -> str:
    """A duration as seed 003 prints it (Rust's ``Debug``): ``60s``, ``1.5s``, ``250ms``."""
    ms = int(duration.total_seconds() * 1000)
    if ms >= 1000:
        fraction = f"{ms % 1000:03d}".rstrip("0")
        return f"{ms // 1000}{'.' + fraction if fraction else ''}s"
    return f"{ms}ms" if ms > 0 else "0ns"
