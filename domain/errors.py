"""Domain errors, each named for the rule it protects; the HTTP layer maps them once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A command broke a rule of the domain; nothing was decided."""

    code = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidCommand(DomainError):
    """The command is well formed but its values break a rule of shape or value."""

    code = "invalid_command"


class LifecycleConflict(DomainError):
    """The command does not fit the current state of the aggregate."""

    code = "lifecycle_conflict"


class NotFound(DomainError):
    """The command names something that does not exist here."""

    code = "not_found"
