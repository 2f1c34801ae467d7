"""The ``api_tokens`` table: create, list and revoke (CLI), find an active token (HTTP).

Only a token's SHA-256 is stored. The service role may read, insert and update
rows (to revoke), never delete them, so a revocation stays on record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from infra.auth import SCOPES, Principal, Scope, hash_token, looks_like_token
from infra.projection_store import ProjectionSession, projection_transaction
from infra.store.backend import Backend
from infra.store.hashing import format_timestamp, parse_timestamp

COLUMNS = "token_hash, tenant, scope, created_at, revoked_at"
FIND_ACTIVE = "SELECT tenant, scope FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL"
MIN_PREFIX = 8

Fetch = Callable[[str, Sequence[object]], Awaitable[list[tuple[Any, ...]]]]


class TokenNotFound(ValueError):
    """No token, or more than one, matches what was given to revoke."""


@dataclass(frozen=True)
class TokenRecord:
    token_hash: str
    tenant: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None

    @property
    def token_id(self) -> str:
        """A short, non-secret name for the token: the start of its hash."""
        return self.token_hash[:12]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.token_id,
            "token_hash": self.token_hash,
            "tenant": self.tenant,
            "scope": self.scope,
            "created_at": format_timestamp(self.created_at),
            "revoked_at": None if self.revoked_at is None else format_timestamp(self.revoked_at),
        }


def _stored_time(session: ProjectionSession, moment: datetime) -> object:
    return format_timestamp(moment) if session.dialect == "sqlite" else moment


def _read_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_timestamp(str(value))


def _record(row: Sequence[Any]) -> TokenRecord:
    return TokenRecord(
        token_hash=str(row[0]),
        tenant=str(row[1]),
        scope=cast(Scope, row[2]),
        created_at=_read_time(row[3]),
        revoked_at=None if row[4] is None else _read_time(row[4]),
    )


class TokenStore:
    """API tokens on one backend (as the service role on PostgreSQL)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def create(
        self, token: str, tenant: str, scope: Scope, now: datetime | None = None
    ) -> TokenRecord:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        record = TokenRecord(hash_token(token), tenant, scope, now or datetime.now(UTC), None)
        with projection_transaction(self._backend) as session:
            session.execute(
                "INSERT INTO api_tokens (token_hash, tenant, scope, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (record.token_hash, tenant, scope, _stored_time(session, record.created_at)),
            )
        return record

    def all(self) -> list[TokenRecord]:
        """Every token, revoked ones included, oldest first."""
        with projection_transaction(self._backend) as session:
            rows = session.fetchall(f"SELECT {COLUMNS} FROM api_tokens")
        return sorted((_record(r) for r in rows), key=lambda r: (r.created_at, r.token_hash))

    def active_count(self) -> int:
        with projection_transaction(self._backend) as session:
            row = session.fetchone("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
        return int(row[0]) if row else 0

    def revoke(self, which: str, now: datetime | None = None) -> TokenRecord:
        """Revoke the token named by the token itself, its hash, or a unique hash prefix
        (at least 8 hex digits). Revoking a revoked token changes nothing."""
        key = hash_token(which) if looks_like_token(which) else which.strip().lower()
        if len(key) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in key):
            raise TokenNotFound(
                f"name a token by its hash or a prefix of at least {MIN_PREFIX} hex digits"
            )
        moment = now or datetime.now(UTC)
        with projection_transaction(self._backend) as session:
            rows = session.fetchall(
                f"SELECT {COLUMNS} FROM api_tokens WHERE token_hash LIKE %s", (key + "%",)
            )
            if len(rows) != 1:
                found = "no token" if not rows else f"{len(rows)} tokens"
                raise TokenNotFound(f"{found} with a hash starting {key!r}")
            record = _record(rows[0])
            if record.revoked_at is not None:
                return record
            session.execute(
                "UPDATE api_tokens SET revoked_at = %s WHERE token_hash = %s",
                (_stored_time(session, moment), record.token_hash),
            )
        return TokenRecord(
            record.token_hash, record.tenant, record.scope, record.created_at, moment
        )


async def find_active(fetch: Fetch, token_hash: str) -> Principal | None:
    """The tenant and scope of the unrevoked token with this hash (the HTTP path)."""
    rows = await fetch(FIND_ACTIVE, [token_hash])
    if not rows:
        return None
    tenant, scope = rows[0]
    return Principal(str(tenant), cast(Scope, scope))
