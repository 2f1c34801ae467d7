"""The Executor aggregate: an agent runtime, automation server or worker that sends commands.

Rules kept here:
- an executor's stream is ``executor/<executor_id>``; a client id cannot contain
  "/", so it never clashes with a thread or run id;
- heartbeats are always recorded (an executor that shut down may come back);
- a recovery (restarted, shut down, lease expired) covers the executor's activity
  up to ``last_seen_position``; one that covers nothing new, interrupts nothing and
  repeats the last recovery's kind is not recorded again, so applying it twice
  appends nothing;
- a lease has expired once the executor has been silent for the lease since its
  last activity, and Ledger has been up for the lease too (a Ledger restart by
  itself expires nothing); activity that a recovery already covered expires nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Literal

from eventsourcing.domain import event

from domain.base import LedgerAggregate
from domain.executor_events import (
    ExecutorHeartbeatRecorded,
    ExecutorLeaseExpired,
    ExecutorRecovered,
    ExecutorRegistered,
    ExecutorRestarted,
    ExecutorShutDown,
)

STREAM_PREFIX = "executor/"
RecoveryKind = Literal["restarted", "shut_down", "lease_expired"]
RECOVERY_EVENTS: dict[str, type[ExecutorRecovered]] = {
    "restarted": ExecutorRestarted,
    "shut_down": ExecutorShutDown,
    "lease_expired": ExecutorLeaseExpired,
}


def executor_stream_id(executor_id: str) -> str:
    return STREAM_PREFIX + executor_id


def lease_has_expired(
    *,
    last_seen_at: datetime | None,
    last_seen_position: int,
    recovered_position: int,
    now: datetime,
    lease: timedelta,
    started_at: datetime | None,
) -> bool:
    """Whether the executor's lease has run out on work no recovery has covered yet.

    ``started_at`` is when this Ledger instance started (None: judge from the log
    alone); the lease is counted from the later of it and the last activity.
    """
    if last_seen_at is None or recovered_position >= last_seen_position:
        return False
    counted_from = last_seen_at if started_at is None else max(last_seen_at, started_at)
    return counted_from + lease < now


class Executor(LedgerAggregate):
    """What Ledger has recorded about one executor: heartbeats and recoveries of its work."""

    stream_type: ClassVar[str] = "executor"

    ExecutorRegistered = ExecutorRegistered
    ExecutorHeartbeatRecorded = ExecutorHeartbeatRecorded
    ExecutorRestarted = ExecutorRestarted
    ExecutorShutDown = ExecutorShutDown
    ExecutorLeaseExpired = ExecutorLeaseExpired

    @event(ExecutorRegistered)
    def __init__(self, id: str, executor_id: str, timestamp: datetime) -> None:
        self.executor_id = executor_id
        self.last_heartbeat_at: datetime | None = None
        self.last_recovery: str | None = None
        self.recovered_through: int | None = None
        self.shut_down = False

    @classmethod
    def register(cls, executor_id: str, *, now: datetime) -> Executor:
        return cls(id=executor_stream_id(executor_id), executor_id=executor_id, timestamp=now)

    # commands --------------------------------------------------------------

    def record_heartbeat(self, *, now: datetime) -> None:
        self._heartbeat_recorded(timestamp=now)

    def record_recovery(
        self,
        *,
        kind: RecoveryKind,
        last_seen_position: int,
        interrupted_thread_ids: list[str],
        now: datetime,
    ) -> bool:
        """Record a recovery of the executor's work; returns whether there was anything new."""
        if not self._is_news(kind, last_seen_position, interrupted_thread_ids):
            return False
        record = {
            "restarted": self._restarted,
            "shut_down": self._shut_down,
            "lease_expired": self._lease_expired,
        }[kind]
        record(
            last_seen_position=last_seen_position,
            interrupted_thread_ids=list(interrupted_thread_ids),
            timestamp=now,
        )
        return True

    # guards ----------------------------------------------------------------

    def _is_news(self, kind: str, last_seen_position: int, interrupted: list[str]) -> bool:
        return (
            bool(interrupted)
            or self.last_recovery != kind
            or self.recovered_through is None
            or last_seen_position > self.recovered_through
        )

    # events: assignment only -------------------------------------------------

    @event(ExecutorHeartbeatRecorded)
    def _heartbeat_recorded(self, timestamp: datetime) -> None:
        self.last_heartbeat_at = timestamp
        self.shut_down = False

    @event(ExecutorRestarted)
    def _restarted(
        self, last_seen_position: int, interrupted_thread_ids: list[str], timestamp: datetime
    ) -> None:
        self._recovered("restarted", last_seen_position)
        self.shut_down = False

    @event(ExecutorShutDown)
    def _shut_down(
        self, last_seen_position: int, interrupted_thread_ids: list[str], timestamp: datetime
    ) -> None:
        self._recovered("shut_down", last_seen_position)
        self.shut_down = True

    @event(ExecutorLeaseExpired)
    def _lease_expired(
        self, last_seen_position: int, interrupted_thread_ids: list[str], timestamp: datetime
    ) -> None:
        self._recovered("lease_expired", last_seen_position)

    def _recovered(self, kind: str, last_seen_position: int) -> None:
        """Assignment shared by the three recoveries."""
        self.last_recovery = kind
        self.recovered_through = max(self.recovered_through or 0, last_seen_position)
