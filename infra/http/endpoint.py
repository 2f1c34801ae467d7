"""An endpoint declared once: the route the app serves and the operation ``/openapi.json`` lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    errors: tuple[int, ...] = field(default=())
    tags: tuple[str, ...] = field(default=())
    media_type: str = "application/json"
    """The success body's media type; one other than JSON is declared without a schema
    (``text/event-stream`` for live tails, JSON lines for the export, text for metrics)."""
