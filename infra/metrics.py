"""Prometheus metrics of one Ledger process, in a registry of its own.

Events appended and append latency are observed on the command path; projection
positions and lag are read from the database when scraped; HTTP latency is
timed by a small ASGI middleware labelled with the route template (not the raw
path, so ids do not explode the label set).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

ProjectionRows = Callable[[], Iterable[tuple[str, int, int]]]


class _ProjectionCollector(Collector):
    def __init__(self, rows: ProjectionRows) -> None:
        self._rows = rows

    def collect(self) -> Iterable[GaugeMetricFamily]:
        position = GaugeMetricFamily(
            "ledger_projection_position", "Last position a projection applied", labels=["name"]
        )
        lag = GaugeMetricFamily(
            "ledger_projection_lag_events", "Events a projection has yet to apply", labels=["name"]
        )
        try:
            rows = list(self._rows())
        except Exception:  # the database is away: report nothing rather than fail the scrape
            rows = []
        for name, at, head in rows:
            position.add_metric([name], at)
            lag.add_metric([name], max(0, head - at))
        yield position
        yield lag


class Metrics:
    """Every metric of one Ledger process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_appended = Counter(
            "ledger_events_appended", "Events appended by this process", registry=self.registry
        )
        self.append_latency = Histogram(
            "ledger_append_latency_seconds",
            "Time from a command's append to its durable commit",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sse_connections = Gauge(
            "ledger_sse_connections", "Open SSE tails", registry=self.registry
        )
        self.http_latency = Histogram(
            "ledger_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_projections(self, rows: ProjectionRows) -> None:
        self.registry.register(_ProjectionCollector(rows))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetricsMiddleware:
    """Times every HTTP request; the label is the matched route's path template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.http_latency.labels(
                scope["method"], _route(scope), str(status["code"])
            ).observe(time.perf_counter() - started)


def _route(scope: Scope) -> str:
    matched = scope.get("route")  # set by the router when it dispatched the request
    if matched is not None:
        return str(getattr(matched, "path", "unmatched"))
    # answered before routing (e.g. 401): match the routes to name it
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
