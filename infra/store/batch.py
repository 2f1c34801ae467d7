"""Turning a batch of commits into rows: the store's rules, independent of the database.

The writer calls :func:`plan_batch` inside its transaction, after taking the
store's write lock, with the heads of every stream the batch touches and the
idempotency keys it names already read. Each commit is judged on its own, in
arrival order, against the heads as the commits before it in the batch left
them, so a batch has exactly the outcome of running its commits one by one:
a conflicting commit is rejected alone and the others land.

Planning is two steps: :func:`decide_batch` judges every commit (versions, stream
types, idempotency keys, positions), and the plan's rows are built afterwards, in
order, hashing each event onto its stream's chain. :func:`plan_batch` does both; the
bulk path decides first and builds the rows as it sends them, so the database
inserts the first rows while the later ones are hashed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from infra.store.errors import (
    DuplicateSeq,
    IdempotencyKeyReused,
    StoreError,
    StreamTypeClash,
    WrongExpectedVersion,
)
from infra.store.hashing import StreamHasher, format_timestamp
from infra.store.records import (
    GENESIS_HASH,
    AppendResult,
    Commit,
    CommitResult,
    StreamAppend,
    StreamHead,
)

StreamKey = tuple[str, str]
"""(tenant, stream_id): streams are keyed by tenant and external id, whatever their type."""


@dataclass(frozen=True, slots=True)
class StoredIdempotency:
    """An idempotency key as recorded with the commit that first used it."""

    tenant: str
    key: str
    fingerprint: str
    result: AppendResult
    response: bytes | None


class EventRow(NamedTuple):
    """An event as the writer inserts it: the columns of ``events``, in their order.

    The fields of :class:`~infra.store.records.RecordedEvent`, as a tuple: the writer
    builds one per event it appends, and a tuple is built several times faster than a
    frozen dataclass and goes to ``COPY`` or ``executemany`` as it is (a 1,000-event
    batch spent 1.3 ms building its rows as dataclasses).
    """

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
class _DecidedPart:
    """An accepted part whose rows are yet to be built."""

    part: StreamAppend
    first_seq: int
    first_position: int
    start_hash: str | None
    """The hash the part's first event chains onto; None: the hash the batch's previous
    part on this stream ends with (known once that part's rows are built)."""


_UNBUILT = ""
"""The hash of a head whose stream's new rows are not built yet."""


@dataclass(slots=True)
class BatchPlan:
    """Rows to insert and, for each commit, its result or its own error.

    After :func:`decide_batch` the outcomes are final and ``rows`` is empty until
    :meth:`build_rows` or :meth:`rows_as_built` has run; the heads it was decided
    against get their new hashes then."""

    rows: list[EventRow] = field(default_factory=list)
    idempotency_rows: list[StoredIdempotency] = field(default_factory=list)
    outcomes: list[CommitResult | StoreError] = field(default_factory=list)
    last_position: int | None = None
    """The position of the batch's last row (None: no rows)."""
    _decided: list[_DecidedPart] = field(default_factory=list)
    _heads: dict[StreamKey, StreamHead] = field(default_factory=dict)
    _clock: datetime = datetime.min
    _clock_stamp: str = ""

    def build_rows(self) -> None:
        """Build every decided row now, into ``rows``."""
        self.rows.extend(self._build())

    def rows_as_built(self) -> Iterator[EventRow]:
        """The decided rows, each built as it is asked for (and kept in ``rows``)."""
        for row in self._build():
            self.rows.append(row)
            yield row

    def _build(self) -> Iterator[EventRow]:
        decided, self._decided = self._decided, []
        clock, clock_stamp = self._clock, self._clock_stamp
        chain: dict[StreamKey, str] = {}
        for d in decided:
            part = d.part
            tenant, stream_type, stream_id = part.tenant, part.stream_type, part.stream_id
            key = (tenant, stream_id)
            prev_hash = d.start_hash if d.start_hash is not None else chain[key]
            position = d.first_position
            hash_event = StreamHasher(stream_id).hash
            for seq, new in enumerate(part.events, d.first_seq):
                recorded_at = new.recorded_at
                if recorded_at is None:
                    recorded_at, stamp = clock, clock_stamp
                else:
                    stamp = format_timestamp(recorded_at)
                digest = hash_event(prev_hash, seq, new.type, new.data, new.metadata, stamp)
                yield EventRow(  # positional: this loop runs for every event the store appends
                    tenant,
                    stream_type,
                    stream_id,
                    seq,
                    position,
                    new.type,
                    new.class_version,
                    new.data,
                    new.metadata,
                    recorded_at,
                    prev_hash,
                    digest,
                )
                position += 1
                prev_hash = digest
            chain[key] = prev_hash
        for key, last_hash in chain.items():
            head = self._heads[key]
            self._heads[key] = StreamHead(head.stream_type, head.version, last_hash)


def stream_keys(commits: list[Commit]) -> set[StreamKey]:
    return {(part.tenant, part.stream_id) for commit in commits for part in commit.parts}


def idempotency_keys(commits: list[Commit]) -> set[StreamKey]:
    return {
        (commit.parts[0].tenant, commit.idempotency.key)
        for commit in commits
        if commit.idempotency is not None
    }


def plan_batch(
    commits: list[Commit],
    heads: dict[StreamKey, StreamHead],
    known_keys: dict[StreamKey, StoredIdempotency],
    max_position: int,
    now: datetime | None = None,
) -> BatchPlan:
    """Decide every commit of a batch and build its rows; ``heads`` and ``known_keys``
    are updated in place."""
    plan = decide_batch(commits, heads, known_keys, max_position, now)
    plan.build_rows()
    return plan


def decide_batch(
    commits: list[Commit],
    heads: dict[StreamKey, StreamHead],
    known_keys: dict[StreamKey, StoredIdempotency],
    max_position: int,
    now: datetime | None = None,
) -> BatchPlan:
    """Decide every commit of a batch; its rows are built later, by the plan. ``heads``
    and ``known_keys`` are updated in place (the heads' hashes once the rows are built)."""
    clock = now or datetime.now(UTC)
    plan = BatchPlan(_heads=heads, _clock=clock, _clock_stamp=format_timestamp(clock))
    position = max_position
    for commit in commits:
        try:
            replayed = _replay(commit, known_keys)
            if replayed is not None:
                plan.outcomes.append(replayed)
                continue
            decided, results, new_heads = _decide_commit(commit, heads, position)
        except StoreError as error:
            plan.outcomes.append(error)
            continue
        heads.update(new_heads)
        plan._decided.extend(decided)
        if results[-1].position > position:
            position = plan.last_position = results[-1].position
        if commit.idempotency is not None:
            stored = StoredIdempotency(
                tenant=commit.parts[0].tenant,
                key=commit.idempotency.key,
                fingerprint=commit.idempotency.fingerprint,
                result=results[-1],
                response=commit.response,
            )
            known_keys[(stored.tenant, stored.key)] = stored
            plan.idempotency_rows.append(stored)
        plan.outcomes.append(CommitResult(parts=tuple(results), response=commit.response))
    return plan


def _replay(commit: Commit, known_keys: dict[StreamKey, StoredIdempotency]) -> CommitResult | None:
    if commit.idempotency is None:
        return None
    stored = known_keys.get((commit.parts[0].tenant, commit.idempotency.key))
    if stored is None:
        return None
    if stored.fingerprint != commit.idempotency.fingerprint:
        raise IdempotencyKeyReused(commit.idempotency.key)
    return CommitResult(parts=(stored.result,), replayed=True, response=stored.response)


def _decide_commit(
    commit: Commit,
    heads: dict[StreamKey, StreamHead],
    position: int,
) -> tuple[list[_DecidedPart], list[AppendResult], dict[StreamKey, StreamHead]]:
    """Judge one commit against ``heads`` (a stream the batch already appended to has
    a head whose hash is not built yet)."""
    decided: list[_DecidedPart] = []
    results: list[AppendResult] = []
    new_heads: dict[StreamKey, StreamHead] = {}
    for part in commit.parts:
        key = (part.tenant, part.stream_id)
        head = new_heads.get(key) or heads.get(key)
        if head is not None and head.stream_type != part.stream_type:
            raise StreamTypeClash(part.stream_id, head.stream_type, part.stream_type)
        version = head.version if head is not None else 0
        if part.first_seq is not None:
            if head is not None and part.first_seq <= version:
                raise DuplicateSeq(part.stream_id, part.first_seq)
            first_seq = part.first_seq
        else:
            if part.expected_version is not None and part.expected_version != version:
                raise WrongExpectedVersion(part.stream_id, part.expected_version, version)
            first_seq = version + 1
        head_hash = head.hash if head is not None else GENESIS_HASH
        # unbuilt: the batch appended to the stream already; chain onto that part's end
        start_hash = None if head_hash == _UNBUILT else head_hash
        decided.append(_DecidedPart(part, first_seq, position + 1, start_hash))
        last_seq = first_seq + len(part.events) - 1
        new_heads[key] = StreamHead(part.stream_type, last_seq, _UNBUILT)
        results.append(
            AppendResult(
                stream_id=part.stream_id,
                first_seq=first_seq,
                seq=last_seq,
                first_position=position + 1,
                position=position + len(part.events),
            )
        )
        position += len(part.events)
    return decided, results, new_heads
