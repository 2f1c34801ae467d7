"""``GET /metrics``: Prometheus text with the appends, projections, tails and HTTP routes."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.conftest import LedgerServer
from tests.e2e.helpers import ok

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0


def scrape(client: httpx.Client) -> list[Sample]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def value(samples: list[Sample], metric: str, **labels: str) -> float | None:
    """The value of the one sample with this name and (at least) these labels, if any."""
    found = [
        s.value
        for s in samples
        if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{len(found)} samples of {metric} {labels}"
    return found[0] if found else None


def eventually(
    client: httpx.Client, check: Callable[[list[Sample]], bool], what: str
) -> list[Sample]:
    deadline = time.monotonic() + WAIT_S
    while True:
        samples = scrape(client)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, f"{what} within {WAIT_S} s: " + str(
            [(s.name, s.labels, s.value) for s in samples if "sse" in s.name]
        )
        time.sleep(0.05)


def test_metrics_count_appends_projections_tails_and_routes(
    ledger_server: LedgerServer, client: httpx.Client
) -> None:
    thread = "/v1/threads/thr_metrics"
    ok(client.post("/v1/threads", json={"thread_id": "thr_metrics"}), 201)
    ok(client.post(f"{thread}/turns", json={"turn_id": "t1"}), 201)
    for n in range(3):
        ok(
            client.post(f"{thread}/turns/t1/items", json={"item_id": f"i{n}", "kind": "message"}),
            201,
        )
    last = ok(client.post(f"{thread}/turns/t1/complete", json={"status": "completed"}), 200)
    ok(client.post("/v1/threads", json={"thread_id": "thr_metrics_2"}), 201)
    ok(client.get(f"{thread}/events"), 200)
    commands = 7
    assert last["position"] == commands - 1

    # the projection catches up to the head; then its position is the head and its lag is 0
    samples = eventually(
        client,
        lambda s: value(s, "ledger_projection_position", name="thread_summaries") == commands,
        "thread_summaries reaches the head",
    )
    assert value(samples, "ledger_events_appended_total") == commands
    assert value(samples, "ledger_append_latency_seconds_count") == commands
    buckets = [s for s in samples if s.name == "ledger_append_latency_seconds_bucket"]
    assert buckets and value(samples, "ledger_append_latency_seconds_bucket", le="+Inf") == commands
    assert value(samples, "ledger_projection_lag_events", name="thread_summaries") == 0
    assert value(samples, "ledger_sse_connections") == 0

    def requests(route: str, method: str = "POST", status: str = "201") -> float | None:
        return value(
            samples,
            "ledger_http_request_duration_seconds_count",
            method=method,
            route=route,
            status=status,
        )

    assert requests("/v1/threads") == 2
    assert requests("/v1/threads/{thread_id}/turns") == 1
    assert requests("/v1/threads/{thread_id}/turns/{turn_id}/items") == 3
    assert requests("/v1/threads/{thread_id}/turns/{turn_id}/complete", status="200") == 1
    assert requests("/v1/threads/{thread_id}/events", method="GET", status="200") == 1
    routes = {
        s.labels["route"] for s in samples if s.name.startswith("ledger_http_request_duration")
    }
    assert not [r for r in routes if "thr_" in r or "t1" in r], routes

    # one open tail is one connection, and closing it brings the gauge back to 0
    with client.stream("GET", f"{thread}/stream") as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a dropped line iterator closes the connection
        assert next(lines) == ": connected"
        eventually(client, lambda s: value(s, "ledger_sse_connections") == 1, "1 open tail")
    eventually(client, lambda s: value(s, "ledger_sse_connections") == 0, "0 tails after close")
    # scraping appended nothing
    samples = scrape(client)
    assert value(samples, "ledger_events_appended_total") == commands
