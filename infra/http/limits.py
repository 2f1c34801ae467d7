"""Input limits of the HTTP API, in one place.

Every exceeded limit is refused before anything is appended: 413 for the body size, 422 for
everything else, with a message that names the limit and its value.

- Body size: ``LEDGER_MAX_BODY_BYTES`` (``Settings.max_body_bytes``, default 1 MiB), 413.
- JSON nesting depth of a body: ``MAX_JSON_DEPTH`` levels, the body object being level 1.
  Checked after parsing, iteratively; orjson refuses deeper than 1024 levels on its own, and
  that refusal is answered the same way (422, not 400 and never 500).
- Members of one JSON object or items of one JSON array, anywhere in a body:
  ``MAX_JSON_CONTAINER_ITEMS``. Together with the body size and the depth, this bounds the
  free-form ``payload``/``metadata`` dicts.
- String lengths: ``max_length`` on every ``str`` field of every command model (commands/, as
  ``MAX_*_CHARS`` in ``commands/thread_commands.py``: the command models may not import infra).
- Page sizes: every ``limit`` query parameter has ``le=`` (``MAX_PAGE_SIZE`` for lists and
  stream replays, ``MAX_FEED_PAGE_SIZE`` for the global feed, ``MAX_EXPORT_EVENTS`` for the
  streamed export); a larger one answers 422 ``page_size_exceeded``.
- Integers in query strings and paths (positions, seqs) fit a signed 64-bit column:
  ``MAX_INT64``; a larger one is a malformed parameter (400).
"""

from __future__ import annotations

from typing import Any

from infra.http.errors import ApiError

MAX_JSON_DEPTH = 32
"""Nesting levels of a JSON body (the body object is level 1)."""

MAX_JSON_CONTAINER_ITEMS = 10_000
"""Members of one JSON object, or items of one JSON array, anywhere in a body."""

MAX_PAGE_SIZE = 1000
"""``limit`` of the lists (threads, approvals) and of stream replays (``/events``)."""

MAX_FEED_PAGE_SIZE = 10_000
"""``limit`` of the global feed ``GET /v1/events``."""

MAX_EXPORT_EVENTS = 10_000_000
"""``limit`` of ``GET /v1/export`` (the body streams page by page; no limit exports all)."""

MAX_INT64 = 2**63 - 1
"""The largest position, seq or count a query parameter may name (a BIGINT column)."""

MAX_WORKFLOW_NODES = 2_000
"""Nodes in one workflow, subgraphs included. For the runs work (``POST /v1/runs``): count
every node of the workflow and of its subgraph definitions, and refuse a larger one with 422
``limit_exceeded`` ("workflow has 5000 nodes; the limit is 2000 (max_workflow_nodes)") before
anything is appended. If the check lives in a command model, move this constant to commands/
(commands may not import infra) and keep the name."""


def limit_exceeded(message: str, limit: str, maximum: int, **details: Any) -> ApiError:
    """The 422 for an exceeded limit; ``limit`` names it, ``maximum`` is its value."""
    return ApiError(422, "limit_exceeded", message, limit=limit, maximum=maximum, **details)


def too_deep(where: str) -> ApiError:
    return limit_exceeded(
        f"JSON nesting deeper than {MAX_JSON_DEPTH} levels at {where}"
        f" (limit max_json_depth={MAX_JSON_DEPTH})",
        "max_json_depth",
        MAX_JSON_DEPTH,
        at=where,
    )


def check_json_limits(value: Any) -> None:
    """Refuse (422) a parsed body nested deeper than ``MAX_JSON_DEPTH`` or with a container of
    more than ``MAX_JSON_CONTAINER_ITEMS`` entries. Iterative: no recursion, whatever the
    input; the location is worked out only for the refusal."""
    stack: list[tuple[Any, int, Path]] = [(value, 1, None)]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise too_deep(_where(path))
        if len(node) > MAX_JSON_CONTAINER_ITEMS:
            kind, noun = ("object", "members") if isinstance(node, dict) else ("array", "items")
            where = _where(path)
            raise limit_exceeded(
                f"JSON {kind} at {where} has {len(node)} {noun}; the limit is"
                f" {MAX_JSON_CONTAINER_ITEMS} (max_json_container_items)",
                "max_json_container_items",
                MAX_JSON_CONTAINER_ITEMS,
                at=where,
                actual=len(node),
            )
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, (path, key)))


Path = tuple["Path", str | int] | None
"""Where a value sits, as a linked list from the innermost key outwards."""


def _where(path: Path) -> str:
    """A readable location: ``body``, ``body.payload.items[3]`` (keys cut to 40 characters)."""
    steps: list[str | int] = []
    while path is not None:
        path, key = path
        steps.append(key)
    parts = ["body"]
    for step in reversed(steps):
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step[:40]}")
    return "".join(parts)
