"""Response shapes of the run endpoints (documented in ``/openapi.json``; extra fields allowed)."""

from __future__ import annotations

from typing import Any

from infra.http.schemas import Accepted, Response


class RunStartedResponse(Accepted):
    run_id: str
    status: str
    definition_hash: str


class Dispatch(Response):
    run_id: str
    node_id: str
    dispatch_id: str
    attempt: int
    parameters: dict[str, Any]
    ack_deadline: str


class ClaimResponse(Response):
    worker_id: str
    dispatches: list[Dispatch]


class RunChangedResponse(Accepted):
    run_id: str
    status: str


class NodeChangedResponse(RunChangedResponse):
    node_id: str
    node_status: str
    attempts: int


class RunViewResponse(Response):
    run_id: str
    status: str
    client_id: str
    executor_id: str | None
    definition_hash: str
    seq: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    detail: str | None
    stop_kind: str | None
    stop_reason: str | None
    pause_reason: str | None
    awaiting_gate: dict[str, Any] | None
    gate_history: list[dict[str, Any]]
    lifecycle_history: list[dict[str, Any]]
    nodes: dict[str, dict[str, Any]]


class RunDiffResponse(Response):
    run_id: str
    changes: list[dict[str, Any]]
    events: list[dict[str, Any]]


class RunStatusDocument(Response):
    run_id: str
    status: str
    updated_at_ms: int
