"""The hash chain: ``hash = sha256(prev_hash ‖ canonical JSON of the envelope)``.

The envelope is ``{data, metadata, recorded_at, seq, stream_id, type}`` with sorted
keys and no whitespace. ``data`` and ``metadata`` are already canonical JSON
bytes (the mapper writes them with sorted keys), so the envelope is assembled by
concatenation instead of re-serialising: the bytes equal
``orjson.dumps(envelope, option=OPT_SORT_KEYS)`` of the parsed values. Position
and tenant are deliberately left out, so an export re-imported elsewhere verifies
with the same hashes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache

import orjson


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one textual form of a timestamp."""
    if moment.tzinfo is None:  # local time: its meaning may change, so never cached
        return _format_utc(moment)
    return _format_aware(moment)


def _format_utc(moment: datetime) -> str:
    u = moment.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}Z"
    )


_format_aware = lru_cache(maxsize=4096)(_format_utc)
"""Aware datetimes that are equal are the same instant, so they share a text; a batch
stamps all its events with one clock reading, so most calls hit this cache."""


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the form data and metadata are stored in."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def envelope_bytes(
    *, stream_id: str, seq: int, type: str, data: bytes, metadata: bytes, recorded_at: datetime
) -> bytes:
    return b"".join(
        (
            b'{"data":',
            data,
            b',"metadata":',
            metadata,
            b',"recorded_at":',
            orjson.dumps(format_timestamp(recorded_at)),
            b',"seq":',
            str(seq).encode(),
            b',"stream_id":',
            orjson.dumps(stream_id),
            b',"type":',
            orjson.dumps(type),
            b"}",
        )
    )


class StreamHasher:
    """:func:`chain_hash` for the events of one stream, with the per-stream work done once.

    The writer hashes every event it appends; this builds the same envelope bytes
    with the stream id (and each type and timestamp) encoded once instead of per event.
    """

    __slots__ = ("_stream_tail", "_types")

    def __init__(self, stream_id: str) -> None:
        self._stream_tail = b',"stream_id":' + orjson.dumps(stream_id) + b',"type":'
        self._types: dict[str, bytes] = {}

    def hash(
        self, prev_hash: str, seq: int, type: str, data: bytes, metadata: bytes, stamp: str
    ) -> str:
        """The event's hash; ``stamp`` is ``recorded_at`` as :func:`format_timestamp` gives it."""
        encoded_type = self._types.get(type)
        if encoded_type is None:
            encoded_type = self._types[type] = orjson.dumps(type) + b"}"
        return hashlib.sha256(
            b"".join(
                (
                    prev_hash.encode("ascii"),
                    b'{"data":',
                    data,
                    b',"metadata":',
                    metadata,
                    b',"recorded_at":"',
                    stamp.encode("ascii"),
                    b'","seq":',
                    str(seq).encode("ascii"),
                    self._stream_tail,
                    encoded_type,
                )
            )
        ).hexdigest()


def chain_hash(
    prev_hash: str,
    *,
    stream_id: str,
    seq: int,
    type: str,
    data: bytes,
    metadata: bytes,
    recorded_at: datetime,
) -> str:
    """The hash of one event given the hash of the event before it in its stream."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(
        envelope_bytes(
            stream_id=stream_id,
            seq=seq,
            type=type,
            data=data,
            metadata=metadata,
            recorded_at=recorded_at,
        )
    )
    return digest.hexdigest()
