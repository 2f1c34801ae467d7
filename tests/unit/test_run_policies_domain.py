"""Policies on the Run aggregate: restart / shutdown recovery, lost workers, stale reap,
guardrail stop and quota override, bounded auto-resume. Each is idempotent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import LifecycleConflict
from domain.run import Run
from domain.run_events import RunAutoResumed, RunFailed, RunPaused
from tests.unit.builders import at
from tests.unit.run_builders import (
    claim,
    finish,
    lifecycle_names,
    linear,
    new_run,
    pending_names,
    start,
)

WINDOW = timedelta(minutes=20)
RESTART = "automation run interrupted by server restart"
SHUTDOWN = "automation run stopped during server shutdown"
SETTLED = "automation run settled to paused after server restart"


def running_run(max_attempts: int = 1) -> Run:
    run = new_run(linear("a", "b"), max_attempts=max_attempts)
    start(run, "a", now=at(1))
    run.collect_events()
    return run


def reaped_run(max_attempts: int = 3, *, at_second: float = 100) -> Run:
    run = running_run(max_attempts)
    run.stale_reap(detail="quiet", now=at(at_second))
    return run


def ms(seconds: float) -> int:
    return int(at(seconds).timestamp() * 1000)


# executor restart --------------------------------------------------------------------------------


def test_restart_fails_a_running_run_with_the_seed_strings() -> None:
    run = running_run()

    assert run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(5)) is True

    assert run.status == "failed"
    assert (run.stop_kind, run.stop_reason, run.detail) == ("server_restart", RESTART, RESTART)
    assert run.finished_at == at(5)
    assert {n.status for n in run.nodes.values()} == {"cancelled"}
    entry = run.lifecycle[-1]
    assert (entry["event"], entry["detail"], entry["stop_kind"]) == (
        "run_failed_server_restart",
        RESTART,
        "server_restart",
    )
    events = run.collect_events()
    assert isinstance(events[-1], RunFailed)


def test_restart_recovery_applied_twice_appends_nothing() -> None:
    run = running_run()
    run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(5))
    run.collect_events()

    assert run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(6)) is False
    assert run.collect_events() == []


def test_restart_settles_a_pausing_run_to_paused_with_the_seed_reason() -> None:
    run = running_run()
    run.pause(reason=None, now=at(2))
    assert run.status == "pausing"
    run.collect_events()

    assert run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(5)) is True

    assert run.status == "paused"
    assert run.pause_reason == SETTLED
    assert run.lifecycle[-1]["event"] == "run_pausing_settled_on_restart"
    assert pending_names(run) == ["RunPaused"]
    assert run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(6)) is False
    assert run.collect_events() == []


def test_restart_keeps_an_existing_pause_reason() -> None:
    run = running_run()
    run.pause(reason="operator asked", now=at(2))

    run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(5))

    assert run.status == "paused"
    assert run.pause_reason == "operator asked"


@pytest.mark.parametrize("state", ["queued", "paused", "awaiting_approval"])
def test_restart_leaves_queued_paused_and_awaiting_runs_alone(state: str) -> None:
    run = new_run(linear("a"))
    if state == "paused":
        run.pause(reason=None, now=at(1))
    elif state == "awaiting_approval":
        run.request_gate(task_id="a", title=None, instructions=None, now=at(1))
    assert run.status == state
    run.collect_events()

    assert run.recover_for_executor(executor_id="auto-1", shutdown=False, now=at(5)) is False
    assert run.collect_events() == []


def test_only_the_executor_named_on_the_run_owns_it() -> None:
    run = running_run()

    assert run.recover_for_executor(executor_id="other", shutdown=False, now=at(5)) is False
    assert run.recover_for_executor(executor_id="w1", shutdown=True, now=at(5)) is False
    assert run.status == "running"
    assert run.collect_events() == []


# executor shutdown -------------------------------------------------------------------------------


def test_shutdown_fails_a_running_run_with_the_seed_strings() -> None:
    run = running_run()

    assert run.recover_for_executor(executor_id="auto-1", shutdown=True, now=at(5)) is True

    assert run.status == "failed"
    assert (run.stop_kind, run.stop_reason, run.detail) == ("shutdown", SHUTDOWN, SHUTDOWN)
    assert run.lifecycle[-1]["event"] == "run_failed_shutdown"
    run.collect_events()
    assert run.recover_for_executor(executor_id="auto-1", shutdown=True, now=at(6)) is False
    assert run.collect_events() == []


# a lost worker -----------------------------------------------------------------------------------


def test_a_lost_worker_fails_each_node_it_acknowledged() -> None:
    run = running_run()

    assert run.recover_for_worker(worker_id="w1", now=at(5)) == ["a"]

    assert run.nodes["a"].status == "failed"
    assert run.nodes["a"].error == {
        "code": "worker_lost",
        "message": "worker task terminated unexpectedly",
    }
    assert run.status == "failed"
    run.collect_events()
    assert run.recover_for_worker(worker_id="w1", now=at(6)) == []
    assert run.collect_events() == []


def test_a_lost_worker_node_is_retried_under_max_attempts() -> None:
    run = running_run(max_attempts=2)

    run.recover_for_worker(worker_id="w1", now=at(5))

    assert run.nodes["a"].status == "queued"
    assert run.nodes["a"].attempts == 1
    assert run.status in ("queued", "running")


def test_a_lost_worker_leaves_unacknowledged_dispatches_to_the_ack_timeout() -> None:
    run = new_run(linear("a"))
    claim(run, "w1", now=at(1))
    run.collect_events()

    assert run.recover_for_worker(worker_id="w1", now=at(5)) == []
    assert run.nodes["a"].pending_ack is True
    assert run.collect_events() == []


def test_another_worker_losing_touches_nothing() -> None:
    run = running_run()

    assert run.recover_for_worker(worker_id="w9", now=at(5)) == []
    assert run.collect_events() == []


# stale reap --------------------------------------------------------------------------------------


def test_stale_reap_pauses_the_run_and_marks_running_nodes_for_repair() -> None:
    run = running_run()

    run.stale_reap(detail="no provider activity", now=at(100))

    assert run.status == "paused"
    assert run.stop_kind == "stale_reaped"
    assert run.nodes["a"].needs_repair is True
    assert run.nodes["b"].needs_repair is False
    entry = run.lifecycle[-1]
    assert (entry["event"], entry["stop_kind"]) == (
        "run_paused_stale_no_provider_activity",
        "stale_reaped",
    )
    (paused,) = run.collect_events()
    assert isinstance(paused, RunPaused)
    assert paused.repair == ["a"]


def test_the_stale_run_policy_reaps_only_a_quiet_running_run_once() -> None:
    run = running_run()
    age = timedelta(minutes=10)

    assert run.reap_if_stale(stale_after=age, now=at(1) + age - timedelta(seconds=1)) is False
    assert run.reap_if_stale(stale_after=age, now=at(1) + age) is True
    assert run.reap_if_stale(stale_after=age, now=at(1) + 2 * age) is False

    assert run.status == "paused"
    assert run.detail is not None and "600s" in run.detail
    assert lifecycle_names(run).count("run_paused_stale_no_provider_activity") == 1


def test_stale_reaping_a_paused_run_is_a_conflict() -> None:
    run = reaped_run()
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.stale_reap(detail="again", now=at(200))
    assert run.collect_events() == []


# auto-resume -------------------------------------------------------------------------------------


def test_auto_resume_inside_the_window_requeues_the_repaired_node() -> None:
    run = reaped_run(at_second=100)
    run.collect_events()

    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(100) + WINDOW) is True

    assert run.status == "queued"
    assert (run.stop_kind, run.stop_reason, run.pause_reason) == (None, None, None)
    node = run.nodes["a"]
    assert (node.status, node.needs_repair, node.attempts, node.dispatch_id) == (
        "queued",
        False,
        1,
        None,
    )
    entry = run.lifecycle[-1]
    assert entry["event"] == "run_auto_resumed"
    assert entry["detail"] == "auto_resume_after_stale_reap"
    assert entry["metadata"] == {"auto_resume_window_ms": 1_200_000, "stale_reaped_at_ms": ms(100)}
    (resumed,) = run.collect_events()
    assert isinstance(resumed, RunAutoResumed)
    assert resumed.requeued == ["a"]
    assert list(claim(run, now=at(2000))) == ["a"]


def test_auto_resume_outside_the_window_does_nothing() -> None:
    run = reaped_run(at_second=100)
    run.collect_events()

    too_late = at(100) + WINDOW + timedelta(milliseconds=1)
    assert run.auto_resume(window=WINDOW, max_resumes=2, now=too_late) is False

    assert run.status == "paused"
    assert run.collect_events() == []


def test_auto_resume_stops_at_the_cap() -> None:
    run = running_run(max_attempts=5)
    for round_ in range(2):
        reaped_at = 100 + 1000 * round_
        run.stale_reap(detail="quiet", now=at(reaped_at))
        assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(reaped_at + 1)) is True
        start(run, "a", now=at(reaped_at + 2))
    run.stale_reap(detail="quiet", now=at(3000))
    run.collect_events()

    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(3001)) is False

    assert run.status == "paused"
    assert lifecycle_names(run).count("run_auto_resumed") == 2
    assert run.collect_events() == []


def test_auto_resume_needs_a_repairable_node_under_max_attempts() -> None:
    run = reaped_run(max_attempts=1)
    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(101)) is True
    start(run, "a", now=at(102))
    run.stale_reap(detail="quiet", now=at(200))
    run.collect_events()

    assert run.nodes["a"].attempts == 1
    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(201)) is False
    assert run.collect_events() == []


def test_auto_resume_ignores_runs_paused_by_an_operator() -> None:
    run = running_run()
    run.pause(reason=None, now=at(2))
    finish(run, "a")
    run.collect_events()

    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(3)) is False
    assert run.collect_events() == []


def test_auto_resume_applied_twice_resumes_once() -> None:
    run = reaped_run()
    run.auto_resume(window=WINDOW, max_resumes=2, now=at(101))
    run.collect_events()

    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(102)) is False
    assert run.collect_events() == []


# guardrail stop and quota override ---------------------------------------------------------------


def test_guardrail_stop_pauses_with_its_stop_kind() -> None:
    run = running_run()

    run.guardrail_stop(reason="spend cap", now=at(10))

    assert run.status == "paused"
    assert run.stop_kind == "guardrail_stopped"
    assert run.nodes["a"].needs_repair is True
    assert run.auto_resume(window=WINDOW, max_resumes=2, now=at(11)) is False


def test_an_approved_quota_override_resumes_a_guardrail_stopped_run() -> None:
    run = running_run()
    run.guardrail_stop(reason="spend cap", now=at(10))
    run.collect_events()

    resumed = run.approve_quota_override(
        override_id="q1", agent_ids=["ag1"], reason="ok", actor="alice", now=at(20)
    )

    assert resumed is True
    assert run.status == "queued"
    assert run.stop_kind is None
    assert run.nodes["a"].status == "queued"
    entry = run.lifecycle[-1]
    assert entry["event"] == "run_auto_resumed"
    assert entry["detail"] == "auto_resume_after_guardrail_override"
    assert entry["metadata"]["quota_override_id"] == "q1"
    assert pending_names(run) == ["QuotaOverrideApproved", "RunAutoResumed"]


def test_a_quota_override_on_a_run_not_guardrail_stopped_is_only_recorded() -> None:
    run = running_run()

    resumed = run.approve_quota_override(
        override_id="q1", agent_ids=[], reason=None, actor="alice", now=at(20)
    )

    assert resumed is False
    assert run.status == "running"
    assert pending_names(run) == ["QuotaOverrideApproved"]


def test_the_same_quota_override_twice_is_a_conflict() -> None:
    run = running_run()
    run.guardrail_stop(reason=None, now=at(10))
    run.approve_quota_override(override_id="q1", agent_ids=[], reason=None, actor="a", now=at(20))
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.approve_quota_override(
            override_id="q1", agent_ids=[], reason=None, actor="a", now=at(21)
        )
    assert run.collect_events() == []
