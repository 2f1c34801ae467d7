"""Feedback (result merge-patch, chunks, progress, metadata, dedup), results, bindings, usage."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import InvalidCommand, LifecycleConflict
from domain.run import Run
from domain.run_events import NodeChunkAppended, NodeFeedbackRecorded, NodeResultDelta
from domain.run_state import NodeUsage
from tests.unit.builders import at
from tests.unit.run_builders import (
    claim,
    edge,
    feedback,
    finish,
    linear,
    new_run,
    pending_names,
    start,
    subgraph,
    task,
    workflow,
)


@pytest.fixture
def run() -> Run:
    """A run whose node ``a`` is dispatched and acknowledged (``b`` waits for it)."""
    run = new_run(linear("a", "b"))
    start(run, "a")
    run.collect_events()
    return run


def deltas(run: Run) -> list[tuple[str, str, Any, int]]:
    return [
        (e.path, e.operation, e.value, e.sequence)
        for e in run.collect_events()
        if isinstance(e, NodeResultDelta)
    ]


# result merge-patch ------------------------------------------------------------------------------


def test_results_merge_patch_into_the_node_result_with_server_sequences(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"a": {"b": 1}}})
    first = deltas(run)
    feedback(run, "a", metadata={"results": {"a": {"c": 2}, "x": None}})
    second = deltas(run)

    assert run.nodes["a"].result == {"a": {"b": 1, "c": 2}}
    assert first == [("/a", "replace", {"b": 1}, 1)]
    assert second == [("/a/c", "replace", 2, 2)]


def test_null_removes_an_existing_key_with_a_remove_delta(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"x": 1, "keep": True}})
    run.collect_events()

    feedback(run, "a", metadata={"results": {"x": None}})

    assert deltas(run) == [("/x", "remove", None, 3)]
    assert run.nodes["a"].result == {"keep": True}


def test_an_unchanged_value_makes_no_delta(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"x": 1}})
    run.collect_events()

    feedback(run, "a", metadata={"results": {"x": 1}})

    assert deltas(run) == []
    assert run.nodes["a"].result_sequence == 1


def test_delta_paths_escape_tilde_and_slash(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"a/b": {"c~d": 1}}})
    feedback(run, "a", metadata={"results": {"a/b": {"e": 2}}})

    assert deltas(run) == [("/a~1b", "replace", {"c~d": 1}, 1), ("/a~1b/e", "replace", 2, 2)]
    assert run.nodes["a"].result == {"a/b": {"c~d": 1, "e": 2}}


def test_result_sequences_are_numbered_per_node() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    for task_id in claim(run):
        dispatch_id = str(run.nodes[task_id].dispatch_id)
        run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id="w1", now=at(1))
    run.collect_events()

    feedback(run, "a", metadata={"results": {"x": 1, "y": 2}})
    feedback(run, "b", metadata={"results": {"x": 1}})

    assert [(d[0], d[3]) for d in deltas(run)] == [("/x", 1), ("/y", 2), ("/x", 1)]


def test_a_summary_without_results_is_merged_as_the_summary_key(run: Run) -> None:
    feedback(run, "a", metadata={"summary": "half way"})

    assert run.nodes["a"].result == {"summary": "half way"}


def test_results_that_are_not_an_object_are_refused_and_record_nothing(run: Run) -> None:
    with pytest.raises(InvalidCommand):
        feedback(run, "a", metadata={"results": [1, 2]})

    assert run.collect_events() == []


def test_a_success_without_a_result_keeps_the_merged_result(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"value": 3}})

    finish(run, "a", result=None)

    assert run.nodes["a"].result == {"value": 3}


def test_a_success_with_a_result_replaces_the_merged_result(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"value": 3}})

    finish(run, "a", result={"value": 4})

    assert run.nodes["a"].result == {"value": 4}


# chunks ------------------------------------------------------------------------------------------


def test_chunks_are_numbered_per_node_on_channel_log_by_default(run: Run) -> None:
    feedback(run, "a", chunks=[{"text": "one"}, {"channel": "stdout", "text": "two"}])
    feedback(
        run,
        "a",
        chunks=[{"data_base64": "AAE=", "mime_type": "application/octet-stream"}],
    )

    chunks = [e for e in run.collect_events() if isinstance(e, NodeChunkAppended)]
    assert [(c.channel, c.sequence) for c in chunks] == [("log", 1), ("stdout", 2), ("log", 3)]
    assert [c.text for c in chunks] == ["one", "two", None]
    assert (chunks[2].data_base64, chunks[2].mime_type) == ("AAE=", "application/octet-stream")
    assert run.nodes["a"].chunk_sequence == 3


def test_a_chunk_is_terminal_when_its_metadata_says_so(run: Run) -> None:
    feedback(
        run,
        "a",
        chunks=[{"text": "x"}, {"text": "end", "metadata": {"terminal": True, "k": 1}}],
    )

    chunks = [e for e in run.collect_events() if isinstance(e, NodeChunkAppended)]
    assert [c.terminal for c in chunks] == [False, True]
    assert chunks[1].metadata == {"terminal": True, "k": 1}


# progress, stage, message, metadata, metrics -----------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "kept"),
    [(0.5, 0.5), (-2.0, 0.0), (7.0, 1.0), (0.0, 0.0), (1.0, 1.0), (float("inf"), 1.0)],
)
def test_progress_is_clamped_to_zero_to_one(run: Run, reported: float, kept: float) -> None:
    feedback(run, "a", progress=reported)

    assert run.nodes["a"].progress == kept


def test_a_progress_that_is_not_a_number_is_never_kept_out_of_range(run: Run) -> None:
    feedback(run, "a", progress=float("nan"))

    progress = run.nodes["a"].progress
    assert progress is not None and 0.0 <= progress <= 1.0


def test_stage_and_message_are_kept_and_omitted_fields_leave_them(run: Run) -> None:
    feedback(run, "a", stage="build", message="compiling", progress=0.2)
    feedback(run, "a", progress=0.4)

    node = run.nodes["a"]
    assert (node.stage, node.message, node.progress) == ("build", "compiling", 0.4)


def test_metadata_merges_and_null_deletes(run: Run) -> None:
    feedback(run, "a", metadata={"k1": 1, "k2": {"x": 1}})
    feedback(run, "a", metadata={"k1": None, "k3": "v"})

    assert run.nodes["a"].metadata == {"k2": {"x": 1}, "k3": "v"}


def test_results_are_not_copied_into_metadata(run: Run) -> None:
    feedback(run, "a", metadata={"results": {"x": 1}, "other": 2})

    assert run.nodes["a"].metadata == {"other": 2}


def test_metrics_merge(run: Run) -> None:
    feedback(run, "a", metrics={"cpu": 1, "mem": 2})
    feedback(run, "a", metrics={"cpu": 3})

    assert run.nodes["a"].metrics == {"cpu": 3, "mem": 2}


def test_a_repeated_feedback_id_is_a_no_op(run: Run) -> None:
    assert feedback(run, "a", feedback_id="f1", progress=0.1, chunks=[{"text": "x"}]) is True
    run.collect_events()

    again = feedback(run, "a", feedback_id="f1", progress=0.9, chunks=[{"text": "x"}])

    assert again is False
    assert run.collect_events() == []
    assert run.nodes["a"].progress == 0.1
    assert run.nodes["a"].chunk_sequence == 1


def test_feedback_without_an_id_is_never_deduplicated(run: Run) -> None:
    feedback(run, "a", progress=0.1)
    feedback(run, "a", progress=0.1)

    names = pending_names(run)
    assert names.count("NodeFeedbackRecorded") == 2


def test_feedback_events_carry_what_was_reported(run: Run) -> None:
    feedback(run, "a", feedback_id="f9", stage="s", progress=3.0, message="m", metrics={"n": 1})

    (recorded,) = [e for e in run.collect_events() if isinstance(e, NodeFeedbackRecorded)]
    assert (recorded.feedback_id, recorded.stage, recorded.progress) == ("f9", "s", 1.0)
    assert (recorded.message, recorded.metrics) == ("m", {"n": 1})


def test_feedback_with_a_wrong_dispatch_id_is_a_conflict(run: Run) -> None:
    with pytest.raises(LifecycleConflict):
        run.record_feedback(
            task_id="a",
            dispatch_id="other",
            feedback_id=None,
            stage=None,
            progress=0.5,
            message=None,
            metadata={},
            metrics={},
            chunks=[],
            usage=None,
            now=at(3),
        )
    assert run.collect_events() == []


def test_feedback_for_a_finished_node_is_a_conflict(run: Run) -> None:
    dispatch_id = str(run.nodes["a"].dispatch_id)
    finish(run, "a")
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.record_feedback(
            task_id="a",
            dispatch_id=dispatch_id,
            feedback_id=None,
            stage=None,
            progress=0.5,
            message=None,
            metadata={},
            metrics={},
            chunks=[],
            usage=None,
            now=at(3),
        )
    assert run.collect_events() == []


# results -----------------------------------------------------------------------------------------


def test_skipped_is_normalised_to_succeeded_and_kept_as_reported_status(run: Run) -> None:
    assert finish(run, "a", "skipped") == "succeeded"

    assert run.nodes["a"].reported_status == "skipped"
    assert list(claim(run)) == ["b"]


def test_status_case_is_normalised(run: Run) -> None:
    assert finish(run, "a", "SUCCEEDED") == "succeeded"


def test_an_unknown_result_status_is_refused_and_records_nothing(run: Run) -> None:
    with pytest.raises(InvalidCommand):
        finish(run, "a", "running")

    assert run.collect_events() == []
    assert run.nodes["a"].status == "running"


def test_a_result_keeps_metadata_artifacts_duration_and_error(run: Run) -> None:
    run.record_result(
        task_id="a",
        dispatch_id=str(run.nodes["a"].dispatch_id),
        status="failed",
        result=None,
        error={"code": "E1", "message": "bad", "details": {"line": 3}},
        metadata={"m": 1},
        artifacts=[{"uri": "s3://x"}],
        duration_ms=42,
        usage=None,
        now=at(4),
    )

    node = run.nodes["a"]
    assert node.error == {"code": "E1", "message": "bad", "details": {"line": 3}}
    assert (node.metadata, node.artifacts, node.duration_ms) == ({"m": 1}, [{"uri": "s3://x"}], 42)
    assert node.finished_at == at(4)


def test_a_result_for_a_terminal_node_is_a_conflict_and_records_nothing() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    dispatched = claim(run)
    for task_id, dispatch_id in dispatched.items():
        run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id="w1", now=at(1))
    finish(run, "a")
    run.collect_events()

    with pytest.raises(LifecycleConflict):
        run.record_result(
            task_id="a",
            dispatch_id=dispatched["a"],
            status="succeeded",
            result=None,
            error=None,
            metadata={},
            artifacts=[],
            duration_ms=None,
            usage=None,
            now=at(3),
        )
    assert run.collect_events() == []


def test_a_result_with_a_wrong_dispatch_id_is_a_conflict(run: Run) -> None:
    with pytest.raises(LifecycleConflict):
        run.record_result(
            task_id="a",
            dispatch_id="stale",
            status="succeeded",
            result=None,
            error=None,
            metadata={},
            artifacts=[],
            duration_ms=None,
            usage=None,
            now=at(3),
        )
    assert run.collect_events() == []


def test_a_result_for_a_node_never_dispatched_is_a_conflict(run: Run) -> None:
    with pytest.raises(LifecycleConflict):
        run.record_result(
            task_id="b",
            dispatch_id="x",
            status="succeeded",
            result=None,
            error=None,
            metadata={},
            artifacts=[],
            duration_ms=None,
            usage=None,
            now=at(3),
        )


def test_a_failure_without_an_error_gets_a_default_error(run: Run) -> None:
    finish(run, "a", "failed")

    assert run.nodes["a"].error is not None
    assert run.nodes["a"].error["message"]


def test_a_cancelled_result_cancels_the_node_and_its_dependents(run: Run) -> None:
    assert finish(run, "a", "cancelled") == "cancelled"

    assert run.nodes["b"].status == "cancelled"
    assert run.status == "cancelled"
    assert run.finished_at is not None


# command error -----------------------------------------------------------------------------------


def test_a_command_error_fails_the_named_node() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    claim(run)

    status = run.record_command_error(task_id="a", dispatch_id=None, message="exit 2", now=at(3))

    assert status == "failed"
    assert run.nodes["a"].error == {"code": "command_error", "message": "exit 2"}
    assert run.nodes["b"].status == "cancelled"
    assert run.status == "failed"


def test_a_command_error_without_a_node_fails_the_last_dispatched_one() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    claim(run, limit=1)
    claim(run, limit=1)

    run.record_command_error(task_id=None, dispatch_id=None, message="oops", now=at(3))

    assert run.last_dispatched == "b"
    assert run.nodes["b"].status == "failed"
    assert run.nodes["a"].status == "cancelled"


def test_a_command_error_with_nothing_dispatched_is_a_conflict() -> None:
    run = new_run(linear("a"))

    with pytest.raises(LifecycleConflict):
        run.record_command_error(task_id=None, dispatch_id=None, message="x", now=at(3))
    assert pending_names(run) == ["RunCreated"]


def test_a_command_error_with_a_wrong_dispatch_id_is_a_conflict(run: Run) -> None:
    with pytest.raises(LifecycleConflict):
        run.record_command_error(task_id="a", dispatch_id="nope", message="x", now=at(3))
    assert run.collect_events() == []


def test_a_command_error_is_retried_under_max_attempts() -> None:
    run = new_run(linear("a"), max_attempts=2)
    start(run, "a")

    assert run.record_command_error(task_id="a", dispatch_id=None, message="x", now=at(3)) == (
        "queued"
    )
    assert run.nodes["a"].attempts == 1


# bindings ----------------------------------------------------------------------------------------


def ported(
    node_id: str,
    *,
    out: dict[str, Any] | None = None,
    into: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    ui: dict[str, Any] = {}
    if out is not None:
        ui["outputPorts"] = [{"key": "out", "binding": out}]
    if into is not None:
        ui["inputPorts"] = [{"key": "in", "binding": into}]
    return task(node_id, ui=ui, **extra)


def bound_run(out: dict[str, Any], into: dict[str, Any], **flow_extra: Any) -> Run:
    flow = workflow(
        [ported("a", out=out, parameters={"p": {"q": 5}}), ported("b", into=into)],
        [edge("a", "b", "out", "in")],
        **flow_extra,
    )
    run = new_run(flow)
    start(run, "a")
    return run


def test_a_pointer_binding_copies_a_result_value_into_the_target_parameters() -> None:
    run = bound_run({"path": "/results/value"}, {"path": "/parameters/x"})

    finish(run, "a", result={"value": 3})

    assert run.nodes["b"].parameters == {"x": 3}
    dispatched = claim(run)
    assert list(dispatched) == ["b"]


def test_a_binding_pointer_decodes_tilde_escapes() -> None:
    run = bound_run({"path": "/results/a~1b/c~0d"}, {"path": "/parameters/in~1put/x~0"})

    finish(run, "a", result={"a/b": {"c~d": "v"}})

    assert run.nodes["b"].parameters == {"in/put": {"x~": "v"}}


def test_a_dotted_binding_path_reads_nested_results() -> None:
    run = bound_run({"path": "results.outer.inner"}, {"path": "parameters.target.deep"})

    finish(run, "a", result={"outer": {"inner": [1, 2]}})

    assert run.nodes["b"].parameters == {"target": {"deep": [1, 2]}}


def test_a_binding_may_read_the_source_parameters() -> None:
    run = bound_run({"path": "/parameters/p/q"}, {"path": "/parameters/x"})

    finish(run, "a", result={})

    assert run.nodes["b"].parameters == {"x": 5}


def test_a_missing_source_value_is_skipped() -> None:
    run = bound_run({"path": "/results/value"}, {"path": "/parameters/x"})

    finish(run, "a", result={"other": 1})

    assert run.nodes["b"].parameters == {}


def test_bindings_apply_on_success_only() -> None:
    flow = workflow(
        [ported("a", out={"path": "/results/value"}), ported("b", into={"path": "/parameters/x"})],
        [edge("a", "b", "out", "in")],
    )
    run = new_run(flow, max_attempts=2)
    start(run, "a")
    run.record_result(
        task_id="a",
        dispatch_id=str(run.nodes["a"].dispatch_id),
        status="failed",
        result={"value": 3},
        error=None,
        metadata={},
        artifacts=[],
        duration_ms=None,
        usage=None,
        now=at(2),
    )

    assert run.nodes["b"].parameters == {}


def test_a_binding_into_anything_but_parameters_carries_nothing() -> None:
    run = bound_run({"path": "/results/value"}, {"path": "/results/x"})

    finish(run, "a", result={"value": 3})

    assert run.nodes["b"].parameters == {}


def test_a_local_scope_prefix_naming_the_edge_nodes_binds() -> None:
    run = bound_run(
        {"path": "/results/value", "prefix": "#a"}, {"path": "/parameters/x", "prefix": "#b"}
    )

    finish(run, "a", result={"value": 3})

    assert run.nodes["b"].parameters == {"x": 3}


def test_a_local_scope_prefix_naming_another_node_carries_nothing() -> None:
    run = bound_run({"path": "/results/value", "prefix": "#b"}, {"path": "/parameters/x"})

    finish(run, "a", result={"value": 3})

    assert run.nodes["b"].parameters == {}


def test_an_alias_scope_prefix_binds_when_the_node_belongs_to_that_subgraph() -> None:
    run = bound_run(
        {"path": "/results/value", "prefix": "@lib.#a"},
        {"path": "/parameters/x"},
        subgraphs=[subgraph("lib", [task("a")])],
    )

    finish(run, "a", result={"value": 3})

    assert run.nodes["b"].parameters == {"x": 3}


def test_an_alias_scope_prefix_naming_another_subgraph_carries_nothing() -> None:
    run = bound_run(
        {"path": "/results/value", "prefix": "@other.#a"},
        {"path": "/parameters/x"},
        subgraphs=[subgraph("lib", [task("a")]), subgraph("other", [task("z")])],
    )

    finish(run, "a", result={"value": 3})

    assert run.nodes["b"].parameters == {}


def test_bindings_are_recorded_on_the_success_event() -> None:
    run = bound_run({"path": "/results/value"}, {"path": "/parameters/x"})
    run.collect_events()

    finish(run, "a", result={"value": 3})

    succeeded = [e for e in run.collect_events() if type(e).__name__ == "NodeSucceeded"]
    assert [getattr(e, "bindings", None) for e in succeeded] == [
        [{"task_id": "b", "path": ["x"], "value": 3}]
    ]


# usage -------------------------------------------------------------------------------------------


def test_usage_per_node_is_summed_on_the_run() -> None:
    run = new_run(workflow([task("a"), task("b")]))
    for task_id, dispatch_id in claim(run).items():
        run.acknowledge(task_id=task_id, dispatch_id=dispatch_id, worker_id="w1", now=at(1))

    feedback(run, "a", usage=NodeUsage(10, 5, 2, 0.01, "m"))
    feedback(run, "a", usage=NodeUsage(20, 6, 2, 0.02, "m"))
    finish(run, "b", usage=NodeUsage(1, 1, 0, 0.5, "n"))

    assert run.nodes["a"].usage == NodeUsage(20, 6, 2, 0.02, "m")
    total = run.usage
    assert (total.input_tokens, total.output_tokens, total.reasoning_tokens) == (21, 7, 2)
    assert total.total_tokens == 30
    assert total.cost_usd == pytest.approx(0.52)


def test_a_run_without_usage_totals_zero() -> None:
    assert new_run(linear("a")).usage.total_tokens == 0


# thread links ------------------------------------------------------------------------------------


def test_a_node_can_be_linked_to_a_thread(run: Run) -> None:
    run.link_thread(task_id="b", thread_id="thr_1", now=at(3))

    assert run.nodes["b"].thread_id == "thr_1"
    assert pending_names(run) == ["ThreadLinked"]
