"""Events of the Executor aggregate (past tense).

Each recovery names the last position of the executor's activity it covers
(``last_seen_position``) and the threads whose turns it interrupted.
"""

from __future__ import annotations

from domain.base import LedgerAggregate


class ExecutorRegistered(LedgerAggregate.Created):
    """The executor's stream opened: the first time Ledger records anything for it."""

    executor_id: str


class ExecutorHeartbeatRecorded(LedgerAggregate.Event):
    pass


class ExecutorRecovered(LedgerAggregate.Event):
    """Common shape of the three recoveries of an executor's work."""

    last_seen_position: int
    interrupted_thread_ids: list[str] = []


class ExecutorRestarted(ExecutorRecovered):
    pass


class ExecutorShutDown(ExecutorRecovered):
    pass


class ExecutorLeaseExpired(ExecutorRecovered):
    pass
