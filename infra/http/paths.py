"""Path parameters: ids are checked before anything reads the store with them.

Every id Ledger stores is well formed (1-128 characters: letters, digits and ``. _ : -``,
not first), so a path id that is not names nothing and answers 404 at once. That also keeps
strings a database cannot compare (NUL, which PostgreSQL text cannot hold) away from SQL.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from domain.errors import NotFound
from infra.http.errors import ApiError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_ID = re.compile(ID_PATTERN)
TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,511}$"
_TASK_ID = re.compile(TASK_ID_PATTERN)
"""A run's node: its task id (``frame_id::node_id`` inside a frame) may be longer."""

ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": ID_PATTERN,
}
SEQ_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}
"""``/at/{seq}``: 1-18 digits (anything else answers 400; a seq past the stream's end, 404)."""


TASK_ID_SCHEMA: dict[str, Any] = {**ID_SCHEMA, "maxLength": 512, "pattern": TASK_ID_PATTERN}


def path_parameter_schema(name: str) -> dict[str, Any]:
    """The schema ``/openapi.json`` gives a path parameter."""
    if name == "seq":
        return SEQ_SCHEMA
    return TASK_ID_SCHEMA if name == "node_id" else ID_SCHEMA


def path_ids(request: Request) -> dict[str, str]:
    """The path parameters, each id checked: one that is not well formed answers 404."""
    params: dict[str, str] = request.path_params
    for name, value in params.items():
        pattern = _TASK_ID if name == "node_id" else _ID
        if name != "seq" and not pattern.fullmatch(value):
            noun = name.removesuffix("_id")
            raise NotFound(
                f"no {noun} {value[:128]!r}: not a well-formed id", **{name: value[:128]}
            )
    return params


def seq_in_path(raw: str) -> int:
    """The ``{seq}`` of a path: 1-18 digits, else 400."""
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_path", f"seq must be a positive integer, got {raw!r}")
    return int(raw)
