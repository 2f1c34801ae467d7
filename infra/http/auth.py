"""Authentication at the edge: a pure ASGI middleware (live tails keep streaming through it).

Each request's ``Authorization: Bearer <token>`` is resolved to a
:class:`~infra.auth.Principal` stored in ``scope["state"]["principal"]``, where
:func:`caller` finds it. A missing or unknown token answers 401 with
``WWW-Authenticate: Bearer``; a token whose scope is too small answers 403.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from infra.auth import LOCAL_ADMIN, Principal, TokenResolver, bearer_token, required_scope
from infra.http.errors import ApiError, error_response
from infra.store.errors import StoreUnavailable

STATE_KEY = "principal"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ledger"'}


class AuthMiddleware:
    """Puts the caller's principal in the request state, or answers 401/403 itself."""

    def __init__(self, app: ASGIApp, resolver: TokenResolver | None) -> None:
        """``resolver`` None: authentication is off, every caller is the local admin."""
        self.app = app
        self.resolver = resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], scope["path"])
        if needed is None:
            await self.app(scope, receive, send)
            return
        if self.resolver is None:
            scope.setdefault("state", {})[STATE_KEY] = LOCAL_ADMIN
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = bearer_token(request.headers.get("authorization"))
        try:
            principal = None if token is None else await self.resolver.resolve(token)
        except StoreUnavailable as error:
            await error_response(503, "unavailable", str(error))(scope, receive, send)
            return
        if principal is None:
            reason = "missing" if token is None else "invalid or revoked"
            response = error_response(
                401, "unauthenticated", f"an API token is required: Bearer token {reason}"
            )
            response.headers.update(CHALLENGE)
            await response(scope, receive, send)
            return
        if not principal.may(needed):
            message = f"this token's scope is {principal.scope}; the request needs {needed}"
            details = {"scope": principal.scope, "required_scope": needed}
            await error_response(403, "forbidden", message, details)(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = principal
        await self.app(scope, receive, send)


def caller(request: Request) -> Principal:
    """The principal the middleware resolved for this request. Without one (an app built
    without the middleware), the local admin when authentication is off, else 401."""
    principal = request.scope.get("state", {}).get(STATE_KEY)
    if isinstance(principal, Principal):
        return principal
    ledger = getattr(request.app.state, "ledger", None)
    if ledger is not None and not ledger.settings.auth_enabled:
        return LOCAL_ADMIN
    raise ApiError(401, "unauthenticated", "an API token is required")
