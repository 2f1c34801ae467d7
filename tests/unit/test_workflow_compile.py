"""Workflows in seed 001's format: the definition hash, what compiles, and what is refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from domain.errors import InvalidCommand
from domain.run import Run
from domain.workflow import compile_workflow, definition_hash
from tests.unit.builders import T0
from tests.unit.run_builders import (
    chain,
    container,
    edge,
    gate,
    linear,
    nested_three_levels,
    subgraph,
    task,
    workflow,
)

VECTOR_WORKFLOW: dict[str, Any] = {
    "id": "wf",
    "nodes": [
        {"id": "a", "type": "task", "parameters": {"é": 1}},
        {"id": "b", "type": "task"},
    ],
    "edges": [{"source": {"node": "a", "port": "out"}, "target": {"node": "b", "port": "in"}}],
}
VECTOR_CANONICAL = (
    '{"edges":[{"source":{"node":"a","port":"out"},"target":{"node":"b","port":"in"}}],'
    '"id":"wf","nodes":[{"id":"a","parameters":{"\\u00e9":1},"type":"task"},'
    '{"id":"b","type":"task"}]}'
)
VECTOR_HASH = "154eaa902070eb8da09685dbda3f9eb871b89edb9efb4ec81f08c89483ec9f31"


# definition hash ---------------------------------------------------------------------------------


def test_definition_hash_is_sha256_of_sorted_compact_ascii_json() -> None:
    canonical = json.dumps(
        VECTOR_WORKFLOW, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )

    assert canonical == VECTOR_CANONICAL
    assert definition_hash(VECTOR_WORKFLOW) == hashlib.sha256(canonical.encode()).hexdigest()


def test_definition_hash_test_vector_is_pinned() -> None:
    assert definition_hash(VECTOR_WORKFLOW) == VECTOR_HASH


def test_definition_hash_ignores_key_order_but_not_values() -> None:
    reordered = {"nodes": VECTOR_WORKFLOW["nodes"], "edges": VECTOR_WORKFLOW["edges"], "id": "wf"}
    renamed = {**VECTOR_WORKFLOW, "id": "wf2"}

    assert definition_hash(reordered) == VECTOR_HASH
    assert definition_hash(renamed) != VECTOR_HASH


# compiling ---------------------------------------------------------------------------------------


def test_top_level_nodes_are_addressed_by_their_own_ids_with_dependencies() -> None:
    plan = compile_workflow(linear("a", "b", "c"))

    assert plan.root_task_ids == ["a", "b", "c"]
    assert plan.nodes["a"].dependencies == []
    assert plan.nodes["b"].dependencies == ["a"]
    assert plan.nodes["b"].dependents == ["c"]
    assert plan.frames == {}


def test_nested_subgraphs_compile_to_frames_named_by_their_alias_chain() -> None:
    plan = compile_workflow(nested_three_levels())

    level1 = "wf::c1::sg1"
    level2 = f"{level1}::c2::sg2"
    level3 = f"{level2}::c3::sg3"
    assert set(plan.frames) == {level1, level2, level3}
    assert plan.frames[level1].container_task_id == "c1"
    assert plan.frames[level1].parent_frame_id is None
    assert plan.frames[level2].container_task_id == f"{level1}::c2"
    assert plan.frames[level2].parent_frame_id == level1
    assert plan.frames[level3].task_ids == [f"{level3}::p", f"{level3}::q"]
    assert plan.nodes[f"{level3}::q"].dependencies == [f"{level3}::p"]
    assert plan.nodes["c1"].opens_frame == level1
    assert plan.root_task_ids == ["start", "c1", "end"]


def test_a_workflow_without_an_id_is_rooted_at_root() -> None:
    flow = workflow([container("c", "sg")], subgraphs=[subgraph("sg", [task("x")])])
    del flow["id"]

    assert "root::c::sg::x" in compile_workflow(flow).nodes


def test_the_same_subgraph_may_run_under_two_containers() -> None:
    flow = workflow(
        [container("c1", "sg"), container("c2", "sg")],
        chain("c1", "c2"),
        [subgraph("sg", [task("x")])],
    )

    plan = compile_workflow(flow)

    assert {"wf::c1::sg::x", "wf::c2::sg::x"} <= set(plan.nodes)


def test_resource_refs_naming_exactly_one_worker_make_it_preferred() -> None:
    flow = workflow(
        [
            task("one", resourceRefs=[{"workerId": "w2"}, {"workerId": "w2", "kind": "gpu"}]),
            task("two", resourceRefs=[{"workerId": "w1"}, {"workerId": "w2"}]),
            task("none", resourceRefs=[{"kind": "gpu"}]),
        ]
    )

    plan = compile_workflow(flow)

    assert plan.nodes["one"].preferred_worker_id == "w2"
    assert plan.nodes["two"].preferred_worker_id is None
    assert plan.nodes["none"].preferred_worker_id is None


# refusals ----------------------------------------------------------------------------------------


def refused(flow: Any) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as caught:
        compile_workflow(flow)
    return caught.value


def test_a_cycle_is_refused() -> None:
    flow = workflow([task("a"), task("b"), task("c")], [*chain("a", "b", "c"), edge("c", "a")])

    assert "cycle" in refused(flow).message


def test_a_self_loop_is_refused() -> None:
    assert "cycle" in refused(workflow([task("a")], [edge("a", "a")])).message


def test_a_cycle_inside_a_subgraph_is_refused() -> None:
    flow = workflow(
        [container("c", "sg")],
        subgraphs=[subgraph("sg", [task("x"), task("y")], [edge("x", "y"), edge("y", "x")])],
    )

    assert "cycle" in refused(flow).message


def test_an_edge_to_an_unknown_node_is_refused() -> None:
    error = refused(workflow([task("a")], [edge("a", "ghost")]))

    assert "unknown node ghost" in error.message
    assert error.details["node_id"] == "ghost"


def test_an_edge_from_an_unknown_node_is_refused() -> None:
    assert "unknown node" in refused(workflow([task("a")], [edge("ghost", "a")])).message


def test_a_duplicate_node_id_is_refused() -> None:
    error = refused(workflow([task("a"), task("a", "other")]))

    assert "duplicate node id a" in error.message


def test_a_missing_subgraph_is_refused() -> None:
    error = refused(workflow([container("c", "nowhere")], subgraphs=[]))

    assert "missing" in error.message
    assert error.details["subgraph_id"] == "nowhere"


def test_a_subgraph_containing_itself_is_refused() -> None:
    flow = workflow([container("c", "sg")], subgraphs=[subgraph("sg", [container("inner", "sg")])])

    assert "contains itself" in refused(flow).message


def test_subgraphs_containing_each_other_are_refused() -> None:
    flow = workflow(
        [container("c", "sg1")],
        subgraphs=[
            subgraph("sg1", [container("to2", "sg2")]),
            subgraph("sg2", [container("to1", "sg1")]),
        ],
    )

    assert "contains itself" in refused(flow).message


@pytest.mark.parametrize(
    "flow",
    [
        None,
        [],
        {"id": "wf"},
        {"id": "wf", "nodes": []},
        {"id": "wf", "nodes": [{"id": "a"}]},
        {"id": "wf", "nodes": [{"type": "task"}]},
        {"id": "wf", "nodes": [{"id": "a::b", "type": "task"}]},
        {"id": "wf", "nodes": [{"id": "a", "type": "task"}], "edges": "a->b"},
        {"id": "wf", "nodes": [{"id": "a", "type": "task"}], "edges": [{"source": {}}]},
        {"id": "wf", "nodes": [{"id": "a", "type": "task", "parameters": [1]}]},
        {"id": "wf", "nodes": [{"id": "a", "type": "task", "maxAttempts": 0}]},
        {"id": "wf", "nodes": [{"id": "a", "type": "workflow.container"}]},
        {"id": "wf", "nodes": [{"id": "a", "type": "task"}], "subgraphs": [{"id": "s"}]},
    ],
)
def test_malformed_workflows_are_refused(flow: Any) -> None:
    refused(flow)


def test_creating_a_run_from_a_malformed_workflow_records_nothing() -> None:
    flow = workflow([task("a")], [edge("a", "ghost")])

    with pytest.raises(InvalidCommand):
        Run.create(
            run_id="run_1",
            client_id="c1",
            executor_id=None,
            workspace=None,
            automation_id=None,
            trigger=None,
            max_attempts=1,
            workflow=flow,
            definition_hash=definition_hash(flow),
            now=T0,
        )


def test_max_attempts_below_one_is_refused() -> None:
    flow = linear("a")

    with pytest.raises(InvalidCommand):
        Run.create(
            run_id="run_1",
            client_id="c1",
            executor_id=None,
            workspace=None,
            automation_id=None,
            trigger=None,
            max_attempts=0,
            workflow=flow,
            definition_hash=definition_hash(flow),
            now=T0,
        )


def test_gates_are_nodes_of_type_approval() -> None:
    plan = compile_workflow(workflow([task("a"), gate("review")], chain("a", "review")))

    assert plan.nodes["review"].is_gate
    assert not plan.nodes["a"].is_gate
