"""What every route handler needs: the running Ledger, and the answer to a command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from commands.ports import Saved
from infra.http.wire import JSON

if TYPE_CHECKING:
    from infra.bootstrap import Ledger


def ledger_of(request: Request) -> Ledger:
    """The Ledger the app serves (built by the composition root, started by the lifespan)."""
    return request.app.state.ledger  # type: ignore[no-any-return]


def command_answer(saved: Saved, status: int = 200) -> Response:
    """A command's response body; a replay of an idempotent command says so in a header."""
    headers = {"Idempotent-Replayed": "true"} if saved.replayed else None
    return JSON(saved.body, status_code=status, headers=headers)
