"""Workflows in seed 001's format, checked and compiled into the nodes a run tracks.

A workflow has ``nodes``, ``edges`` (``{source: {node, port}, target: {node, port}}``)
and ``subgraphs`` (``{id, definition: {nodes, edges}}``). A node of type
``workflow.container`` with ``containerConfig.subgraphId`` opens a nested frame
running that subgraph. Frames are named by their alias chain joined with ``::``
(``wf::container::subgraph``), and a node inside one by its task id
``frame_id::node_id``; a node of the top graph is addressed by its own id.

Everything here is a pure function of the workflow, so the run's event bodies can
rebuild the same plan when the run is replayed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from domain.bindings import EdgeBinding, edge_bindings
from domain.errors import InvalidCommand

CONTAINER = "workflow.container"
GATE = "approval"
ROOT_ALIAS = "root"
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_TASK_ID = 512
MAX_DEPTH = 16


def definition_hash(workflow: dict[str, Any]) -> str:
    """sha256 of the workflow as canonical JSON (sorted keys, no spaces, ASCII)."""
    canonical = json.dumps(workflow, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class NodeSpec:
    """One node of the compiled plan, in the top graph or in a frame."""

    task_id: str
    node_id: str
    frame_id: str | None
    type: str
    package_name: str
    package_version: str
    parameters: dict[str, Any]
    resource_refs: list[dict[str, Any]]
    dependencies: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    max_attempts: int | None = None
    opens_frame: str | None = None
    bindings: list[EdgeBinding] = field(default_factory=list)

    @property
    def is_gate(self) -> bool:
        return self.type == GATE

    @property
    def is_container(self) -> bool:
        return self.type == CONTAINER

    @property
    def preferred_worker_id(self) -> str | None:
        """The worker the resource refs name, when they name exactly one [1908]."""
        workers = {
            ref.get("workerId") or ref.get("worker_id")
            for ref in self.resource_refs
            if isinstance(ref, dict) and (ref.get("workerId") or ref.get("worker_id"))
        }
        return str(next(iter(workers))) if len(workers) == 1 else None


@dataclass
class FrameSpec:
    frame_id: str
    container_task_id: str
    parent_frame_id: str | None
    subgraph_id: str
    task_ids: list[str]


@dataclass
class Plan:
    """Every node of a workflow (frames included) by task id, and every frame by id."""

    nodes: dict[str, NodeSpec]
    frames: dict[str, FrameSpec]
    root_task_ids: list[str]


def compile_workflow(workflow: Any) -> Plan:
    """The plan of ``workflow``; raises :class:`InvalidCommand` naming what is wrong.

    Refused: a node without a string id or type, a duplicate node id in one graph,
    an edge naming an unknown node, a cycle, a container whose subgraph is missing,
    and subgraphs that contain themselves.
    """
    if not isinstance(workflow, dict):
        raise InvalidCommand("workflow must be an object")
    subgraphs = _subgraphs(workflow)
    plan = Plan(nodes={}, frames={}, root_task_ids=[])
    root_alias = str(workflow.get("id") or ROOT_ALIAS)
    plan.root_task_ids = _compile_graph(
        plan, workflow, subgraphs, frame_id=None, alias_chain=(root_alias,), depth=0
    )
    return plan


def _subgraphs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw = workflow.get("subgraphs") or []
    if not isinstance(raw, list):
        raise InvalidCommand("workflow.subgraphs must be a list")
    found: dict[str, dict[str, Any]] = {}
    for index, subgraph in enumerate(raw):
        if not isinstance(subgraph, dict) or not isinstance(subgraph.get("id"), str):
            raise InvalidCommand(f"workflow.subgraphs[{index}] needs a string id")
        definition = subgraph.get("definition")
        if not isinstance(definition, dict):
            raise InvalidCommand(f"subgraph {subgraph['id']} needs a definition object")
        if subgraph["id"] in found:
            raise InvalidCommand(f"duplicate subgraph id {subgraph['id']}")
        found[subgraph["id"]] = definition
    return found


def _compile_graph(
    plan: Plan,
    graph: dict[str, Any],
    subgraphs: dict[str, dict[str, Any]],
    *,
    frame_id: str | None,
    alias_chain: tuple[str, ...],
    depth: int,
) -> list[str]:
    where = f"subgraph frame {frame_id}" if frame_id else "workflow"
    nodes = _nodes(graph, where)
    dependencies = _edges(graph, nodes, where)
    _ensure_acyclic(list(nodes), dependencies, where)
    bindings = edge_bindings(graph, nodes, subgraphs)

    def task_id(node_id: str) -> str:
        return f"{frame_id}::{node_id}" if frame_id else node_id

    task_ids: list[str] = []
    for node_id, raw in nodes.items():
        if len(task_id(node_id)) > MAX_TASK_ID:
            raise InvalidCommand(
                f"task id {task_id(node_id)[:100]}… is over {MAX_TASK_ID} characters"
            )
        spec = _node_spec(raw, task_id(node_id), frame_id)
        spec.dependencies = [task_id(d) for d in dependencies[node_id]]
        spec.bindings = [b.scoped(task_id) for b in bindings.get(node_id, [])]
        plan.nodes[spec.task_id] = spec
        task_ids.append(spec.task_id)
    for node_id in nodes:
        for dependency in dependencies[node_id]:
            plan.nodes[task_id(dependency)].dependents.append(task_id(node_id))
    for node_id, raw in nodes.items():
        if raw.get("type") != CONTAINER:
            continue
        subgraph_id = _subgraph_id(raw, node_id)
        definition = subgraphs.get(subgraph_id)
        if definition is None:
            raise InvalidCommand(
                f"container node {node_id} names subgraph {subgraph_id}, which is missing",
                node_id=node_id,
                subgraph_id=subgraph_id,
            )
        if depth + 1 > MAX_DEPTH or subgraph_id in alias_chain[1::2]:
            raise InvalidCommand(
                f"subgraph {subgraph_id} contains itself (through container {node_id})",
                subgraph_id=subgraph_id,
            )
        chain = (*alias_chain, node_id, subgraph_id)
        child_frame = "::".join(chain)
        container_task = task_id(node_id)
        plan.nodes[container_task].opens_frame = child_frame
        children = _compile_graph(
            plan, definition, subgraphs, frame_id=child_frame, alias_chain=chain, depth=depth + 1
        )
        plan.frames[child_frame] = FrameSpec(
            child_frame, container_task, frame_id, subgraph_id, children
        )
    return task_ids


def _nodes(graph: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    raw = graph.get("nodes")
    if not isinstance(raw, list) or not raw:
        raise InvalidCommand(f"{where} needs a non-empty list of nodes")
    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(raw):
        if not isinstance(node, dict):
            raise InvalidCommand(f"{where} nodes[{index}] must be an object")
        node_id, node_type = node.get("id"), node.get("type")
        if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id) or "::" in node_id:
            raise InvalidCommand(
                f"{where} nodes[{index}] needs an id of 1-128 letters, digits and . _ : -"
                " (not first, no '::')"
            )
        if not isinstance(node_type, str) or not node_type:
            raise InvalidCommand(f"node {node_id} needs a string type")
        if node_id in nodes:
            raise InvalidCommand(f"duplicate node id {node_id} in {where}", node_id=node_id)
        nodes[node_id] = node
    return nodes


def _edges(
    graph: dict[str, Any], nodes: dict[str, dict[str, Any]], where: str
) -> dict[str, list[str]]:
    raw = graph.get("edges") or []
    if not isinstance(raw, list):
        raise InvalidCommand(f"{where} edges must be a list")
    dependencies: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for index, edge in enumerate(raw):
        ends = []
        for side in ("source", "target"):
            end = edge.get(side) if isinstance(edge, dict) else None
            node_id = end.get("node") if isinstance(end, dict) else None
            if not isinstance(node_id, str):
                raise InvalidCommand(f"{where} edges[{index}] needs {side}.node")
            if node_id not in nodes:
                raise InvalidCommand(
                    f"{where} edges[{index}] names unknown node {node_id}", node_id=node_id
                )
            ends.append(node_id)
        source, target = ends
        if source not in dependencies[target]:
            dependencies[target].append(source)
    return dependencies


def _ensure_acyclic(node_ids: list[str], dependencies: dict[str, list[str]], where: str) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in node_ids:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node_id, index = stack[-1]
            deps = dependencies[node_id]
            if index == len(deps):
                state[node_id] = 2
                stack.pop()
                continue
            stack[-1] = (node_id, index + 1)
            dep = deps[index]
            if state.get(dep) == 1:
                raise InvalidCommand(f"{where} has a cycle through node {dep}", node_id=dep)
            if dep not in state:
                state[dep] = 1
                stack.append((dep, 0))


def _subgraph_id(node: dict[str, Any], node_id: str) -> str:
    config = node.get("containerConfig")
    subgraph_id = config.get("subgraphId") if isinstance(config, dict) else None
    if not isinstance(subgraph_id, str) or not subgraph_id:
        raise InvalidCommand(f"container node {node_id} needs containerConfig.subgraphId")
    return subgraph_id


def _node_spec(raw: dict[str, Any], task_id: str, frame_id: str | None) -> NodeSpec:
    package = raw.get("package") if isinstance(raw.get("package"), dict) else {}
    parameters = raw.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidCommand(f"node {raw['id']} parameters must be an object")
    refs = raw.get("resourceRefs") or raw.get("resource_refs") or []
    if not isinstance(refs, list):
        raise InvalidCommand(f"node {raw['id']} resourceRefs must be a list")
    max_attempts = raw.get("maxAttempts", raw.get("max_attempts"))
    if max_attempts is not None and (
        not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1
    ):
        raise InvalidCommand(f"node {raw['id']} maxAttempts must be a positive integer")
    assert isinstance(package, dict)
    return NodeSpec(
        task_id=task_id,
        node_id=str(raw["id"]),
        frame_id=frame_id,
        type=str(raw["type"]),
        package_name=str(package.get("name") or ""),
        package_version=str(package.get("version") or ""),
        parameters=dict(parameters or {}),
        resource_refs=[r for r in refs if isinstance(r, dict)],
        max_attempts=max_attempts,
    )
