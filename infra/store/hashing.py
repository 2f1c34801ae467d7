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

import orjson


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one textual form of a timestamp."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
