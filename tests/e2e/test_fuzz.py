"""Schemathesis over every operation of ``/openapi.json``, against a real ``ledger serve``.

For each operation it sends schema-valid requests (positive) and schema-violating ones
(negative), and checks every response: no 5xx, a status the spec declares, the declared
content type, and a body that matches the declared schema. The SSE tails stream forever, so
they are left to the e2e SSE tests.

Random ids mostly name nothing (404), so part of the positive cases aim at a seeded thread
(an active turn with an item, a pending approval) to reach the command handlers' rules too.
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


def _streams_forever(operation: schemathesis.APIOperation) -> bool:
    responses = operation.definition.raw.get("responses", {})
    return any("text/event-stream" in r.get("content", {}) for r in responses.values())


def _strategy(operation: schemathesis.APIOperation, mode: GenerationMode) -> Any:
    """Cases for one operation; positive ones aim at the seeded ids about half of the time."""
    strategy = operation.as_strategy(generation_mode=mode)
    names = {p.name for p in operation.path_parameters}
    seeded = {name: SEEDED[name] for name in names if name in SEEDED}
    if mode is GenerationMode.NEGATIVE or not seeded:
        return strategy
    return st.one_of(strategy, operation.as_strategy(generation_mode=mode, path_parameters=seeded))


def _run(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    call: Callable[[schemathesis.Case], None],
) -> None:
    @given(case=_strategy(operation, mode))
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


def test_every_operation_answers_as_its_schema_says(sqlite_server: LedgerServer) -> None:
    base = sqlite_server.base_url
    with httpx.Client(base_url=base, timeout=30.0) as client:
        _seed(client)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if not _streams_forever(op)]
    assert len(fuzzed) >= 25, [op.label for op in operations]

    counts: dict[str, int] = {}
    statuses: dict[int, int] = {}
    failures: dict[str, list[str]] = {}
    session = requests.Session()
    started = time.monotonic()

    for operation in fuzzed:
        label = operation.label

        def call(case: schemathesis.Case, label: str = label) -> None:
            counts[label] = counts.get(label, 0) + 1
            response = case.call(base_url=base, session=session, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as failure:
                failures.setdefault(label, []).append(str(failure)[:3000])

        _run(operation, GenerationMode.POSITIVE, EXAMPLES, call)
        _run(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, call)
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
