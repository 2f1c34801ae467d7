"""``GET /v1/usage``: tokens and cost grouped by model, day, thread or run.

Served from the ``usage`` projection, which follows the log and may trail it
briefly; ``?min_position=P`` waits for it as the lists do.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from infra.http.endpoint import Endpoint
from infra.http.errors import ApiError
from infra.http.limits import MAX_INT64
from infra.http.list_routes import wait_for
from infra.http.requests import read_query
from infra.http.schemas import Response as ResponseModel
from infra.http.service import ledger_of
from infra.http.wire import JSON
from projections.usage import UsageProjection
from queries.usage import GroupBy, usage_groups

if TYPE_CHECKING:
    pass

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group_by: GroupBy = "model"
    day_from: date | None = Field(
        None, alias="from", description="first day included (UTC, YYYY-MM-DD)"
    )
    day_to: date | None = Field(None, alias="to", description="last day included (UTC, YYYY-MM-DD)")
    min_position: int | None = Field(None, ge=0, le=MAX_INT64)

    @field_validator("day_from", "day_to", mode="before")
    @classmethod
    def _calendar_day(cls, value: Any) -> Any:
        if value is not None and not (isinstance(value, str) and DAY.fullmatch(value)):
            raise ValueError("a day is written YYYY-MM-DD")
        return value


class UsageGroup(ResponseModel):
    key: str | None = Field(description="the model, day, thread id or run id (null: no model)")
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    reasoning_replay_tokens: int
    total_tokens: int
    cost_usd: float
    turns: int = Field(description="how many usage scopes (turns; nodes for runs) were summed")


class UsageReport(ResponseModel):
    group_by: str
    items: list[UsageGroup]


async def get_usage(request: Request) -> Response:
    ledger = ledger_of(request)
    query = read_query(request, UsageQuery)
    if query.day_from and query.day_to and query.day_from > query.day_to:
        raise ApiError(
            400,
            "invalid_query",
            f"from ({query.day_from}) is after to ({query.day_to})",
        )
    await wait_for(ledger, UsageProjection.name, query.min_position)
    report = await usage_groups(
        ledger.store.fetch,
        ledger.tenant(request),
        group_by=query.group_by,
        day_from=query.day_from,
        day_to=query.day_to,
    )
    return JSON(report)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/usage",
        get_usage,
        "Tokens and cost grouped by model, day, thread or run, ordered by key",
        query=UsageQuery,
        response=UsageReport,
        errors=(400, 503),
        tags=("usage",),
    ),
]
