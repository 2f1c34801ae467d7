"""Errors of the event store, raised to callers of the append port and reads."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises."""


class WrongExpectedVersion(StoreError):
    """The stream's head is not at the version the caller expected."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        if expected == 0:
            message = f"stream {stream_id} already exists"
        else:
            message = f"stream {stream_id} is at version {actual}, not the expected {expected}"
        super().__init__(message)


class StreamTypeClash(StoreError):
    """The id is already used by a stream of another type in this tenant."""

    def __init__(self, stream_id: str, existing: str, wanted: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"id {stream_id} is already used by a {existing}, not a {wanted}")


class DuplicateSeq(StoreError):
    """An explicit seq (library recorder interface) is already taken."""

    def __init__(self, stream_id: str, seq: int) -> None:
        super().__init__(f"stream {stream_id} already has seq {seq}")


class IdempotencyKeyReused(StoreError):
    """The idempotency key was first used with a different request."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used with a different request")


class PositionNotAdvanced(StoreError):
    """A projection position may only move forward."""

    def __init__(self, name: str, position: int) -> None:
        super().__init__(f"projection {name} is already at or past position {position}")


class StoreUnavailable(StoreError):
    """The database could not be reached or failed; the commit did not land."""


class ImmutableEvents(StoreError):
    """The database refused to change a stored event."""
