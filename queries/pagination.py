"""Keyset cursors: opaque to clients, a position underneath. A bad cursor is the client's error."""

from __future__ import annotations

import base64
import binascii

import orjson

MAX_POSITION = 2**63 - 1
"""Positions are BIGINT: a cursor past it was not made here (and no database could compare it)."""


class BadCursor(ValueError):
    """The cursor was not made by this service."""


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"p": position})).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as error:
        raise BadCursor(f"cursor {cursor!r} is not valid") from error
    position = value.get("p") if isinstance(value, dict) else None
    if not isinstance(position, int) or not 0 <= position <= MAX_POSITION:
        raise BadCursor(f"cursor {cursor!r} is not valid")
    return int(position)
