"""API tokens and who may do what: token format and hashing, scopes, the lookup cache.

A token is ``ldg_`` + 32 random bytes (URL-safe base64); only its SHA-256 is
stored. A token belongs to one tenant and has one scope; scopes nest
(``read`` < ``write`` < ``admin``):

- public, no token: ``/healthz``, ``/readyz``, ``/openapi.json``;
- ``admin``: ``/metrics`` and ``GET /v1/projections`` (store-wide figures that
  count every tenant's events);
- ``read``: every other ``GET`` (views, lists, feed, live tails, export, usage,
  a stream's chain check);
- ``write``: everything else (the commands).

With authentication off, every caller is tenant ``default`` with ``admin`` scope.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, get_args

from infra.store.records import DEFAULT_TENANT

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
TOKEN_PREFIX = "ldg_"
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"ldg_[A-Za-z0-9_-]{43}")
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
ADMIN_PATHS = frozenset({"/metrics", "/v1/projections"})
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Principal:
    """The caller a request acts for: its tenant and what it may do."""

    tenant: str
    scope: Scope

    def may(self, needed: Scope) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


LOCAL_ADMIN = Principal(DEFAULT_TENANT, "admin")
"""Every caller when authentication is off."""


def new_token() -> str:
    """A fresh secret token; shown once, never stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    """Whether ``token`` has the shape :func:`new_token` gives (anything else is not looked up)."""
    return TOKEN_PATTERN.fullmatch(token) is not None


def valid_tenant(tenant: str) -> bool:
    return TENANT_PATTERN.fullmatch(tenant) is not None


def required_scope(method: str, path: str) -> Scope | None:
    """The scope a request needs; None for the public endpoints."""
    if path in PUBLIC_PATHS:
        return None
    if path in ADMIN_PATHS:
        return "admin"
    return "read" if method.upper() in READ_METHODS else "write"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    kind, _, token = authorization.strip().partition(" ")
    if kind.lower() != "bearer":
        return None
    return token.strip() or None


Lookup = Callable[[str], Awaitable[Principal | None]]
"""Finds the active (unrevoked) token with this hash."""


class TokenResolver:
    """Resolves tokens to principals, remembering each answer for ``ttl`` seconds.

    The cache keeps both answers (a principal, or none) so neither a busy client nor
    a stream of wrong tokens costs a database read per request; a revoked token is
    refused at the latest ``ttl`` seconds after its revocation.
    """

    MAX_ENTRIES = 10_000

    def __init__(
        self, lookup: Lookup, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, token: str) -> Principal | None:
        if not looks_like_token(token):
            return None
        token_hash = hash_token(token)
        now = self._clock()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = await self._lookup(token_hash)
        if self._ttl > 0:
            self._remember(token_hash, principal, now + self._ttl)
        return principal

    def _remember(self, token_hash: str, principal: Principal | None, until: float) -> None:
        if len(self._cache) >= self.MAX_ENTRIES:
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
        self._cache[token_hash] = (until, principal)


def startup_problem(*, auth_enabled: bool, loopback: bool, active_tokens: int) -> str | None:
    """Why ``ledger serve`` must not start, or None: authentication on a public interface
    with no token anybody could use."""
    if auth_enabled and not loopback and active_tokens == 0:
        return (
            "refusing to serve on a non-loopback interface: authentication is on and the"
            " database holds no active API token. Create one with"
            " `ledger tokens create --tenant NAME --scope admin`, bind to 127.0.0.1,"
            " or set LEDGER_AUTH=off to serve without authentication (not on a shared network)."
        )
    return None


def startup_warnings(*, auth_enabled: bool, loopback: bool, active_tokens: int) -> list[str]:
    """What ``ledger serve`` should say loudly before it starts."""
    if not auth_enabled and not loopback:
        return [
            "AUTHENTICATION IS OFF on a non-loopback interface (LEDGER_AUTH=off): anyone who"
            " can reach this port reads and writes every event of tenant 'default' as admin"
        ]
    if auth_enabled and active_tokens == 0:
        return [
            "authentication is on and there is no active API token: every request but"
            " /healthz, /readyz and /openapi.json will be refused;"
            " create one with `ledger tokens create --tenant NAME`"
        ]
    return []
