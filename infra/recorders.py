"""The ``eventsourcing`` library's recorder interfaces on Ledger's own store.

Library applications (and the library's contract tests) can record into the same
events table through the same single writer: a stored event's ``topic`` is the
row's ``type``, its ``state`` the row's ``data``, its originator the stream, its
version the seq; notification ids are positions. Tracking records are
projection positions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    ListenNotifySubscription,
    Notification,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from infra.store.backend import Backend
from infra.store.errors import DuplicateSeq, PositionNotAdvanced, WrongExpectedVersion
from infra.store.hashing import canonical_json
from infra.store.records import DEFAULT_TENANT, Commit, NewEvent, StreamAppend
from infra.store.writer import GroupCommitWriter

LIBRARY_STREAM_TYPE = "aggregate"
POLL_SECONDS = 0.1
EMPTY_METADATA = canonical_json({})


class LedgerApplicationRecorder(ApplicationRecorder):
    """Library aggregates' events, appended through Ledger's writer."""

    def __init__(
        self, backend: Backend, writer: GroupCommitWriter, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        self.backend = backend
        self.writer = writer
        self.tenant = tenant

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        if not stored_events:
            return []
        parts, order = self._parts(stored_events)
        try:
            result = self.writer.append_sync(Commit(parts=tuple(parts)))
        except (DuplicateSeq, WrongExpectedVersion) as error:
            raise IntegrityError(str(error)) from error
        positions = [
            position
            for part in result.parts
            for position in range(part.first_position, part.position + 1)
        ]
        ids = [0] * len(stored_events)
        for index, position in zip(order, positions, strict=True):
            ids[index] = position
        return ids

    def _parts(self, stored_events: Sequence[StoredEvent]) -> tuple[list[StreamAppend], list[int]]:
        """One part per run of consecutive versions of one originator, in order of arrival."""
        runs: list[tuple[str, list[int]]] = []
        for index, stored in enumerate(stored_events):
            stream_id = str(stored.originator_id)
            if runs:
                last_id, indexes = runs[-1]
                last = stored_events[indexes[-1]]
                if (
                    last_id == stream_id
                    and stored.originator_version == last.originator_version + 1
                ):
                    indexes.append(index)
                    continue
            runs.append((stream_id, [index]))
        parts = [
            StreamAppend(
                tenant=self.tenant,
                stream_type=LIBRARY_STREAM_TYPE,
                stream_id=stream_id,
                expected_version=None,
                events=tuple(
                    NewEvent(
                        type=stored_events[i].topic,
                        data=stored_events[i].state,
                        metadata=EMPTY_METADATA,
                    )
                    for i in indexes
                ),
                first_seq=stored_events[indexes[0]].originator_version,
            )
            for stream_id, indexes in runs
        ]
        return parts, [i for _, indexes in runs for i in indexes]

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        records = self.backend.read_stream(
            self.tenant,
            str(originator_id),
            after_seq=-1 if gt is None else gt,
            upto_seq=lte,
            limit=limit,
            desc=desc,
        )
        return [
            StoredEvent(
                originator_id=r.stream_id, originator_version=r.seq, topic=r.type, state=r.data
            )
            for r in records
        ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        after = 0 if start is None else (start - 1 if inclusive_of_start else start)
        records = self.backend.read_all(
            after_position=max(after, 0), upto_position=stop, limit=limit, types=topics
        )
        return [
            Notification(
                id=r.position,
                originator_id=r.stream_id,
                originator_version=r.seq,
                topic=r.type,
                state=r.data,
            )
            for r in records
        ]

    def max_notification_id(self) -> int | None:
        return self.backend.max_position() or None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return LedgerSubscription(self, gt=gt, topics=topics)


class LedgerSubscription(ListenNotifySubscription[LedgerApplicationRecorder]):
    """Woken by this process's writer at once, and by polling for other processes' commits."""

    def __init__(
        self, recorder: LedgerApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._writer = recorder.writer
        self._writer.add_listener(self._on_commit)
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _on_commit(self, position: int) -> None:
        self._has_been_notified.set()

    def _poll(self) -> None:
        while not self._has_been_stopped:
            self._has_been_notified.set()
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        self._writer.remove_listener(self._on_commit)
        super().stop()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._poller.join()


class LedgerTrackingRecorder(TrackingRecorder):
    """Tracking records as projection positions: forward only, one row per name."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def insert_tracking(self, tracking: Tracking) -> None:
        try:
            self.backend.advance_position(tracking.application_name, tracking.notification_id)
        except PositionNotAdvanced as error:
            raise IntegrityError(str(error)) from error

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.backend.projection_position(application_name)
