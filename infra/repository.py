"""The repository of aggregates over the event store: fold to load, append to save."""

from __future__ import annotations

from typing import Any

import orjson

from commands.ports import CommandContext, ConcurrencyConflict, IdempotencyMismatch, Saved
from domain.base import LedgerAggregate, fold
from domain.errors import LifecycleConflict
from infra.aggregate_cache import AggregateCache
from infra.mapper import EventMapper
from infra.snapshot_store import Snapshots
from infra.store.errors import IdempotencyKeyReused, StreamTypeClash, WrongExpectedVersion
from infra.store.eventstore import EventStore
from infra.store.hashing import canonical_json
from infra.store.records import Commit, IdempotencyKey, RecordedEvent, StreamAppend


class EventSourcedRepository:
    """Loads an aggregate by folding its stream; saves its pending events at its loaded version."""

    def __init__(
        self,
        store: EventStore,
        mapper: EventMapper,
        cache: AggregateCache | None = None,
        snapshots: Snapshots | None = None,
    ) -> None:
        self._store = store
        self._mapper = mapper
        self._cache = cache or AggregateCache()
        self._snapshots = snapshots
        self._checked_out: dict[tuple[str, str], tuple[LedgerAggregate, int]] = {}

    async def load(
        self, tenant: str, stream_id: str, *, upto_seq: int | None = None
    ) -> LedgerAggregate | None:
        """The aggregate as its stream (up to ``upto_seq``) folds to, for reading only.

        Starts from the cached state or the latest snapshot at or below ``upto_seq``
        and folds only the events after it, so the cost does not grow with history.
        The current state is the cached object itself, not a copy: read it, do not
        change it, and do not hold it across an ``await`` (a command may take it).
        """
        if upto_seq is not None:
            return await self._fold_from_snapshot(tenant, stream_id, upto_seq)
        key = (tenant, stream_id)
        cached = self._cache.get(key)
        if cached is not None:
            version = cached.version
            newer = await self._store.read_stream(tenant, stream_id, after_seq=version)
            # While this read waited, a command may have taken the object (and be changing
            # it) or saved it further: then it is not this reader's to advance or show.
            if self._cache.get(key) is cached and cached.version == version:
                self._advance(cached, newer)
                return cached
        aggregate = await self._fold_from_snapshot(tenant, stream_id, None)
        if aggregate is not None and self._cache.get(key) is None:
            self._cache.put(key, aggregate)  # unless a command put a newer one meanwhile
        return aggregate

    async def checkout(
        self, tenant: str, stream_id: str, *, verify: bool = True
    ) -> LedgerAggregate | None:
        """The aggregate for a command to decide on; the command owns it until :meth:`save`.

        A cached aggregate is taken out of the cache rather than copied, so what a
        command does to it is never seen by anyone else; :meth:`save` puts it back
        once its events are stored, and :meth:`give_back` returns one the command
        left unchanged. One that changed and was not saved is simply dropped: the
        next load folds the stream again. With ``verify=False`` a cached aggregate
        is not checked for events another instance appended since (see
        :meth:`is_cached`): the command's append at the loaded version then conflicts.
        """
        key = (tenant, stream_id)
        aggregate = self._cache.take(key)
        if aggregate is None:
            aggregate = await self._fold_from_snapshot(tenant, stream_id, None)
        elif verify:
            newer = await self._store.read_stream(tenant, stream_id, after_seq=aggregate.version)
            self._advance(aggregate, newer)
        if aggregate is not None:
            self._checked_out[key] = (aggregate, aggregate.version)
        return aggregate

    def give_back(self, tenant: str, aggregate: LedgerAggregate) -> None:
        """Return a checked-out aggregate to the cache if the command left it unchanged
        (no-op after :meth:`save`, or if it changed: then it is not the stored state)."""
        key = (tenant, aggregate.id)
        out = self._checked_out.get(key)
        if out is not None and out[0] is aggregate:
            del self._checked_out[key]
            if aggregate.version == out[1]:
                self._cache.put(key, aggregate)

    def is_cached(self, tenant: str, stream_id: str) -> bool:
        """Whether ``checkout(..., verify=False)`` would answer from the cache, unverified."""
        return self._cache.get((tenant, stream_id)) is not None

    def _advance(self, aggregate: LedgerAggregate, newer: list[RecordedEvent]) -> None:
        for record in newer:  # committed events only
            self._mapper.to_domain_event(record).mutate(aggregate)

    async def _fold_from_snapshot(
        self, tenant: str, stream_id: str, upto_seq: int | None
    ) -> LedgerAggregate | None:
        start = None
        if self._snapshots is not None:
            start = await self._snapshots.latest(tenant, stream_id, upto_seq)
        records = await self._store.read_stream(
            tenant, stream_id, after_seq=start.version if start else 0, upto_seq=upto_seq
        )
        aggregate = start
        for record in records:
            aggregate = self._mapper.to_domain_event(record).mutate(aggregate)
        return aggregate

    def fold_records(self, records: list[RecordedEvent]) -> LedgerAggregate | None:
        return fold([self._mapper.to_domain_event(record) for record in records])

    async def save(
        self, aggregate: LedgerAggregate, context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        saved = await self.save_all([aggregate], context, body)
        return Saved(
            saved.seq,
            saved.position,
            _with_position(saved.body, saved.seq, saved.position),
            saved.replayed,
        )

    async def save_all(
        self, aggregates: list[LedgerAggregate], context: CommandContext, body: dict[str, Any]
    ) -> Saved:
        """Append the pending events of several aggregates in one commit: all land or none.

        ``body`` is stored with the context's idempotency key as it is (no ``seq`` or
        ``position`` added); a replay answers with the stored body.
        """
        metadata = context.metadata()
        parts: list[StreamAppend] = []
        loaded_at: dict[str, int] = {}
        for aggregate in aggregates:
            pending = aggregate.collect_events()
            loaded_at[aggregate.id] = aggregate.version - len(pending)
            events = [self._mapper.to_new_event(e, metadata) for e in pending]  # type: ignore[arg-type]
            parts.append(
                StreamAppend(
                    context.tenant,
                    aggregate.stream_type,
                    aggregate.id,
                    loaded_at[aggregate.id],
                    tuple(events),
                )
            )
        key = (
            IdempotencyKey(context.idempotency.key, context.idempotency.fingerprint)
            if context.idempotency
            else None
        )
        commit = Commit(parts=tuple(parts), idempotency=key, response=canonical_json(body))
        try:
            result = await self._store.commit(commit)
        except WrongExpectedVersion as error:
            for aggregate in aggregates:  # changed and not stored: the next load folds again
                self._checked_out.pop((context.tenant, aggregate.id), None)
                self._cache.drop((context.tenant, aggregate.id))
            if len(aggregates) == 1 and error.expected == 0:
                raise LifecycleConflict(f"{error.stream_id} already exists") from error
            raise ConcurrencyConflict(str(error)) from error
        except StreamTypeClash as error:
            raise LifecycleConflict(str(error)) from error
        except IdempotencyKeyReused as error:
            raise IdempotencyMismatch(error.key) from error
        for aggregate in aggregates:
            key_of = (context.tenant, aggregate.id)
            self._checked_out.pop(key_of, None)
            if result.replayed:  # nothing was appended: this aggregate is not the stored state
                self._cache.drop(key_of)
                continue
            self._cache.put(key_of, aggregate)
            if self._snapshots is not None:
                self._snapshots.maybe_take(context.tenant, aggregate, loaded_at[aggregate.id])
        last = result.last
        if result.replayed and result.response:
            body = orjson.loads(result.response)
        return Saved(last.seq, last.position, body, result.replayed)

    async def replay(self, context: CommandContext) -> Saved | None:
        stored = await self.stored_answer(context)
        if stored is None:
            return None
        return Saved(
            stored.seq,
            stored.position,
            _with_position(stored.body, stored.seq, stored.position),
            replayed=True,
        )

    async def stored_answer(self, context: CommandContext) -> Saved | None:
        """The body stored with the context's idempotency key, as it was stored."""
        if context.idempotency is None:
            return None
        stored = await self._store.read_idempotency(context.tenant, context.idempotency.key)
        if stored is None:
            return None
        if stored.fingerprint != context.idempotency.fingerprint:
            raise IdempotencyMismatch(context.idempotency.key)
        body = orjson.loads(stored.response) if stored.response else {}
        return Saved(stored.result.seq, stored.result.position, body, replayed=True)


def _with_position(body: dict[str, Any], seq: int, position: int) -> dict[str, Any]:
    return {**body, "seq": seq, "position": position}
