"""JSON pointers (RFC 6901) and the result merge-patch of seed 001's feedback.

A feedback's ``metadata.results`` is merged into a node's result: nested objects
merge key by key, ``null`` removes a key, anything else replaces it. Each change
is reported as a delta ``{"path", "operation", "value"}`` (``replace`` or
``remove``) whose path is a JSON pointer, so a consumer can apply the same change.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

MISSING: Any = object()


def encode_segment(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def decode_segment(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def pointer(segments: list[str]) -> str:
    return "".join("/" + encode_segment(s) for s in segments)


def split_pointer(text: str) -> list[str]:
    """The segments of a pointer (``"/a/b~1c"`` → ``["a", "b/c"]``); empty segments dropped."""
    return [decode_segment(part) for part in text.split("/") if part]


def merge_deltas(target: dict[str, Any], updates: dict[str, Any]) -> list[dict[str, Any]]:
    """The deltas that merging ``updates`` into ``target`` makes (``target`` is not changed)."""
    return _merge(deepcopy(target), updates, [])


def _merge(
    target: dict[str, Any], updates: dict[str, Any], prefix: list[str]
) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    for key, value in updates.items():
        path = [*prefix, key]
        if value is None:
            if key in target:
                del target[key]
                deltas.append({"path": pointer(path), "operation": "remove", "value": None})
            continue
        existing = target.get(key, MISSING)
        if isinstance(value, dict) and value and isinstance(existing, dict):
            deltas.extend(_merge(existing, value, path))
            continue
        if existing is MISSING or existing != value:
            target[key] = deepcopy(value)
            deltas.append({"path": pointer(path), "operation": "replace", "value": deepcopy(value)})
    return deltas


def apply_delta(target: dict[str, Any], path: str, operation: str, value: Any) -> None:
    """Apply one delta of :func:`merge_deltas` to ``target`` in place."""
    segments = split_pointer(path)
    if not segments:
        return
    parent = target
    for segment in segments[:-1]:
        child = parent.get(segment)
        if not isinstance(child, dict):
            child = {}
            parent[segment] = child
        parent = child
    if operation == "remove":
        parent.pop(segments[-1], None)
    else:
        parent[segments[-1]] = deepcopy(value)


def get_path(container: Any, segments: list[str]) -> Any:
    """The value at ``segments`` (a copy), or :data:`MISSING`."""
    current = container
    for segment in segments:
        if not isinstance(current, dict) or segment not in current:
            return MISSING
        current = current[segment]
    return deepcopy(current)
