"""The Starlette application: the endpoint table, the error table, the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.bootstrap import Ledger
from infra.config import Settings
from infra.http.auth import AuthMiddleware
from infra.http.endpoint import Endpoint, Handler
from infra.http.errors import EXCEPTION_HANDLERS, error_response
from infra.http.executor_routes import ENDPOINTS as EXECUTOR_ENDPOINTS
from infra.http.export_routes import ENDPOINTS as EXPORT_ENDPOINTS
from infra.http.feed_routes import ENDPOINTS as FEED_ENDPOINTS
from infra.http.list_routes import ENDPOINTS as LIST_ENDPOINTS
from infra.http.openapi import build_openapi
from infra.http.run_list_routes import ENDPOINTS as RUN_LIST_ENDPOINTS
from infra.http.run_routes import ENDPOINTS as RUN_ENDPOINTS
from infra.http.schemas import Status
from infra.http.thread_routes import ENDPOINTS as THREAD_ENDPOINTS
from infra.http.usage_routes import ENDPOINTS as USAGE_ENDPOINTS
from infra.http.wire import JSON
from infra.metrics import CONTENT_TYPE, HttpMetricsMiddleware
from infra.store.errors import StoreError

log = logging.getLogger(__name__)
VERSION = "0.1.0"


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    ledger: Ledger = request.app.state.ledger
    try:
        await ledger.store.ping()
    except StoreError as error:
        return error_response(503, "not_ready", str(error))
    return JSON({"status": "ready"})


async def metrics(request: Request) -> Response:
    ledger: Ledger = request.app.state.ledger
    return Response(ledger.metrics.render(), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    return JSON(request.app.state.openapi)


SYSTEM_ENDPOINTS = [
    Endpoint("GET", "/metrics", metrics, "Prometheus metrics", tags=("system",)),
    Endpoint(
        "GET",
        "/healthz",
        healthz,
        "Liveness: the process answers",
        response=Status,
        tags=("system",),
    ),
    Endpoint(
        "GET",
        "/readyz",
        readyz,
        "Readiness: the database answers",
        response=Status,
        errors=(503,),
        tags=("system",),
    ),
]


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, message, headers=exc.headers)  # 405: Allow


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the server failed to handle this request")


def _routes(endpoints: list[Endpoint]) -> list[Route]:
    """One route per path, in the order the paths first appear: a method the path lacks
    then answers 405 with every method it has in ``Allow`` (one route per method would
    name only the first route's)."""
    by_path: dict[str, dict[str, Handler]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint.handler
    return [
        Route(path, _dispatch_by_method(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]


def _dispatch_by_method(handlers: dict[str, Handler]) -> Handler:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # HEAD comes with GET
        return await handlers[method](request)

    return dispatch


def create_app(settings: Settings, ledger: Ledger | None = None) -> Starlette:
    """The HTTP app; the Ledger is started and stopped by the app's lifespan."""
    endpoints = [
        *SYSTEM_ENDPOINTS,
        *THREAD_ENDPOINTS,
        *EXECUTOR_ENDPOINTS,
        *RUN_ENDPOINTS,
        *LIST_ENDPOINTS,
        *RUN_LIST_ENDPOINTS,
        *FEED_ENDPOINTS,
        *USAGE_ENDPOINTS,
        *EXPORT_ENDPOINTS,
    ]
    service = ledger or Ledger(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    routes = _routes(endpoints)
    routes.append(Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False))
    handlers = {
        **EXCEPTION_HANDLERS,
        HTTPException: handle_http_exception,
        Exception: handle_unexpected,
    }
    app = Starlette(
        routes=routes,
        exception_handlers=handlers,
        lifespan=lifespan,
        middleware=[
            Middleware(HttpMetricsMiddleware, metrics=service.metrics),
            Middleware(
                AuthMiddleware,
                resolver=service.tokens if service.settings.auth_enabled else None,
            ),
        ],
    )
    app.state.ledger = service
    app.state.openapi = build_openapi(endpoints, title="Ledger", version=VERSION)
    return app
