"""What goes into the store and what comes out of it.

These are plain frozen dataclasses: the store never sees domain objects, only
already-serialised event data (canonical JSON bytes) and metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

GENESIS_HASH = "0" * 64
DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event decided by a command, not yet stored.

    ``data`` and ``metadata`` are canonical JSON bytes (sorted keys, as the
    mapper writes them); they are stored and hashed verbatim.
    """

    type: str
    data: bytes
    metadata: bytes = b"{}"
    recorded_at: datetime | None = None
    class_version: int = 1


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's retry key and a fingerprint of the request it came with."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events for one stream, appended at ``expected_version``.

    ``expected_version`` is the stream's current last seq (0 for a new stream);
    ``None`` appends at whatever the head is. ``first_seq`` is only for the
    library's recorder interface, which names each event's version itself.
    """

    tenant: str
    stream_type: str
    stream_id: str
    expected_version: int | None
    events: tuple[NewEvent, ...]
    first_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """One unit of the writer: every part lands, or none does."""

    parts: tuple[StreamAppend, ...]
    idempotency: IdempotencyKey | None = None
    response: bytes | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a stream append landed: seqs and positions of its first and last event."""

    stream_id: str
    first_seq: int
    seq: int
    first_position: int
    position: int


@dataclass(frozen=True, slots=True)
class CommitResult:
    """The results of a commit's parts, and whether it replayed an earlier one."""

    parts: tuple[AppendResult, ...]
    replayed: bool = False
    response: bytes | None = None

    @property
    def last(self) -> AppendResult:
        return self.parts[-1]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: the envelope of the wire format plus tenant and version."""

    tenant: str
    stream_type: str
    stream_id: str
    seq: int
    position: int
    type: str
    class_version: int
    data: bytes
    metadata: bytes
    recorded_at: datetime
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The last event of a stream, as the writer needs it to chain the next."""

    stream_type: str
    version: int
    hash: str


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` found: counts, and the first break if any."""

    streams: int = 0
    events: int = 0
    max_position: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems
