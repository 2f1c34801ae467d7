"""Schemathesis over every operation of ``/openapi.json``, against a real ``ledger serve``.

For each operation it sends schema-valid requests (positive) and schema-violating ones
(negative), and checks every response: no 5xx, a status the spec declares, the declared
content type, and a body that matches the declared schema. The SSE tails stream forever, so
they are left to the e2e SSE tests.

Random ids mostly name nothing (404), so part of the positive cases aim at a seeded thread
(an active turn with an item, a pending approval) and a seeded run (node ``a`` dispatched and
acknowledged, ``b`` waiting on it, gate ``review`` awaiting approval) to reach the command
handlers' rules too.
Bounded: ``EXAMPLES`` positive and ``NEGATIVE_EXAMPLES`` negative cases per operation, no
shrinking; the longer run is ``ops/fuzz``. Every failure is collected, then reported together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import LedgerServer
from tests.e2e.helpers import ok

EXAMPLES = 40
NEGATIVE_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SEEDED = {
    "thread_id": "thr_fuzz",
    "turn_id": "t1",
    "item_id": "i1",
    "approval_id": "a1",
    "stream_id": "thr_fuzz",
    "executor_id": "fuzz-exec",
    "run_id": "run_fuzz",
    "node_id": "a",
    "seq": 1,
}
SEEDED_BY_PATH = {"/gates/{node_id}/decision": {"node_id": "review"}}
"""Where one name needs another seeded value: a gate decision names the pending gate."""
RUN_WORKFLOW = {
    "id": "wf_fuzz",
    "nodes": [
        {"id": "a", "type": "task", "parameters": {"x": 1}},
        {"id": "b", "type": "task"},
        {"id": "review", "type": "approval"},
        {"id": "c", "type": "task"},
    ],
    "edges": [
        {"source": {"node": "a", "port": "out"}, "target": {"node": "b", "port": "in"}},
        {"source": {"node": "a"}, "target": {"node": "review"}},
        {"source": {"node": "review"}, "target": {"node": "c"}},
    ],
}
FAILURES_SHOWN = 3


def _import_schemathesis_now() -> None:
    """Load schemathesis's lazily imported modules while the tests are collected.

    pytest rewrites the asserts of every module of a package with a pytest plugin (schemathesis
    has one), and on CPython 3.11 ``ast`` parsing from two threads at once can fail with
    "AST constructor recursion depth mismatch"; imported here, nothing is parsed mid-test.
    """
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "warm-up", "version": "1"},
        "paths": {
            "/x/{a}": {
                "post": {
                    "parameters": [
                        {"name": "a", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    },
                    "responses": {"200": {"description": "OK"}},
                }
            }
        },
    }
    for result in schemathesis.openapi.from_dict(spec).get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            result.ok().as_strategy(generation_mode=mode)


_import_schemathesis_now()


def _seed(client: httpx.Client) -> None:
    thread = "/v1/threads/thr_fuzz"
    ok(client.post("/v1/threads", json={"thread_id": "thr_fuzz", "title": "fuzz"}), 201)
    ok(client.post(f"{thread}/turns", json={"turn_id": "t1", "executor_id": "fuzz-exec"}), 201)
    item = {"item_id": "i1", "tool_name": "exec_shell", "payload": {"cmd": "ls"}}
    ok(client.post(f"{thread}/turns/t1/items", json=item), 201)
    ok(client.post(f"{thread}/approvals", json={"approval_id": "a1", "turn_id": "t1"}), 201)


def _seed_run(client: httpx.Client, run_id: str) -> str:
    """A run with node ``a`` dispatched and acknowledged (``b`` waits on it) and gate ``review``
    awaiting approval; returns the dispatch id of ``a``."""
    run = f"/v1/runs/{run_id}"
    worker = f"w-{run_id}"
    flow = {**RUN_WORKFLOW, "nodes": [dict(node) for node in RUN_WORKFLOW["nodes"]]}
    flow["nodes"][0]["resourceRefs"] = [{"workerId": worker}]  # only this worker gets ``a``
    body = {"run_id": run_id, "client_id": "fuzz", "executor_id": "fuzz-exec", "workflow": flow}
    ok(client.post("/v1/runs", json=body), 202)
    # Older seeded runs may have ready nodes too (claims serve the oldest run first).
    claimed = ok(client.post("/v1/dispatch/claim", json={"worker_id": worker, "limit": 100}), 200)
    [dispatch] = [d for d in claimed["dispatches"] if d["run_id"] == run_id]
    assert dispatch["node_id"] == "a", claimed
    ack = {"dispatch_id": dispatch["dispatch_id"], "worker_id": worker}
    ok(client.post(f"{run}/nodes/a/ack", json=ack), 200)
    ok(client.post(f"{run}/gates", json={"node_id": "review", "title": "fuzz gate"}), 200)
    assert ok(client.get(run), 200)["awaiting_gate"]["node_id"] == "review"
    return str(dispatch["dispatch_id"])


def _streams_forever(operation: schemathesis.APIOperation) -> bool:
    responses = operation.definition.raw.get("responses", {})
    return any("text/event-stream" in r.get("content", {}) for r in responses.values())


def _strategy(
    operation: schemathesis.APIOperation, mode: GenerationMode, fresh: dict[str, Any]
) -> Any:
    """Cases for one operation; positive ones aim at the seeded ids about half of the time
    (``fresh`` overrides them, e.g. a run seeded for this operation alone)."""
    strategy = operation.as_strategy(generation_mode=mode)
    names = {p.name for p in operation.path_parameters}
    seeded = {name: {**SEEDED, **fresh}[name] for name in names if name in {**SEEDED, **fresh}}
    for suffix, values in SEEDED_BY_PATH.items():
        if operation.path.endswith(suffix):
            seeded.update(values)
    if mode is GenerationMode.NEGATIVE or not seeded:
        return strategy
    return st.one_of(strategy, operation.as_strategy(generation_mode=mode, path_parameters=seeded))


def _run(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    call: Callable[[schemathesis.Case], None],
    fresh: dict[str, Any],
) -> None:
    @given(case=_strategy(operation, mode, fresh))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        call(case)

    with contextlib.suppress(Unsatisfiable):  # a negative run with nothing to negate
        fuzz()


def _use_seeded_dispatch(case: schemathesis.Case, dispatches: dict[str, str], count: int) -> None:
    """Every other case on a seeded run's node names the real dispatch id (a random one only
    reaches the dispatch check); a non-empty string is replaced, nothing else."""
    run_id = (case.path_parameters or {}).get("run_id")
    body = case.body
    if run_id not in dispatches or not isinstance(body, dict) or count % 2:
        return
    if isinstance(body.get("dispatch_id"), str) and body["dispatch_id"]:
        body["dispatch_id"] = dispatches[run_id]


WALK = "run_fuzz_walk"
WALK_STEPS: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]] = [
    # (operation label, path parameters, query, body); "$a"/"$b" is the dispatch id of a/b
    (
        "POST /v1/runs",
        {},
        None,
        {"run_id": WALK, "client_id": "fuzz", "max_attempts": 2, "workflow": RUN_WORKFLOW},
    ),
    ("POST /v1/dispatch/claim", {}, None, {"worker_id": "walker", "limit": 100}),
    ("POST /v1/runs/{run_id}/nodes/{node_id}/ack", {"node_id": "a"}, None, {"dispatch_id": "$a"}),
    (
        "POST /v1/runs/{run_id}/nodes/{node_id}/feedback",
        {"node_id": "a"},
        None,
        {
            "dispatch_id": "$a",
            "progress": 0.5,
            "metadata": {"results": {"value": 3}},
            "chunks": [{"text": "hello"}],
        },
    ),
    (
        "POST /v1/runs/{run_id}/nodes/{node_id}/worker",
        {"node_id": "a"},
        None,
        {"event": "update", "detail": "working"},
    ),
    ("POST /v1/runs/{run_id}/nodes/{node_id}/thread", {"node_id": "a"}, None, {"thread_id": "x"}),
    (
        "POST /v1/runs/{run_id}/nodes/{node_id}/result",
        {"node_id": "a"},
        None,
        {"dispatch_id": "$a", "status": "succeeded", "result": {"value": 3}},
    ),
    (
        "POST /v1/runs/{run_id}/gates/{node_id}/decision",
        {"node_id": "review"},
        None,
        {"decision": "approve"},
    ),
    ("POST /v1/dispatch/claim", {}, None, {"worker_id": "walker", "limit": 100}),
    ("POST /v1/runs/{run_id}/nodes/{node_id}/ack", {"node_id": "b"}, None, {"dispatch_id": "$b"}),
    ("POST /v1/runs/{run_id}/sessions", {}, None, {"session_id": "s1"}),
    ("POST /v1/runs/{run_id}/instances", {}, None, {"instance_id": "i1"}),
    # b fails on its first attempt of two: back to queued, the run goes on
    ("POST /v1/runs/{run_id}/nodes/{node_id}/error", {"node_id": "b"}, None, {"message": "boom"}),
    ("POST /v1/runs/{run_id}/guardrail-stop", {}, None, {"reason": "quota"}),
    ("POST /v1/quota-overrides", {}, None, {"run_id": WALK, "agent_ids": ["a1"]}),
    ("POST /v1/runs/{run_id}/stale-reap", {}, None, {}),
    ("POST /v1/runs/{run_id}/resume", {}, None, {}),
    ("POST /v1/runs/{run_id}/pause", {}, None, {}),
    ("GET /v1/runs/{run_id}", {}, None, None),
    ("GET /v1/runs/{run_id}/at/{seq}", {"seq": 2}, None, None),
    ("GET /v1/runs/{run_id}/events", {}, {"since_seq": 0}, None),
    ("GET /v1/runs/{run_id}/diff", {}, {"from": 1, "to": 4}, None),
    ("GET /v1/runs/{run_id}/status.json", {}, None, None),
    ("GET /v1/runs", {}, {"client_id": "fuzz"}, None),
    ("POST /v1/runs/{run_id}/cancel", {}, None, {"reason": "done"}),
]
"""A run driven through every run command in turn with valid bodies, so each success
response (not only the refusals random ids meet) is checked against its schema too."""


def _walk_run(
    operations: dict[str, schemathesis.APIOperation], base: str, session: requests.Session
) -> list[str]:
    failures: list[str] = []
    dispatch_ids: dict[str, str] = {}
    for label, path_parameters, query, body in WALK_STEPS:
        operation = operations[label]
        if body is not None:
            body = {
                k: dispatch_ids.get(v[1:], v) if isinstance(v, str) and v.startswith("$") else v
                for k, v in body.items()
            }
        params = {"run_id": WALK, **path_parameters} if "{run_id}" in label else path_parameters
        if body is None:
            case = operation.Case(path_parameters=params or None, query=query)
        else:
            case = operation.Case(path_parameters=params or None, query=query, body=body)
        response = case.call(base_url=base, session=session, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as failure:
            failures.append(f"{label}: {str(failure)[:3000]}")
        if response.status_code >= 300:
            failures.append(f"{label} {body}: {response.status_code} {response.text[:500]}")
        elif label == "POST /v1/dispatch/claim":
            for dispatch in response.json()["dispatches"]:
                if dispatch["run_id"] == WALK:
                    dispatch_ids[dispatch["node_id"]] = dispatch["dispatch_id"]
    return failures


def test_every_operation_answers_as_its_schema_says(sqlite_server: LedgerServer) -> None:
    base = sqlite_server.base_url
    with httpx.Client(base_url=base, timeout=30.0) as client:
        _seed(client)
        dispatches = {"run_fuzz": _seed_run(client, "run_fuzz")}
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if not _streams_forever(op)]
    assert len(fuzzed) >= 25, [op.label for op in operations]

    counts: dict[str, int] = {}
    statuses: dict[int, int] = {}
    failures: dict[str, list[str]] = {}
    session = requests.Session()
    started = time.monotonic()

    for index, operation in enumerate(fuzzed):
        label = operation.label
        fresh: dict[str, Any] = {}
        if operation.method.upper() == "POST" and "{run_id}" in operation.path:
            # A command on a run gets a run of its own in the seeded state: one that an
            # earlier operation cancelled would answer every case with 409.
            fresh["run_id"] = f"run_fuzz_{index}"
            with httpx.Client(base_url=base, timeout=30.0) as client:
                dispatches[fresh["run_id"]] = _seed_run(client, fresh["run_id"])

        def call(case: schemathesis.Case, label: str = label) -> None:
            counts[label] = counts.get(label, 0) + 1
            _use_seeded_dispatch(case, dispatches, counts[label])
            response = case.call(base_url=base, session=session, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as failure:
                failures.setdefault(label, []).append(str(failure)[:3000])

        _run(operation, GenerationMode.POSITIVE, EXAMPLES, call, fresh)
        _run(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, call, fresh)
    walked = _walk_run({op.label: op for op in operations}, base, session)
    if walked:
        failures["the run walk"] = walked
    session.close()
    elapsed = time.monotonic() - started

    total = sum(counts.values())
    print(f"\nfuzz: {total} cases over {len(fuzzed)} operations in {elapsed:.1f} s")
    print("fuzz: statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    report = "\n".join(
        f"=== {label}: {len(found)} failing cases; the first:\n"
        + "\n---\n".join(found[:FAILURES_SHOWN])
        for label, found in failures.items()
    )
    assert not failures, report
    assert total >= len(fuzzed) * EXAMPLES // 2, counts
