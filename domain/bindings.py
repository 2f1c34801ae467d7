"""Edge bindings (seed 001 [1997]): on success, a node's output port value flows into the
parameters of the node its edge points at.

A port's ``binding.path`` is a JSON pointer (``/results/value``, with ``~0``/``~1``
escapes) or a dotted path (``results.value``, ``results.items[0]``) whose first
segment is ``results`` or ``parameters``. A ``prefix`` (or ``scope``) may name the
node explicitly: ``#node`` or ``@alias.#node`` (``alias`` a subgraph of the graph
whose definition holds the node). A binding that names another node than its
edge's, or a target outside ``parameters``, carries nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.json_pointer import split_pointer

ROOTS = ("parameters", "results")


@dataclass
class EdgeBinding:
    source_root: str
    source_path: list[str]
    target_task_id: str
    target_path: list[str]

    def scoped(self, task_id: Callable[[str], str]) -> EdgeBinding:
        return EdgeBinding(
            self.source_root, self.source_path, task_id(self.target_task_id), self.target_path
        )


def parse_path(path: Any) -> tuple[str, list[str]] | None:
    """``(root, segments)`` of a binding path, or None when it is not one."""
    if not isinstance(path, str) or not path:
        return None
    if path.startswith("/"):
        segments = split_pointer(path)
    else:
        segments = [s for s in path.replace("[", ".").replace("]", "").split(".") if s]
    if not segments or segments[0] not in ROOTS:
        return None
    return segments[0], segments[1:]


@dataclass(frozen=True)
class ScopeHint:
    aliases: tuple[str, ...]
    node_id: str | None


def parse_prefix(prefix: Any) -> ScopeHint | None:
    """``#node`` → that node; ``@a.b.#node`` → node inside subgraph chain a, b."""
    if not isinstance(prefix, str):
        return None
    text = prefix.strip()
    if text.startswith("@"):
        tokens = [t for t in text[1:].split(".") if t]
        node_id = next((t[1:] or None for t in tokens if t.startswith("#")), None)
        aliases = tuple(t for t in tokens if not t.startswith("#"))
        return ScopeHint(aliases, node_id) if aliases else None
    if text.startswith("#"):
        return ScopeHint((), text[1:] or None)
    return None


def _hint(binding: dict[str, Any]) -> ScopeHint | None:
    scope = binding.get("scope")
    if isinstance(scope, dict):
        aliases = list(scope.get("subgraphAliases") or scope.get("subgraph_aliases") or [])
        workflow_alias = scope.get("workflowAlias") or scope.get("workflow_alias")
        if workflow_alias and workflow_alias not in aliases:
            aliases.insert(0, workflow_alias)
        node_id = scope.get("nodeId") or scope.get("node_id")
        return ScopeHint(tuple(str(a) for a in aliases), node_id)
    return parse_prefix(binding.get("prefix"))


class ScopeIndex:
    """Which subgraph alias chains each node of a graph belongs to."""

    def __init__(self, graph: dict[str, Any], node_ids: set[str]) -> None:
        self.node_ids = node_ids
        raw = graph.get("subgraphs") or []
        by_alias = {
            str(s.get("alias") or s.get("id")): s
            for s in raw
            if isinstance(s, dict) and (s.get("alias") or s.get("id"))
        }
        self.memberships: dict[str, set[tuple[str, ...]]] = {}
        for alias, subgraph in by_alias.items():
            chain = _chain(alias, by_alias)
            definition = subgraph.get("definition")
            nodes = definition.get("nodes") if isinstance(definition, dict) else None
            for node in nodes if isinstance(nodes, list) else []:
                node_id = node.get("id") if isinstance(node, dict) else None
                if node_id in node_ids:
                    self.memberships.setdefault(node_id, set()).add(chain)

    def resolve(self, hint: ScopeHint | None, owner: str) -> str | None:
        node_id = hint.node_id if hint and hint.node_id else owner
        if node_id not in self.node_ids:
            return None
        if not hint or not hint.aliases:
            return node_id
        size = len(hint.aliases)
        for chain in self.memberships.get(node_id, set()):
            if size <= len(chain) and chain[-size:] == hint.aliases:
                return node_id
        return None


def _chain(alias: str, by_alias: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    chain: list[str] = []
    current: Any = alias
    while isinstance(current, str) and current and current not in chain:
        chain.insert(0, current)
        subgraph = by_alias.get(current, {})
        metadata = subgraph.get("metadata")
        current = subgraph.get("parentAlias") or (
            metadata.get("parentAlias") if isinstance(metadata, dict) else None
        )
    return tuple(chain)


def _port_binding(node: dict[str, Any], port: Any, direction: str) -> dict[str, Any] | None:
    ui = node.get("ui")
    ports = ui.get(direction) if isinstance(ui, dict) else None
    for candidate in ports if isinstance(ports, list) else []:
        if isinstance(candidate, dict) and port is not None and candidate.get("key") == port:
            binding = candidate.get("binding")
            return binding if isinstance(binding, dict) else None
    return None


def edge_bindings(
    graph: dict[str, Any],
    nodes: dict[str, dict[str, Any]],
    subgraphs: dict[str, dict[str, Any]],
) -> dict[str, list[EdgeBinding]]:
    """The bindings of a graph's edges, by source node id (targets as node ids)."""
    del subgraphs  # scopes come from the graph's own subgraph list, as in seed 001
    index = ScopeIndex(graph, set(nodes))
    found: dict[str, list[EdgeBinding]] = {}
    for edge in graph.get("edges") or []:
        source, target = edge["source"], edge["target"]
        source_id, target_id = source["node"], target["node"]
        out = _port_binding(nodes[source_id], source.get("port"), "outputPorts")
        into = _port_binding(nodes[target_id], target.get("port"), "inputPorts")
        if out is None or into is None:
            continue
        parsed_out, parsed_in = parse_path(out.get("path")), parse_path(into.get("path"))
        if parsed_out is None or parsed_in is None or parsed_in[0] != "parameters":
            continue
        if index.resolve(_hint(out), source_id) != source_id:
            continue
        if index.resolve(_hint(into), target_id) != target_id:
            continue
        found.setdefault(source_id, []).append(
            EdgeBinding(parsed_out[0], parsed_out[1], target_id, parsed_in[1])
        )
    return found
